"""ansible-lint rule no-log-secret: a task that handles a secret has no_log: true.

A loop label, or a module that masks its own password parameter, hides a secret
on screen only: a task's result, every loop item and every fact it sets included,
goes into ansible-runner's job events (artifacts/<run>/job_events/*.json) in the
clear. ansible-lint's own no-log-password sees only a module parameter named
*password* in a looping task; it misses a loop over a list whose items carry a
password when the module is given only their names (issue 18: the task "Grant
the login roles their memberships").

A task needs no_log: true (on itself, its block or its play) when
  * it loops (loop, with_*) over an expression that reads a secret,
  * its module arguments (set_fact's facts included), vars or loop label read
    a secret: a secret variable, or a lookup of a secret store
    (secretsmanager_secret, hashi_vault, ...), or
  * it has a module argument named like a secret (login_password, api_token)
    with a value.
Not counted: conditionals (when, changed_when, failed_when, until, assert's
that; Ansible reports their text, never the values they read); the vars of an
include/import (the included tasks are checked where they use them); and
environment: its values never reach a result, and no_log does not hide them
from -vvv's EXEC lines either, so keep secrets out of it (a passfile, not
PGPASSWORD).

A variable reference is a secret when one of its parts
(estate.estate_db_credentials.username, item.password) is
  * named like one: its last word is password, passwd, passphrase, secret,
    secrets, token, credential(s) or apikey (sample_app_db_password; not
    sample_app_db_secret_id, secrets_restore_file),
  * a role variable that meta/argument_specs.yml marks no_log: true, itself or
    one of its suboptions (a list of users whose items carry a password),
  * a role default that is a list whose items have a key named like a secret
    ([{name, password}]), or
  * a fact set by a set_fact task that has no_log: true (the database
    credentials read from Secrets Manager).
Those project-wide names come from the playbooks directory of the linted file
(the nearest parent holding roles/): its roles and its own *.yml.

Molecule scenarios are not checked: they carry throwaway credentials in their
own files, and hiding their tasks' results would only hide why a test failed.
A task that must pass a secret visibly says why: `# noqa: no-log-secret`.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from ansiblelint.errors import MatchError
    from ansiblelint.file_utils import Lintable

try:  # the rule class needs ansible-lint; the checks below do not
    from ansiblelint.rules import AnsibleLintRule
except ImportError:  # pragma: no cover
    AnsibleLintRule = object  # type: ignore[assignment,misc]

RULE_ID = "no-log-secret"
SECRET_WORDS = frozenset({"password", "passwd", "passphrase", "secret", "secrets", "token",
                          "credential", "credentials", "apikey"})
# lookup('amazon.aws.secretsmanager_secret', ...), query('community.hashi_vault.hashi_vault', ...)
SECRET_STORES = ("secret", "vault", "password", "onepassword", "bitwarden", "keyring", "ssm",
                 "credential", "token")
TASK_LISTS = ("pre_tasks", "tasks", "post_tasks", "handlers")
BLOCK_LISTS = ("block", "rescue", "always")
ASSERTS = frozenset({"assert", "ansible.builtin.assert", "ansible.legacy.assert"})
INCLUDES = frozenset(f"{prefix}{name}" for prefix in ("", "ansible.builtin.", "ansible.legacy.")
                     for name in ("include_role", "import_role", "include_tasks", "import_tasks"))
LOOP_KEY = re.compile(r"^(loop|with_\w+)$")
try:  # every task keyword: whatever else a task has is its module
    from ansible.playbook.task import Task as _AnsibleTask

    TASK_KEYWORDS = frozenset(_AnsibleTask.fattributes) | {"local_action"}
except ImportError:  # pragma: no cover
    TASK_KEYWORDS = frozenset({
        "action", "any_errors_fatal", "args", "async", "become", "become_exe", "become_flags",
        "become_method", "become_user", "changed_when", "check_mode", "collections", "connection",
        "debugger", "delay", "delegate_facts", "delegate_to", "diff", "environment",
        "failed_when", "ignore_errors", "ignore_unreachable", "local_action", "loop",
        "loop_control", "module_defaults", "name", "no_log", "notify", "poll", "port",
        "register", "remote_user", "retries", "run_once", "tags", "throttle", "timeout", "until",
        "vars", "when"})

JINJA = re.compile(r"\{\{(.*?)\}\}|\{%(.*?)%\}", re.DOTALL)
LOOKUP = re.compile(r"""\b(?:lookup|query|q)\s*\(\s*['"]([\w.]+)['"]""")
# x['key'] and map(attribute='key') name a part: they become x.key and key.
SUBSCRIPT = re.compile(r"""\[\s*(['"])([A-Za-z_]\w*)\1\s*\]""")
ATTRIBUTE = re.compile(r"""\battribute\s*=\s*(['"])([A-Za-z_]\w*)\1""")
# Any other string literal is data ('drkit/' ~ estate ~ '/REGION/db-credentials').
QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
REFERENCE = re.compile(r"[A-Za-z_]\w*(?:\s*\.\s*[A-Za-z_]\w*)*")


def secret_name(name: str) -> bool:
    """Whether a variable, key or argument name says it holds a secret: its last
    word is one of SECRET_WORDS, or it contains "password" (login_password)."""
    lowered = name.lower()
    words = [w for w in re.split(r"[^a-z0-9]+", lowered) if w]
    return bool(words) and (words[-1] in SECRET_WORDS or "password" in lowered)


def _items_carry_secrets(value: Any) -> bool:
    """A list whose items have a key named like a secret ([{name, password}])."""
    return isinstance(value, list) and any(
        isinstance(item, Mapping) and any(secret_name(str(k)) for k in item) for item in value)


def _spec_marks_no_log(spec: Any) -> bool:
    if not isinstance(spec, Mapping):
        return False
    if spec.get("no_log") is True:
        return True
    options = spec.get("options")
    return isinstance(options, Mapping) and any(_spec_marks_no_log(s) for s in options.values())


class _LineLoader(yaml.SafeLoader):
    """Marks every mapping with its line (__line__), as ansible-lint does."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        mapping = super().construct_mapping(node, deep=deep)
        mapping["__line__"] = node.start_mark.line + 1
        return mapping


def _load(path: Path) -> Any:
    try:
        return yaml.load(path.read_text(), Loader=_LineLoader)  # a SafeLoader
    except (OSError, yaml.YAMLError):
        return None


def _no_log_on(node: Mapping[str, Any], inherited: bool) -> bool:
    """no_log of a task, block or play: its own when set (a template counts as
    set: it cannot be judged here), else its parent's."""
    if "no_log" not in node:
        return inherited
    value = node["no_log"]
    if isinstance(value, str):
        return value.strip().lower() not in ("false", "no", "off", "0", "")
    return bool(value)


def walk_tasks(data: Any, kind: str) -> Iterator[tuple[Mapping[str, Any], bool]]:
    """Every task (blocks opened) of a playbook or a task file, with its effective no_log."""
    def tasks(entries: Any, inherited: bool) -> Iterator[tuple[Mapping[str, Any], bool]]:
        for entry in entries if isinstance(entries, list) else []:
            if not isinstance(entry, Mapping):
                continue
            no_log = _no_log_on(entry, inherited)
            if any(key in entry for key in BLOCK_LISTS):
                for key in BLOCK_LISTS:
                    yield from tasks(entry.get(key), no_log)
            else:
                yield entry, no_log

    if not isinstance(data, list):
        return
    if kind == "playbook":
        for play in data:
            if isinstance(play, Mapping):
                for key in TASK_LISTS:
                    yield from tasks(play.get(key), _no_log_on(play, False))
    else:
        yield from tasks(data, False)


PLAY_KEYS = ("hosts", "import_playbook", "ansible.builtin.import_playbook")


def file_kind(data: Any) -> str:
    """playbook (a list of plays or imports) or tasks."""
    plays = isinstance(data, list) and any(isinstance(p, Mapping) and any(k in p for k in PLAY_KEYS)
                                           for p in data)
    return "playbook" if plays else "tasks"


@functools.lru_cache(maxsize=8)
def project_secret_names(playbooks_dir: Path) -> frozenset[str]:
    """Variables that hold secrets by declaration: argument_specs no_log, role
    defaults whose items carry a secret key, facts set under no_log."""
    names: set[str] = set()
    roles = playbooks_dir / "roles"
    for spec_file in sorted(roles.glob("*/meta/argument_specs.y*ml")):
        specs = (_load(spec_file) or {}).get("argument_specs") or {}
        for entry in specs.values() if isinstance(specs, Mapping) else []:
            options = (entry.get("options") if isinstance(entry, Mapping) else None) or {}
            names.update(n for n, s in options.items() if _spec_marks_no_log(s))
    for defaults in sorted(roles.glob("*/defaults/**/*.y*ml")):
        data = _load(defaults)
        if isinstance(data, Mapping):
            names.update(n for n, v in data.items() if _items_carry_secrets(v))
    for path in [*sorted(playbooks_dir.glob("*.y*ml")), *sorted(roles.glob("*/tasks/**/*.y*ml")),
                 *sorted(roles.glob("*/handlers/**/*.y*ml"))]:
        data = _load(path)
        for task, no_log in walk_tasks(data, file_kind(data)):
            facts = task.get("ansible.builtin.set_fact", task.get("set_fact"))
            if no_log and isinstance(facts, Mapping):
                names.update(str(k) for k in facts
                             if k != "cacheable" and not str(k).startswith("__"))
    return frozenset(names)


def _references(expression: str) -> Iterator[list[str]]:
    """The variable references in a Jinja expression, each as its parts
    (estate.estate_db_credentials['password'] -> [estate, estate_db_credentials, password])."""
    expression = SUBSCRIPT.sub(r".\2", expression)
    expression = ATTRIBUTE.sub(r" \2 ", expression)
    expression = QUOTED.sub(" ", expression)
    for ref in REFERENCE.findall(expression):
        yield [part.strip() for part in ref.split(".")]


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            if not str(key).startswith("__"):
                yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def secret_references(value: Any, secrets: frozenset[str]) -> list[str]:
    """What value's templates read that is a secret: variables, and lookups of secret stores."""
    found = set()
    for text in _strings(value):
        for match in JINJA.finditer(text):
            expression = match.group(1) or match.group(2) or ""
            for plugin in LOOKUP.findall(expression):
                if any(word in plugin.lower() for word in SECRET_STORES):
                    found.add(f"lookup {plugin}")
            for parts in _references(expression):
                if any(part in secrets or secret_name(part) for part in parts):
                    found.add(".".join(parts))
    return sorted(found)


def _action(task: Mapping[str, Any]) -> tuple[str, Any]:
    """The task's module and its arguments (action: and local_action: included)."""
    for key in ("action", "local_action"):
        if key in task:
            value = task[key]
            if isinstance(value, Mapping):
                return str(value.get("module", key)), {k: v for k, v in value.items()
                                                      if k != "module"}
            return key, value
    for key, value in task.items():
        if key not in TASK_KEYWORDS and not LOOP_KEY.match(key) and not str(key).startswith("__"):
            return str(key), value
    return "", None


def task_leaks(task: Mapping[str, Any], secrets: frozenset[str]) -> list[str]:
    """Why the task's results would hold a secret without no_log (empty: they would not)."""
    reasons = []
    for key, value in task.items():
        if LOOP_KEY.match(str(key)):
            refs = secret_references(value, secrets)
            if refs:
                reasons.append(f"{key} over {', '.join(refs)} (each item goes into the results)")
    module, args = _action(task)
    if isinstance(task.get("args"), Mapping):
        args = {**task["args"], **args} if isinstance(args, Mapping) else task["args"]
    if isinstance(args, Mapping):
        args = {k: v for k, v in args.items() if not (module in ASSERTS and k == "that")}
        named = sorted(str(k) for k, v in args.items()
                       if secret_name(str(k)) and v not in (None, "") and module not in INCLUDES)
        if named:
            reasons.append(f"argument {', '.join(named)}")
    loop_control = task.get("loop_control")
    for label, value in (("arguments", args),
                         ("vars", None if module in INCLUDES else task.get("vars")),
                         ("loop label", loop_control.get("label")
                          if isinstance(loop_control, Mapping) else None)):
        refs = secret_references(value, secrets)
        if refs:
            reasons.append(f"{label} read {', '.join(refs)}")
    return reasons


def _line(task: Mapping[str, Any]) -> int | None:
    """The task's line: ansible-lint's __line__ key or, for the data ansible-core
    2.19 loads, the mapping's Origin tag."""
    if "__line__" in task:
        return int(task["__line__"])
    try:
        from ansible._internal._datatag._tags import Origin
    except ImportError:  # pragma: no cover
        return None
    origin = Origin.get_tag(task)
    return origin.line_num if origin else None


def playbooks_dir_of(path: Path) -> Path:
    """The nearest parent holding roles/ (the playbooks directory)."""
    for parent in path.resolve().parents:
        if (parent / "roles").is_dir():
            return parent
    return path.resolve().parent


def file_leaks(path: Path, data: Any = None, kind: str | None = None,
               ) -> list[tuple[int | None, str]]:
    """(line, message) for each task of the file that handles a secret without no_log."""
    if "molecule" in path.parts:
        return []
    if data is None:
        data = _load(path)
    secrets = project_secret_names(playbooks_dir_of(path))
    found = []
    for task, no_log in walk_tasks(data, kind or file_kind(data)):
        if no_log or RULE_ID in (task.get("__skipped_rules__") or []):
            continue
        reasons = task_leaks(task, secrets)
        if reasons:
            name = task.get("name", "(unnamed)")
            found.append((_line(task), f"task {name!r} handles a secret without no_log: true: "
                                       + "; ".join(reasons)))
    return found


class NoLogSecretRule(AnsibleLintRule):  # type: ignore[misc,valid-type]
    """Tasks that handle a secret must have no_log: true."""

    id = RULE_ID
    description = ("A task's results (loop items, facts, arguments) go into ansible-runner's "
                   "job events in the clear: a task that reads a secret needs no_log: true.")
    severity = "VERY_HIGH"
    tags = ["security", "drkit"]
    version_changed = "26.0.0"

    def matchyaml(self, file: Lintable) -> list[MatchError]:
        """Every task of a playbook, task or handler file (blocks and plays opened,
        since no_log is inherited from them)."""
        if file.kind not in ("playbook", "tasks", "handlers") or not isinstance(file.data, list):
            return []
        return [self.create_matcherror(message=message, lineno=line or 1, filename=file)
                for line, message in file_leaks(Path(str(file.path)), file.data, file.kind)]
