"""Runbook parameters: checking their declarations, binding the values of a run.

A declaration (``params:`` in the file) is checked when the runbook loads;
``bind_params`` coerces the values given for a run (usually command-line strings)
to the declared types and reports every bad one at once.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from drkit.durations import format_duration, parse_duration
from drkit.errors import ConfigError
from drkit.runbook.fields import unknown_keys
from drkit.runbook.model import Param, Runbook
from drkit.schema import Problems, describe, join, suggest

PARAM_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")
PARAM_TYPES = ("str", "int", "float", "bool", "duration", "list")
PARAM_KEYS = ("type", "required", "default", "choices", "help")


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


def show_value(ptype: str, value: Any) -> str:
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
    options = ", ".join(show_value(param.type, c) for c in param.choices)
    values = value if param.type == "list" else [value]
    bad = [v for v in values if v not in param.choices]
    if not bad:
        return None
    return f"{show_value(param.type, bad[0])!r} is not one of {options}"


def parse_params(raw: Any, problems: Problems) -> dict[str, Param]:
    """The ``params:`` declarations of a runbook; records a problem for each bad one."""
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
    unknown_keys(spec, path, PARAM_KEYS, problems)
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
                hint = f"; one of {', '.join(show_value(param.type, c) for c in param.choices)}" \
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
