"""Runbook files: load and validate the YAML, bind parameters, render for operators.

A runbook is data (docs/internals.md, "Runbook YAML"). This module turns a file
into a frozen ``Runbook`` or refuses it with every problem of the file at once,
each with its dotted path and line, before anything runs: unknown keys, wrong
types, bad durations, duplicate ids, template syntax errors, names a template
cannot know at run time (``params.X`` for an undeclared X, a step that has not
run yet). The engine then only has to ``bind_params`` and render.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import yaml

from drkit import templating
from drkit.durations import format_duration, parse_duration
from drkit.errors import ConfigError
from drkit.schema import Problems, YAMLSyntaxError, describe, join, load_yaml, suggest

RUNBOOK_ID = re.compile(r"^RB-[A-Z0-9][A-Z0-9-]*$")
STEP_ID = re.compile(r"^[a-z0-9][a-z0-9-]*$")
PARAM_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")

SEVERITIES = ("SEV1", "SEV2", "SEV3", "SEV4")
PARAM_TYPES = ("str", "int", "float", "bool", "duration", "list")
MARKS = ("outage_start", "service_restored", "data_restored", "failover_decided")
TERRAFORM_ACTIONS = ("plan", "apply", "destroy")
PHASES = ("preflight", "main", "on_failure")

TOP_KEYS = ("id", "title", "why", "severity", "targets", "params", "preflight", "steps",
            "on_failure")
TOP_REQUIRED = ("id", "title", "why", "severity", "targets", "steps")
TARGET_KEYS = ("rto", "rpo")
PARAM_KEYS = ("type", "required", "default", "choices", "help")
STEP_KEYS = ("id", "title", "when", "timeout", "marks", "lane")
MARK_KEYS = ("start", "finish")

# Field kinds: "str", "mapping" (any values, templated), "strlist" (list of
# strings, or one template rendering to a list), "tf_action".
KIND_FIELDS: dict[str, dict[str, tuple[str, bool]]] = {
    "ansible": {"playbook": ("str", True), "limit": ("str", False),
                "extra_vars": ("mapping", False), "tags": ("strlist", False)},
    "terraform": {"dir": ("str", True), "workspace": ("str", False),
                  "action": ("tf_action", False), "vars": ("mapping", False),
                  "var_files": ("strlist", False), "targets": ("strlist", False)},
    "check": {"probe": ("str", True), "args": ("mapping", False), "expect": ("str", True),
              "message": ("str", False)},
    "approval": {"prompt": ("str", True)},
    "notify": {"template": ("str", True), "channels": ("strlist", False),
               "vars": ("mapping", False)},
    "action": {"name": ("str", True), "args": ("mapping", False)},
}
KINDS = tuple(KIND_FIELDS)

#: Top-level names every template may use (docs/internals.md, "Template context").
CONTEXT_NAMES = ("env", "params", "run", "steps", "targets")
#: Extra name allowed in these fields only: the probe's result.
RESULT_FIELDS = ("check.expect", "check.message")
RUN_FIELDS = ("id", "dry_run", "started_at", "runbook")
TARGET_FIELDS = ("rto_s", "rpo_s")


@dataclass(frozen=True)
class Param:
    """A declared parameter. ``default`` and ``choices`` hold coerced values
    (a duration in seconds, a list as a list)."""

    name: str
    type: str
    required: bool = False
    default: Any = None
    choices: tuple[Any, ...] | None = None
    help: str = ""


@dataclass(frozen=True)
class Step:
    """One step. ``spec`` is the kind's mapping exactly as written (templates
    unrendered), with terraform's ``action`` defaulted to ``apply``."""

    id: str
    title: str
    kind: str
    spec: dict[str, Any] = field(hash=False)
    when: str | None
    timeout_s: float | None
    marks_start: tuple[str, ...]
    marks_finish: tuple[str, ...]
    phase: str
    path: str
    line: int
    #: Consecutive steps that name a lane form a parallel block: each lane runs its
    #: steps in order, the lanes run at the same time (docs/internals.md, "Lanes").
    lane: str | None = None


def blocks(steps: tuple[Step, ...]) -> list[list[Step]]:
    """``steps`` cut into what runs one after the other: a step alone, or a parallel
    block (a maximal run of consecutive steps that name a lane)."""
    out: list[list[Step]] = []
    for step in steps:
        if step.lane is not None and out and out[-1][0].lane is not None:
            out[-1].append(step)
        else:
            out.append([step])
    return out


@dataclass(frozen=True)
class Runbook:
    """A validated runbook file."""

    id: str
    title: str
    why: str
    severity: str
    rto_s: float
    rpo_s: float
    params: dict[str, Param] = field(hash=False)
    preflight: tuple[Step, ...]
    steps: tuple[Step, ...]
    on_failure: tuple[Step, ...]
    path: Path
    sha256: str

    def all_steps(self) -> tuple[Step, ...]:
        """Preflight checks, main steps and on_failure steps, in that order."""
        return self.preflight + self.steps + self.on_failure

    def step(self, step_id: str) -> Step:
        """The step with id ``step_id``; ConfigError naming the known ids otherwise."""
        for step in self.all_steps():
            if step.id == step_id:
                return step
        known = [s.id for s in self.all_steps()]
        raise ConfigError(f"runbook {self.id} has no step {step_id!r}{suggest(step_id, known)}",
                          hint=f"steps: {', '.join(known)}")


# --------------------------------------------------------------------------- loading


def load_runbook(path: Path) -> Runbook:
    """Load and validate one runbook file.

    Raises ConfigError("runbook <path> has N problems", problems=[...]) listing
    every problem in the file, each ``dotted.path: problem (line N)``.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"runbook {path} cannot be read: {exc.strerror or exc}") from exc
    problems = Problems()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        problems.add("", f"not UTF-8 text: {exc.reason} at byte {exc.start}")
        _raise_if(problems, path)
    try:
        raw = load_yaml(text, problems)
    except YAMLSyntaxError as exc:
        problems.add("", f"invalid YAML: {exc.problem}", line=exc.line)
        _raise_if(problems, path)
    runbook = _build(raw, path, hashlib.sha256(data).hexdigest(), problems)
    _raise_if(problems, path)
    assert runbook is not None
    return runbook


def _raise_if(problems: Problems, path: Path) -> None:
    if problems:
        count = len(problems)
        raise ConfigError(
            f"runbook {path} has {count} problem{'s' if count != 1 else ''}",
            problems=problems.messages(),
            hint="fix them and run again; nothing was run",
        )


def load_runbooks(directory: Path) -> list[Runbook]:
    """Load every *.yml / *.yaml runbook in ``directory``, sorted by id.

    Problems of all files are reported together, each prefixed with its file
    name; two files with the same runbook id are an error.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise ConfigError(f"runbook directory {directory} does not exist")
    problems: list[str] = []
    by_id: dict[str, Path] = {}
    runbooks: list[Runbook] = []
    for file in _runbook_files(directory):
        try:
            runbook = load_runbook(file)
        except ConfigError as exc:
            problems.extend(f"{file.name}: {p}" for p in (exc.problems or [exc.message]))
            continue
        if runbook.id in by_id:
            problems.append(f"{file.name}: id: {runbook.id} is also the id of "
                            f"{by_id[runbook.id].name}; runbook ids must be unique")
            continue
        by_id[runbook.id] = file
        runbooks.append(runbook)
    if problems:
        raise ConfigError(f"runbooks in {directory} have {len(problems)} problem"
                          f"{'s' if len(problems) != 1 else ''}", problems=problems)
    return sorted(runbooks, key=lambda r: r.id)


def _runbook_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir()
                  if p.is_file() and p.suffix in (".yml", ".yaml"))


_ID_LINE = re.compile(r"^id:\s*[\"']?([^\"'\s#]+)", re.MULTILINE)


def resolve_runbook(ref: str, directory: Path) -> Path:
    """The runbook file ``ref`` names: a path to a file, or an id (``rb-dr-003``
    matches ``RB-DR-003``, case-insensitively) among the files in ``directory``.

    Only ids are read here, so one broken runbook does not stop an operator from
    running another. Unknown refs raise ConfigError listing the known ids.
    """
    directory = Path(directory)
    candidate = Path(ref)
    if candidate.is_file():
        return candidate
    if not candidate.is_absolute() and (directory / candidate).is_file():
        return directory / candidate
    found: dict[str, list[Path]] = {}
    if directory.is_dir():
        for file in _runbook_files(directory):
            runbook_id = _peek_id(file)
            if runbook_id:
                found.setdefault(runbook_id.upper(), []).append(file)
    matches = found.get(ref.strip().upper(), [])
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        names = ", ".join(m.name for m in matches)
        raise ConfigError(f"runbook id {ref} is used by several files: {names}",
                          hint="runbook ids must be unique; rename one")
    known = ", ".join(sorted(found)) or "none"
    raise ConfigError(f"no runbook {ref!r} in {directory}{suggest(ref.upper(), found)}",
                      hint=f"known runbooks: {known}")


def _peek_id(file: Path) -> str | None:
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    try:
        data = yaml.safe_load(text)
        if isinstance(data, dict) and isinstance(data.get("id"), str):
            return data["id"]
    except yaml.YAMLError:
        pass
    match = _ID_LINE.search(text)
    return match.group(1) if match else None


# --------------------------------------------------------------------------- validation


def _build(raw: Any, path: Path, sha256: str, problems: Problems) -> Runbook | None:
    if not isinstance(raw, dict):
        problems.add("", f"expected a mapping with keys {', '.join(TOP_REQUIRED)}, "
                         f"got {describe(raw)}")
        return None
    _unknown_keys(raw, "", TOP_KEYS, problems)
    for key in TOP_REQUIRED:
        if key not in raw:
            problems.add(key, "required key is missing", line=1)

    runbook_id = _string(raw, "id", "", problems)
    if runbook_id is not None and not RUNBOOK_ID.match(runbook_id):
        problems.add("id", f"{runbook_id!r} does not match ^RB-[A-Z0-9][A-Z0-9-]*$ "
                           "(e.g. RB-DR-003)")
    title = _string(raw, "title", "", problems)
    why = _string(raw, "why", "", problems)
    severity = _string(raw, "severity", "", problems)
    if severity is not None and severity not in SEVERITIES:
        problems.add("severity", f"{severity!r} is not one of {', '.join(SEVERITIES)}")
    rto_s, rpo_s = _targets(raw.get("targets"), "targets" in raw, problems)
    params = _params(raw.get("params"), problems) if "params" in raw else {}

    raw_steps: list[tuple[str, str, dict[str, Any]]] = []  # (phase, path, raw step)
    for phase, key in (("preflight", "preflight"), ("main", "steps"), ("on_failure", "on_failure")):
        if key not in raw:
            continue
        items = raw[key]
        if not isinstance(items, list):
            problems.add(key, f"expected a list of steps, got {describe(items)}")
            continue
        if key == "steps" and not items:
            problems.add(key, "a runbook needs at least one step")
        for index, item in enumerate(items):
            step_path = join(key, index)
            if not isinstance(item, dict):
                problems.add(step_path, f"expected a step (a mapping), got {describe(item)}")
                continue
            raw_steps.append((phase, step_path, item))

    built: dict[str, list[Step]] = {phase: [] for phase in PHASES}
    first_seen: dict[str, str] = {}
    order: list[str] = []
    for phase, step_path, item in raw_steps:
        step = _step(item, step_path, phase, problems)
        step_id = item.get("id")
        if isinstance(step_id, str):
            if step_id in first_seen:
                problems.add(join(step_path, "id"), f"duplicate step id {step_id!r} "
                             f"(first used by {first_seen[step_id]}); step ids must be unique")
            else:
                first_seen[step_id] = step_path
            order.append(step_id)
        if step is not None:
            built[phase].append(step)

    # Template checks need every declared param and step id, so they run last.
    # A param whose declaration is broken still counts as declared here: its
    # problem is reported once, at the declaration, not at every use.
    declared = {str(name) for name in raw["params"]} \
        if isinstance(raw.get("params"), dict) else set()
    concurrent = _concurrent_steps(raw_steps)
    for position, (_phase, step_path, item) in enumerate(raw_steps):
        earlier = set(order[:position]) - concurrent.get(position, set())
        _check_step_templates(item, step_path, declared, earlier, set(order), problems)

    if problems:
        return None
    return Runbook(
        id=runbook_id or "", title=title or "", why=why or "", severity=severity or "",
        rto_s=rto_s or 0.0, rpo_s=rpo_s or 0.0, params=params,
        preflight=tuple(built["preflight"]), steps=tuple(built["main"]),
        on_failure=tuple(built["on_failure"]), path=path, sha256=sha256,
    )


def _concurrent_steps(raw_steps: list[tuple[str, str, dict[str, Any]]]) -> dict[int, set[str]]:
    """For each main step in a parallel block (by position): the ids of the steps in
    the block's other lanes, which run at the same time and so are never "earlier"."""
    def lane_of(item: dict[str, Any]) -> str | None:
        lane = item.get("lane")
        return lane if isinstance(lane, str) else None

    found: dict[int, set[str]] = {}
    block: list[int] = []
    for position in range(len(raw_steps) + 1):
        phase, _path, item = raw_steps[position] if position < len(raw_steps) else ("", "", {})
        if phase == "main" and lane_of(item) is not None:
            block.append(position)
            continue
        for member in block:
            lane = lane_of(raw_steps[member][2])
            found[member] = {str(raw_steps[other][2].get("id")) for other in block
                             if lane_of(raw_steps[other][2]) != lane}
        block = []
    return found


def _unknown_keys(raw: dict[Any, Any], path: str, allowed: tuple[str, ...],
                  problems: Problems) -> list[str]:
    unknown = [key for key in raw if key not in allowed]
    for key in unknown:
        key_text = str(key)
        problems.add(join(path, key_text), f"unknown key; expected one of: "
                     f"{', '.join(allowed)}{suggest(key_text, allowed)}")
    return [str(k) for k in unknown]


def _string(raw: dict[str, Any], key: str, path: str, problems: Problems,
            *, required: bool = False) -> str | None:
    """``raw[key]`` when it is a non-empty string; records a problem otherwise."""
    key_path = join(path, key)
    if key not in raw:
        if required:
            problems.add(key_path, "required key is missing")
        return None
    value = raw[key]
    if not isinstance(value, str):
        problems.add(key_path, f"expected a string, got {describe(value)}")
        return None
    if not value.strip():
        problems.add(key_path, "must not be empty")
        return None
    return value


def _duration(value: Any, path: str, problems: Problems) -> float | None:
    try:
        return parse_duration(value)
    except ValueError as exc:
        problems.add(path, str(exc))
        return None


def _targets(raw: Any, present: bool, problems: Problems) -> tuple[float | None, float | None]:
    if not present:
        return None, None
    if not isinstance(raw, dict):
        problems.add("targets", f"expected a mapping with rto and rpo, got {describe(raw)}")
        return None, None
    _unknown_keys(raw, "targets", TARGET_KEYS, problems)
    values: list[float | None] = []
    for key in TARGET_KEYS:
        if key not in raw:
            problems.add(join("targets", key), "required key is missing")
            values.append(None)
        else:
            values.append(_duration(raw[key], join("targets", key), problems))
    return values[0], values[1]


# --------------------------------------------------------------------------- params


def _coerce(ptype: str, value: Any, *, from_text: bool) -> Any:
    """``value`` as a ``ptype`` value; ValueError with the reason otherwise.

    ``from_text`` (command-line values) parses strings: "3" -> 3, "yes" -> True,
    "a,b" -> ["a", "b"]. YAML values (defaults, choices) must have the type already.
    """
    if ptype == "duration":
        return parse_duration(value)
    if ptype == "str":
        if isinstance(value, str):
            return value
        raise ValueError(f"expected a string, got {describe(value)}")
    if ptype == "bool":
        if isinstance(value, bool):
            return value
        if from_text and isinstance(value, str | int):
            text = str(value).strip().lower()
            if text in ("true", "yes", "1"):
                return True
            if text in ("false", "no", "0"):
                return False
        raise ValueError(f"{value!r} is not a boolean; use true/false, yes/no or 1/0")
    if ptype == "int":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if from_text and isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                pass
        raise ValueError(f"{value!r} is not an integer")
    if ptype == "float":
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if from_text and isinstance(value, str):
            try:
                return float(value.strip())
            except ValueError:
                pass
        raise ValueError(f"{value!r} is not a number")
    if ptype == "list":
        if isinstance(value, list | tuple):
            items = list(value)
        elif from_text and isinstance(value, str):
            items = [part.strip() for part in value.split(",") if part.strip()]
        else:
            raise ValueError(f"expected a list (comma-separated on the command line), "
                             f"got {describe(value)}")
        for item in items:
            if not isinstance(item, str | int | float) or isinstance(item, bool):
                raise ValueError(f"list items must be strings, got {describe(item)}")
        return [str(item) for item in items]
    raise ValueError(f"unknown parameter type {ptype!r}")


def _show(ptype: str, value: Any) -> str:
    """A coerced value the way a user wrote it."""
    if ptype == "duration" and isinstance(value, int | float):
        return format_duration(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return str(value)


def _choice_problem(param: Param, value: Any) -> str | None:
    if param.choices is None:
        return None
    options = ", ".join(_show(param.type, c) for c in param.choices)
    values = value if param.type == "list" else [value]
    bad = [v for v in values if v not in param.choices]
    if not bad:
        return None
    return f"{_show(param.type, bad[0])!r} is not one of {options}"


def _params(raw: Any, problems: Problems) -> dict[str, Param]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        problems.add("params", f"expected a mapping of parameter names, got {describe(raw)}")
        return {}
    params: dict[str, Param] = {}
    for name, spec in raw.items():
        path = join("params", str(name))
        if not isinstance(name, str) or not PARAM_NAME.match(name):
            problems.add(path, "parameter names are lower_snake_case (^[a-z_][a-z0-9_]*$), "
                               "so templates can use params.<name>")
            continue
        param = _param(name, spec, path, problems)
        if param is not None:
            params[name] = param
    return params


def _param(name: str, spec: Any, path: str, problems: Problems) -> Param | None:
    if not isinstance(spec, dict):
        problems.add(path, f"expected a mapping with type and help, got {describe(spec)}")
        return None
    before = len(problems)
    _unknown_keys(spec, path, PARAM_KEYS, problems)
    ptype = spec.get("type")
    if "type" not in spec:
        problems.add(join(path, "type"),
                     f"required key is missing; one of {', '.join(PARAM_TYPES)}")
    elif ptype not in PARAM_TYPES:
        problems.add(join(path, "type"), f"{ptype!r} is not one of {', '.join(PARAM_TYPES)}")
        ptype = None
    required = spec.get("required", False)
    if not isinstance(required, bool):
        problems.add(join(path, "required"), f"expected true or false, got {describe(required)}")
        required = False
    help_text = spec.get("help", "")
    if not isinstance(help_text, str):
        problems.add(join(path, "help"), f"expected a string, got {describe(help_text)}")
        help_text = ""
    choices: tuple[Any, ...] | None = None
    if "choices" in spec:
        raw_choices = spec["choices"]
        if not isinstance(raw_choices, list) or not raw_choices:
            problems.add(join(path, "choices"),
                         f"expected a non-empty list, got {describe(raw_choices)}")
        elif ptype:
            item_type = "str" if ptype == "list" else ptype
            coerced = []
            for index, choice in enumerate(raw_choices):
                try:
                    coerced.append(_coerce(item_type, choice, from_text=False))
                except ValueError as exc:
                    problems.add(join(join(path, "choices"), index), str(exc))
            choices = tuple(coerced)
    default = None
    if "default" in spec:
        if required:
            problems.add(join(path, "default"), "a required parameter has no default; "
                         "drop `required: true` or the default")
        elif ptype and spec["default"] is not None:
            try:
                default = _coerce(ptype, spec["default"], from_text=False)
            except ValueError as exc:
                problems.add(join(path, "default"), f"wrong type for a {ptype} parameter: {exc}")
    if len(problems) > before or ptype is None:
        return None
    param = Param(name=name, type=ptype, required=required, default=default,
                  choices=choices, help=help_text)
    if default is not None:
        bad = _choice_problem(param, default)
        if bad:
            problems.add(join(path, "default"), f"default {bad}")
            return None
    return param


def bind_params(runbook: Runbook, given: Mapping[str, object]) -> dict[str, Any]:
    """The ``params`` template context for a run: ``given`` (usually command-line
    strings) coerced to the declared types, defaults applied.

    Unknown names, missing required parameters, bad values and values outside
    ``choices`` are all reported at once in one ConfigError, each as
    ``params.<name>: ...`` saying what would be accepted. Optional parameters with
    no default and no value bind to None.
    """
    problems: list[str] = []
    declared = runbook.params
    for name in given:
        if name not in declared:
            known = ", ".join(declared) if declared else "none (this runbook takes no parameters)"
            problems.append(f"params.{name}: unknown parameter; declared: {known}"
                            f"{suggest(name, declared)}")
    bound: dict[str, Any] = {}
    for name, param in declared.items():
        value = given.get(name)
        if value is None:
            if param.required:
                hint = f"; one of {', '.join(_show(param.type, c) for c in param.choices)}" \
                    if param.choices else ""
                about = f" ({param.help})" if param.help else ""
                problems.append(f"params.{name}: missing required {param.type} parameter"
                                f"{about}; pass {name}=<value>{hint}")
            bound[name] = param.default
            continue
        try:
            coerced = _coerce(param.type, value, from_text=True)
        except ValueError as exc:
            problems.append(f"params.{name}: {exc}")
            continue
        bad = _choice_problem(param, coerced)
        if bad:
            problems.append(f"params.{name}: {bad}")
            continue
        bound[name] = coerced
    if problems:
        raise ConfigError(
            f"runbook {runbook.id}: {len(problems)} parameter problem"
            f"{'s' if len(problems) != 1 else ''}",
            problems=problems,
        )
    return bound


# --------------------------------------------------------------------------- steps


def _step(raw: dict[str, Any], path: str, phase: str, problems: Problems) -> Step | None:
    before = len(problems)
    unknown = _unknown_keys(raw, path, STEP_KEYS + KINDS, problems)
    step_id = _string(raw, "id", path, problems, required=True)
    if step_id is not None and not STEP_ID.match(step_id):
        problems.add(join(path, "id"), f"{step_id!r} does not match ^[a-z0-9][a-z0-9-]*$ "
                                       "(lower case, digits and dashes)")
    title = _string(raw, "title", path, problems) or step_id or ""
    when = _string(raw, "when", path, problems)
    timeout_s = _duration(raw["timeout"], join(path, "timeout"), problems) \
        if "timeout" in raw else None
    if timeout_s == 0:
        problems.add(join(path, "timeout"), "a timeout of 0 would fail the step at once; "
                     "remove the key for no timeout")
        timeout_s = None
    marks_start, marks_finish = _marks(raw.get("marks"), join(path, "marks"), problems) \
        if "marks" in raw else ((), ())
    lane = _string(raw, "lane", path, problems)
    if lane is not None and not STEP_ID.match(lane):
        problems.add(join(path, "lane"), f"{lane!r} does not match ^[a-z0-9][a-z0-9-]*$ "
                                         "(lower case, digits and dashes)")
    if lane is not None and phase != "main":
        problems.add(join(path, "lane"), f"lanes run main steps side by side; a {phase} "
                     "step runs alone: remove the lane")
    if lane is not None and "approval" in raw:
        problems.add(join(path, "lane"), "an approval waits for a person, so it cannot share "
                     "the terminal with another lane; put it before or after the block")

    kinds = [key for key in raw if key in KINDS]
    kind: str | None = None
    if len(kinds) > 1:
        problems.add(join(path, kinds[1]), f"a step has exactly one kind, this one has "
                     f"{len(kinds)}: {', '.join(kinds)}; split it into {len(kinds)} steps")
    elif not kinds:
        if not unknown:  # an unknown key is most likely the misspelt kind; said already
            problems.add(path, f"no step kind; add exactly one of: {', '.join(KINDS)}")
    else:
        kind = kinds[0]
        if phase == "preflight" and kind != "check":
            problems.add(join(path, kind), f"preflight holds only check steps, this is "
                         f"a {kind} step; move it to steps")
    if len(kinds) > 1:  # still report what is wrong inside each, all at once
        for other in kinds:
            _kind_spec(other, raw[other], join(path, other), problems)
    spec = _kind_spec(kind, raw[kind], join(path, kind), problems) if kind else None
    if len(problems) > before or kind is None or spec is None or step_id is None:
        return None
    line = problems.line_of(path) or 0
    return Step(id=step_id, title=title, kind=kind, spec=spec, when=when, timeout_s=timeout_s,
                marks_start=marks_start, marks_finish=marks_finish, phase=phase, path=path,
                line=line, lane=lane)


def _marks(raw: Any, path: str, problems: Problems) -> tuple[tuple[str, ...], tuple[str, ...]]:
    if not isinstance(raw, dict):
        problems.add(path, f"expected a mapping with start and/or finish, got {describe(raw)}")
        return (), ()
    _unknown_keys(raw, path, MARK_KEYS, problems)
    result: list[tuple[str, ...]] = []
    for key in MARK_KEYS:
        value = raw.get(key, [])
        names = [value] if isinstance(value, str) else value
        if not isinstance(names, list):
            problems.add(join(path, key), f"expected a mark name or a list of them, "
                         f"got {describe(value)}")
            result.append(())
            continue
        good = []
        for index, name in enumerate(names):
            where = join(path, key) if isinstance(value, str) else join(join(path, key), index)
            if name not in MARKS:
                problems.add(where, f"{name!r} is not a mark; expected one of: "
                             f"{', '.join(MARKS)}{suggest(str(name), MARKS)}")
            else:
                good.append(name)
        result.append(tuple(good))
    return result[0], result[1]


def _kind_spec(kind: str, raw: Any, path: str, problems: Problems) -> dict[str, Any] | None:
    fields = KIND_FIELDS[kind]
    required = [name for name, (_, req) in fields.items() if req]
    if not isinstance(raw, dict):
        problems.add(path, f"expected a mapping with {', '.join(required)}, got {describe(raw)}")
        return None
    _unknown_keys(raw, path, tuple(fields), problems)
    for name, (ftype, is_required) in fields.items():
        field_path = join(path, name)
        if name not in raw:
            if is_required:
                problems.add(field_path, "required key is missing")
            continue
        value = raw[name]
        if ftype == "str":
            _string(raw, name, path, problems)
        elif ftype == "tf_action":
            if value not in TERRAFORM_ACTIONS:
                problems.add(field_path, f"{value!r} is not one of {', '.join(TERRAFORM_ACTIONS)}")
        elif ftype == "mapping":
            if not isinstance(value, dict):
                problems.add(field_path, f"expected a mapping, got {describe(value)}")
        elif ftype == "strlist":
            if isinstance(value, str) and templating.is_template(value):
                continue  # renders to a list at run time
            if not isinstance(value, list):
                problems.add(field_path, f"expected a list of strings, got {describe(value)}")
                continue
            for index, item in enumerate(value):
                if not isinstance(item, str):
                    problems.add(join(field_path, index),
                                 f"expected a string, got {describe(item)}")
    spec = dict(raw)
    if kind == "terraform":
        spec.setdefault("action", "apply")
    return spec


# --------------------------------------------------------------------------- templates


def render_spec(step: Step, context: Mapping[str, Any]) -> dict[str, Any]:
    """The step's spec rendered for running it, except the fields that can only
    be rendered after the probe ran (``check.expect``, ``check.message``: they use
    ``result``); those stay as written for the check to evaluate.

    Undefined names raise ConfigError naming the dotted path of the field.
    """
    late = {field.split(".", 1)[1] for field in RESULT_FIELDS
            if field.startswith(f"{step.kind}.")}
    rendered = {
        key: value if key in late
        else templating.render(value, context, where=f"{step.path}.{step.kind}.{key}")
        for key, value in step.spec.items()
    }
    return rendered



def _strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    """Every string inside ``value`` with its dotted path."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, join(path, str(key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(item, join(path, index))


def _check_step_templates(raw: dict[str, Any], step_path: str, params: set[str],
                          earlier: set[str], all_ids: set[str], problems: Problems) -> None:
    """Parse every template and expression in a step and check the names it uses."""
    for key, value in raw.items():
        if key in ("id", "timeout", "marks"):
            continue
        for path, text in _strings(value, join(step_path, str(key))):
            relative = path[len(step_path) + 1:]
            expression = relative == "when" or relative == "check.expect"
            if not expression and not templating.is_template(text):
                continue
            allow_result = relative in RESULT_FIELDS
            _check_template(text, path, expression, allow_result, params, earlier, all_ids,
                            problems)


def _check_template(text: str, path: str, expression: bool, allow_result: bool,
                    params: set[str], earlier: set[str], all_ids: set[str],
                    problems: Problems) -> None:
    if expression and text.lstrip().startswith("{{"):
        problems.add(path, f"{text!r} is an expression; write it without {{{{ }}}}")
        return
    try:
        names = templating.undeclared(text, expression=expression)
    except jinja2.TemplateSyntaxError as exc:
        what = "expression" if expression else "template"
        problems.add(path, f"{what} syntax error: {exc.message}")
        return
    allowed = CONTEXT_NAMES + (("result",) if allow_result else ())
    for name in sorted(names - set(allowed)):
        problems.add(path, f"undefined variable {name!r} in {text.strip()!r}; templates can use "
                     f"{', '.join(allowed)}{suggest(name, allowed)}")
    checks = (
        ("params", params, "is not a declared parameter"),
        ("run", set(RUN_FIELDS), "is not a run field"),
        ("targets", set(TARGET_FIELDS), "is not a target field"),
    )
    for root, known, problem in checks:
        if root not in names:
            continue
        for attr in sorted(templating.attribute_uses(text, root, expression=expression) - known):
            choices = ", ".join(sorted(known)) or "none"
            problems.add(path, f"{root}.{attr} {problem}; declared: {choices}"
                         f"{suggest(attr, known)}")
    if "steps" in names:
        for ref in sorted(templating.attribute_uses(text, "steps", expression=expression)):
            if ref not in all_ids:
                problems.add(path, f"steps.{ref}: there is no step {ref!r}"
                             f"{suggest(ref, all_ids)}")
            elif ref not in earlier:
                problems.add(path, f"steps.{ref}: step {ref!r} has not run yet at this point; "
                             "a step can only use outputs of steps before it, "
                             "not of steps in another lane of its block")


# --------------------------------------------------------------------------- markdown


def _code(text: Any) -> str:
    text = str(text).strip()
    fence = "``" if "`" in text else "`"
    pad = " " if fence == "``" else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _describe_step(step: Step) -> list[str]:
    spec = step.spec
    lines: list[str] = []
    if step.kind == "ansible":
        what = f"ansible: playbook {_code(spec['playbook'])}"
        if "limit" in spec:
            what += f" limited to {_code(spec['limit'])}"
        lines.append(what)
        if spec.get("tags"):
            lines.append(f"tags: {_code(_compact(spec['tags']))}")
        if spec.get("extra_vars"):
            lines.append(f"extra vars: {_code(_compact(spec['extra_vars']))}")
    elif step.kind == "terraform":
        what = f"terraform {spec['action']} in {_code(spec['dir'])}"
        if "workspace" in spec:
            what += f" (workspace {_code(spec['workspace'])})"
        lines.append(what)
        for key, label in (("targets", "targets"), ("vars", "vars"), ("var_files", "var files")):
            if spec.get(key):
                lines.append(f"{label}: {_code(_compact(spec[key]))}")
    elif step.kind == "check":
        lines.append(f"check: probe {_code(spec['probe'])}, expect {_code(spec['expect'])}")
        if spec.get("args"):
            lines.append(f"args: {_code(_compact(spec['args']))}")
        if spec.get("message"):
            lines.append(f"on failure says: {_code(spec['message'])}")
    elif step.kind == "approval":
        lines.append(f"approval: asks {_code(spec['prompt'])}")
    elif step.kind == "notify":
        what = f"notify: template {_code(spec['template'])}"
        if spec.get("channels"):
            what += f" to {_code(_compact(spec['channels']))}"
        lines.append(what)
    elif step.kind == "action":
        lines.append(f"action: {_code(spec['name'])}")
        if spec.get("args"):
            lines.append(f"args: {_code(_compact(spec['args']))}")
    if step.when:
        lines.append(f"only when {_code(step.when)}")
    if step.timeout_s is not None:
        lines.append(f"timeout: {format_duration(step.timeout_s)}")
    if step.marks_start:
        lines.append(f"marks at start: {', '.join(step.marks_start)}")
    if step.marks_finish:
        lines.append(f"marks at finish: {', '.join(step.marks_finish)}")
    return lines


def _compact(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return ", ".join(value)
    return json.dumps(value, sort_keys=False, default=str)


def _step_section(steps: tuple[Step, ...]) -> list[str]:
    out: list[str] = []
    for number, step in enumerate(steps, start=1):
        heading = step.title if step.title == step.id else f"{step.title} ({_code(step.id)})"
        if step.title == step.id:
            heading = _code(step.id)
        lane = f" (lane {_code(step.lane)}, alongside the block's other lanes)" \
            if step.lane else ""
        out.append(f"{number}. **{heading}**{lane}")
        out.extend(f"   - {line}" for line in _describe_step(step))
    return out


def to_markdown(runbook: Runbook) -> str:
    """The runbook as an operator reads it (``drkit show``): what it is for, its
    targets and parameters, then every check and step in order with what it
    runs. Templates are shown as written, so the page matches what will run."""
    out = [
        f"# {runbook.id}: {runbook.title}",
        "",
        f"- **Severity:** {runbook.severity}",
        f"- **RTO target:** {format_duration(runbook.rto_s)}",
        f"- **RPO target:** {format_duration(runbook.rpo_s)}",
        f"- **File:** {_code(runbook.path)} (sha256 {runbook.sha256[:12]})",
        "",
        "## Why",
        "",
        runbook.why.strip(),
        "",
        "## Parameters",
        "",
    ]
    if runbook.params:
        out += ["| Name | Type | Required | Default | Choices | Help |",
                "|---|---|---|---|---|---|"]
        for param in runbook.params.values():
            default = "" if param.default is None else _code(_show(param.type, param.default))
            choices = ", ".join(_show(param.type, c) for c in param.choices or ())
            out.append(f"| {_code(param.name)} | {param.type} | "
                       f"{'yes' if param.required else 'no'} | {_cell(default)} | "
                       f"{_cell(choices)} | {_cell(param.help)} |")
    else:
        out.append("None.")
    sections = (("Preflight checks", runbook.preflight), ("Steps", runbook.steps),
                ("On failure", runbook.on_failure))
    for heading, steps in sections:
        if not steps and heading != "Steps":
            continue
        out += ["", f"## {heading}", ""]
        out += _step_section(steps)
    return "\n".join(out) + "\n"
