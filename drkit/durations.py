"""Durations as runbooks write them ("30m", "1h30m", "500ms") and as people read them.

Runbook targets, step timeouts and `duration` parameters all use one grammar:
one or more ``<number><unit>`` parts with unit ms, s, m, h or d. Internally a
duration is always a float number of seconds.
"""

from __future__ import annotations

import math
import re

UNITS: dict[str, float] = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}

ACCEPTED_FORM = '<number><unit>[<number><unit>...] with unit ms|s|m|h|d, e.g. "30m", "1h30m", "0s"'

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")


def parse_duration(text: str | int | float) -> float:
    """Return the duration ``text`` in seconds.

    Numbers (int or float) are taken as seconds. Strings must follow the
    runbook grammar; anything else raises ValueError naming the bad text and
    the accepted form, so a loader can pass the message straight to the user.
    """
    if isinstance(text, bool):
        raise ValueError(f"{text!r} is not a duration; expected {ACCEPTED_FORM}")
    if isinstance(text, int | float):
        if not math.isfinite(text) or text < 0:
            raise ValueError(f"{text!r} is not a duration; expected a number of seconds >= 0")
        return float(text)
    if not isinstance(text, str):
        raise ValueError(f"{text!r} is not a duration; expected {ACCEPTED_FORM}")
    compact = text.strip()
    pos = 0
    total = 0.0
    seen: set[str] = set()
    while pos < len(compact):
        match = _PART.match(compact, pos)
        if match is None or match.group(2) in seen:
            raise ValueError(f"{text!r} is not a duration; expected {ACCEPTED_FORM}")
        seen.add(match.group(2))
        total += float(match.group(1)) * UNITS[match.group(2)]
        pos = match.end()
    if not compact:
        raise ValueError(f"{text!r} is not a duration; expected {ACCEPTED_FORM}")
    return total


def format_duration(seconds: float) -> str:
    """Format seconds for a person: "0.5s", "42.3s", "4m 05s", "1h 02m", "2d 03h"."""
    if seconds < 0:
        return "-" + format_duration(-seconds)
    if round(seconds, 1) < 60:
        return f"{seconds:.1f}s"
    whole = round(seconds)
    if whole < 3600:
        return f"{whole // 60}m {whole % 60:02d}s"
    if whole < 86400:
        return f"{whole // 3600}h {whole % 3600 // 60:02d}m"
    return f"{whole // 86400}d {whole % 86400 // 3600:02d}h"
