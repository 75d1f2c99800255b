"""Whether a process still runs, told apart from a later one that reuses its pid.

A pid alone names a process only while it lives: after it exits the kernel may
hand the number to another one. Whoever records a pid to act on later (the lab's
pid files, the terraform driver's note of a running apply) records the start
time too, and compares both.
"""

from __future__ import annotations

from pathlib import Path


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot, or None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name (field 2) may contain spaces and parentheses: split after it.
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[19])


def is_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie waiting to be reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat[stat.rindex(")") + 2] not in "ZX"


def still_running(pid: int, started: int | None) -> bool:
    """Whether the process that was ``pid`` when it had start time ``started``
    still runs (not a zombie, not another process with the same pid)."""
    return started is not None and is_alive(pid) and start_time(pid) == started
