"""Reading one key of a runbook mapping, recording a problem when it is wrong.

Shared by the checks of the file (``validate.py``) and of parameter declarations
(``params.py``): unknown keys with a suggestion, non-empty strings, durations.
"""

from __future__ import annotations

from typing import Any

from drkit.durations import parse_duration
from drkit.schema import Problems, describe, join, suggest


def unknown_keys(raw: dict[Any, Any], path: str, allowed: tuple[str, ...],
                 problems: Problems) -> list[str]:
    """The keys of ``raw`` not in ``allowed``; records a problem for each."""
    unknown = [key for key in raw if key not in allowed]
    for key in unknown:
        key_text = str(key)
        problems.add(join(path, key_text), f"unknown key; expected one of: "
                     f"{', '.join(allowed)}{suggest(key_text, allowed)}")
    return [str(k) for k in unknown]


def string_field(raw: dict[str, Any], key: str, path: str, problems: Problems,
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


def duration_field(value: Any, path: str, problems: Problems) -> float | None:
    """``value`` as seconds; records a problem and returns None when it is no duration."""
    try:
        return parse_duration(value)
    except ValueError as exc:
        problems.add(path, str(exc))
        return None
