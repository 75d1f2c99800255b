"""Validating a runbook's YAML into a ``Runbook``: the schema of the file.

Every problem of the file is recorded at once, each with its dotted path and
line, before anything runs: unknown keys, wrong types, bad durations, duplicate
ids, a step with no kind or two, lanes where they cannot run. Parameter
declarations are checked by ``params.py`` and templates by
``validate_templates.py``, called from here (docs/internals.md, "Runbook YAML").
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from drkit import templating
from drkit.runbook.fields import duration_field, string_field, unknown_keys
from drkit.runbook.model import Runbook, Step
from drkit.runbook.params import parse_params
from drkit.runbook.validate_templates import check_step_templates
from drkit.schema import Problems, describe, join, suggest

RUNBOOK_ID = re.compile(r"^RB-[A-Z0-9][A-Z0-9-]*$")
STEP_ID = re.compile(r"^[a-z0-9][a-z0-9-]*$")

SEVERITIES = ("SEV1", "SEV2", "SEV3", "SEV4")
MARKS = ("outage_start", "service_restored", "data_restored", "failover_decided")
TERRAFORM_ACTIONS = ("plan", "apply", "destroy")
PHASES = ("preflight", "main", "on_failure")

TOP_KEYS = ("id", "title", "why", "severity", "targets", "params", "preflight", "steps",
            "on_failure", "keep_going")
TOP_REQUIRED = ("id", "title", "why", "severity", "targets", "steps")
TARGET_KEYS = ("rto", "rpo")
STEP_KEYS = ("id", "title", "when", "timeout", "marks", "lane")
MARK_KEYS = ("start", "finish")
#: Step ids a template could not reach as ``steps.<id>``: Jinja finds the dict's
#: method of that name first.
SHADOWED_IDS = frozenset(name for name in dir(dict) if not name.startswith("_"))

# Field kinds: "str", "mapping" (any values, templated), "strlist" (list of
# strings, or one template rendering to a list), "tf_action".
KIND_FIELDS: dict[str, dict[str, tuple[str, bool]]] = {
    "ansible": {"playbook": ("str", True), "limit": ("str", False),
                "extra_vars": ("mapping", False), "tags": ("strlist", False)},
    "terraform": {"dir": ("str", True), "workspace": ("str", False),
                  "action": ("tf_action", False), "vars": ("mapping", False),
                  "var_files": ("strlist", False), "targets": ("strlist", False)},
    # A check asks a probe, or (``of``) looks again at what an earlier step
    # found, without asking twice: exactly one of the two.
    "check": {"probe": ("str", False), "of": ("str", False), "args": ("mapping", False),
              "expect": ("str", True), "message": ("str", False)},
    "approval": {"prompt": ("str", True)},
    "notify": {"template": ("str", True), "channels": ("strlist", False),
               "vars": ("mapping", False)},
    "action": {"name": ("str", True), "args": ("mapping", False)},
}
KINDS = tuple(KIND_FIELDS)


def build_runbook(raw: Any, path: Path, sha256: str, problems: Problems) -> Runbook | None:
    """The runbook ``raw`` (parsed YAML) describes, or None with every problem recorded."""
    if not isinstance(raw, dict):
        problems.add("", f"expected a mapping with keys {', '.join(TOP_REQUIRED)}, "
                         f"got {describe(raw)}")
        return None
    unknown_keys(raw, "", TOP_KEYS, problems)
    for key in TOP_REQUIRED:
        if key not in raw:
            problems.add(key, "required key is missing", line=1)

    runbook_id = string_field(raw, "id", "", problems)
    if runbook_id is not None and not RUNBOOK_ID.match(runbook_id):
        problems.add("id", f"{runbook_id!r} does not match ^RB-[A-Z0-9][A-Z0-9-]*$ "
                           "(e.g. RB-DR-003)")
    title = string_field(raw, "title", "", problems)
    why = string_field(raw, "why", "", problems)
    severity = string_field(raw, "severity", "", problems)
    if severity is not None and severity not in SEVERITIES:
        problems.add("severity", f"{severity!r} is not one of {', '.join(SEVERITIES)}")
    rto_s, rpo_s = _targets(raw.get("targets"), "targets" in raw, problems)
    keep_going = raw.get("keep_going", False)
    if not isinstance(keep_going, bool):
        problems.add("keep_going", f"expected true or false, got {describe(keep_going)}")
    params = parse_params(raw.get("params"), problems) if "params" in raw else {}

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
        check_step_templates(item, step_path, declared, earlier, set(order), problems)

    if problems:
        return None
    return Runbook(
        id=runbook_id or "", title=title or "", why=why or "", severity=severity or "",
        rto_s=rto_s or 0.0, rpo_s=rpo_s or 0.0, params=params,
        preflight=tuple(built["preflight"]), steps=tuple(built["main"]),
        on_failure=tuple(built["on_failure"]), path=path, sha256=sha256,
        keep_going=keep_going is True,
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


def _targets(raw: Any, present: bool, problems: Problems) -> tuple[float | None, float | None]:
    if not present:
        return None, None
    if not isinstance(raw, dict):
        problems.add("targets", f"expected a mapping with rto and rpo, got {describe(raw)}")
        return None, None
    unknown_keys(raw, "targets", TARGET_KEYS, problems)
    values: list[float | None] = []
    for key in TARGET_KEYS:
        if key not in raw:
            problems.add(join("targets", key), "required key is missing")
            values.append(None)
        else:
            values.append(duration_field(raw[key], join("targets", key), problems))
    return values[0], values[1]


def _step(raw: dict[str, Any], path: str, phase: str, problems: Problems) -> Step | None:
    before = len(problems)
    unknown = unknown_keys(raw, path, STEP_KEYS + KINDS, problems)
    step_id = string_field(raw, "id", path, problems, required=True)
    if step_id is not None and not STEP_ID.match(step_id):
        problems.add(join(path, "id"), f"{step_id!r} does not match ^[a-z0-9][a-z0-9-]*$ "
                                       "(lower case, digits and dashes)")
    elif step_id in SHADOWED_IDS:
        problems.add(join(path, "id"), f"{step_id!r} is also a method of the steps mapping: "
                     f"`steps.{step_id}` in a template would name the method, not this step; "
                     "choose another id")
    title = string_field(raw, "title", path, problems) or step_id or ""
    when = string_field(raw, "when", path, problems)
    timeout_s = duration_field(raw["timeout"], join(path, "timeout"), problems) \
        if "timeout" in raw else None
    if timeout_s == 0:
        problems.add(join(path, "timeout"), "a timeout of 0 would fail the step at once; "
                     "remove the key for no timeout")
        timeout_s = None
    marks_start, marks_finish = _marks(raw.get("marks"), join(path, "marks"), problems) \
        if "marks" in raw else ((), ())
    lane = string_field(raw, "lane", path, problems)
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
    unknown_keys(raw, path, MARK_KEYS, problems)
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
    unknown_keys(raw, path, tuple(fields), problems)
    for name, (ftype, is_required) in fields.items():
        field_path = join(path, name)
        if name not in raw:
            if is_required:
                problems.add(field_path, "required key is missing")
            continue
        value = raw[name]
        if ftype == "str":
            string_field(raw, name, path, problems)
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
    if kind == "check" and ("probe" in raw) == ("of" in raw):
        problems.add(join(path, "probe"), "a check has exactly one of probe (ask a probe) or "
                     "of (the result of an earlier step)" + (", not both" if "of" in raw else ""))
    if kind == "check" and "of" in raw and "args" in raw:
        problems.add(join(path, "args"), "a check `of` an earlier step asks no probe, so it "
                     "takes no args; remove them")
    spec = dict(raw)
    if kind == "terraform":
        spec.setdefault("action", "apply")
    return spec
