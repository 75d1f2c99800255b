"""What every driver returns: the outcome of one tool run, as data.

Drivers do not raise when the tool fails; they return a DriverResult and the
engine decides what the failure means (STYLE.md, "Drivers return results").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

TAIL_LINES = 20


@dataclass
class DriverResult:
    """The outcome of one terraform command or one playbook run.

    ``summary`` is one line for the live display and the journal
    ("apply: 2 added, 0 changed, 0 destroyed", "playbook: ok=3 changed=1 failed=0").
    ``outputs`` is data for later steps (``steps.<id>.outputs``); ``changes`` lists
    what changed (or, for a plan or a check-mode run, what would change);
    ``log_path`` is the raw tool output kept in the run directory; ``tail`` holds
    the last meaningful lines an operator needs when the run failed.
    """

    ok: bool
    rc: int
    summary: str
    outputs: dict = field(default_factory=dict)
    changes: list[dict] = field(default_factory=list)
    log_path: Path | None = None
    tail: list[str] = field(default_factory=list)


def last_lines(lines: list[str], n: int = TAIL_LINES) -> list[str]:
    """The last ``n`` non-blank lines, right-stripped, for ``DriverResult.tail``."""
    meaningful = [line.rstrip() for line in lines if line.strip()]
    return meaningful[-n:]
