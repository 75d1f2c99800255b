"""Rehearsal history: one JSON line per rehearsal, one file per environment,
and the comparison that decides whether a rehearsal got worse.

``<state dir>/history/<env>.jsonl`` (docs/internals.md, "Rehearsal history").
Lines are appended under an exclusive lock and fsynced; a line torn by a crash
(the file does not end with a newline) is dropped by the next append and ignored
by readers. Any other line that is not a record is an error naming its line
number: a history that cannot be read cannot say whether a rehearsal regressed.
"""

from __future__ import annotations

import fcntl
import json
import os
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drkit.durations import format_duration
from drkit.errors import ConfigError
from drkit.fsutil import fsync_dir

VERSION = 1
#: Every record has these keys (more are allowed: a newer drkit may add some).
REQUIRED = {"v": int, "rehearsal": str, "runbook": str, "env": str, "run_id": (str, type(None)),
            "started_at": str, "status": str, "rto_s": (int, float, type(None)),
            "rpo_s": (int, float, type(None)), "targets": dict, "steps": list,
            "baseline": dict, "verdict": str, "regressions": list}
VERDICTS = ("passed", "failed")


def history_path(state_dir: Path, env_name: str) -> Path:
    return Path(state_dir) / "history" / f"{env_name}.jsonl"


def _record_problem(rec: Any) -> str | None:
    if not isinstance(rec, dict):
        return f"expected a JSON object, got {type(rec).__name__}"
    for key, kind in REQUIRED.items():
        if key not in rec:
            return f"missing {key!r}"
        if not isinstance(rec[key], kind) or isinstance(rec[key], bool):
            return f"{key!r} has the wrong type ({type(rec[key]).__name__})"
    if rec["v"] != VERSION:
        return f"format version {rec['v']} (this drkit reads {VERSION})"
    if rec["verdict"] not in VERDICTS:
        return f"verdict {rec['verdict']!r} is not one of {', '.join(VERDICTS)}"
    for i, step in enumerate(rec["steps"]):
        if not (isinstance(step, dict) and isinstance(step.get("id"), str)
                and isinstance(step.get("status"), str)):
            return f"steps[{i}] is not {{id, status, duration_s}}"
    return None


def read_history(path: Path, *, rehearsal: str | None = None) -> list[dict[str, Any]]:
    """Every record in ``path`` (oldest first), or those of one ``rehearsal``.
    A missing file is an empty history; a corrupt line is a ConfigError naming it."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except UnicodeDecodeError:
        raise ConfigError(f"history {path} is not UTF-8 text",
                          hint="move it aside; a new history starts empty") from None
    lines = text.split("\n")
    # The last element is "" when the file ends with a newline; anything else is a
    # line whose append was cut short by a crash: not a record yet, ignored.
    lines = lines[:-1]
    out = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            problem: str | None = f"not JSON ({exc.msg} at column {exc.colno})"
        else:
            problem = _record_problem(rec)
        if problem:
            raise ConfigError(f"history {path} line {number}: {problem}",
                              hint="fix or delete that line (each line is one rehearsal); "
                                   "docs/internals.md describes the format")
        if rehearsal is None or rec["rehearsal"] == rehearsal:
            out.append(rec)
    return out


def append_record(path: Path, record: dict[str, Any]) -> None:
    """Append ``record`` as one line, under an exclusive lock, fsynced. A torn last
    line (a crash mid-append) is cut off first, so it never joins the new record."""
    problem = _record_problem(record)
    if problem:
        raise ValueError(f"not a history record: {problem}")
    line = json.dumps(record, sort_keys=True, separators=(",", ":")) + "\n"
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    created = not path.exists()
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        size = os.lseek(fd, 0, os.SEEK_END)
        if size:
            os.lseek(fd, max(0, size - 65536), os.SEEK_SET)
            tail = os.read(fd, 65536)
            if not tail.endswith(b"\n"):
                cut = tail.rfind(b"\n")
                keep = size - len(tail) + cut + 1 if cut >= 0 else max(0, size - len(tail))
                os.ftruncate(fd, keep)
                size = keep
        os.lseek(fd, size, os.SEEK_SET)
        os.write(fd, line.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)  # releases the lock
    if created:
        fsync_dir(path.parent)


# ----------------------------------------------------------------------------- comparison


@dataclass(frozen=True)
class Regression:
    """Why a rehearsal failed: what (kind), which step, in one line."""

    kind: str  # step-failed | target-missed | rto-regression | baseline-failed | not-run
    step: str | None
    text: str


def compare(record: dict[str, Any], previous: list[dict[str, Any]], *, last: int,
            margin: float) -> list[Regression]:
    """What makes ``record`` a failed rehearsal: a failed step, a missed target,
    an RTO more than ``margin`` worse than the median of the ``last`` previous
    measured RTOs of the same rehearsal, or a baseline not restored. Each names
    the runbook, the step and the regression."""
    rb = record["runbook"]
    out: list[Regression] = []
    for step in record["steps"]:
        if step["status"] in ("failed", "interrupted"):
            error = step.get("error") or step["status"]
            out.append(Regression("step-failed", step["id"],
                                  f"{rb} step {step['id']} {step['status']}: {error}"))
    if record["status"] == "refused":
        out.append(Regression("not-run", "preflight",
                              f"{rb} refused by its preflight: "
                              + "; ".join(record.get("findings") or ["see the report"])))
    elif record["status"] != "succeeded" and not out:
        out.append(Regression("step-failed", None, f"{rb} run {record['status']}"))
    targets, met = record["targets"], record.get("met") or {}
    slowest = _slowest_step(record)
    for key, label in (("rto", "RTO"), ("rpo", "RPO")):
        if met.get(key) is False:
            step = slowest if key == "rto" else None
            where = f" (longest step: {step})" if step else ""
            out.append(Regression("target-missed", step,
                                  f"{rb} {label} {format_duration(record[key + '_s'])} missed "
                                  f"its target {format_duration(targets[key + '_s'])}{where}"))
    rtos = [p["rto_s"] for p in previous if p.get("rto_s") is not None][-last:]
    if record.get("rto_s") is not None and rtos:
        median = statistics.median(rtos)
        limit = median * (1 + margin)
        if record["rto_s"] > limit:
            step, detail = _grown_step(record, previous[-last:])
            worse = (record["rto_s"] / median - 1) * 100 if median > 0 else float("inf")
            out.append(Regression(
                "rto-regression", step,
                f"{rb} RTO {format_duration(record['rto_s'])} is {_pct(worse)} worse than the "
                f"median {format_duration(median)} of the last {len(rtos)} rehearsal(s) "
                f"(margin {margin * 100:.0f}%); step {step or '?'} {detail}"))
    baseline = record["baseline"]
    if not baseline.get("ok", False):
        out.append(Regression("baseline-failed", None,
                              f"baseline not restored after {rb}: "
                              f"{baseline.get('detail') or 'no detail'}"))
    return out


def _pct(value: float) -> str:
    return "infinitely" if value == float("inf") else f"{value:.0f}%"


def _slowest_step(record: dict[str, Any]) -> str | None:
    timed = [s for s in record["steps"] if s.get("duration_s") is not None]
    return max(timed, key=lambda s: s["duration_s"])["id"] if timed else None


def _grown_step(record: dict[str, Any], previous: list[dict[str, Any]]) -> tuple[str | None, str]:
    """The step whose time grew most against its median in ``previous``."""
    best: tuple[float, str, str] | None = None
    for step in record["steps"]:
        now = step.get("duration_s")
        if now is None:
            continue
        before = [s["duration_s"] for p in previous for s in p["steps"]
                  if s["id"] == step["id"] and s.get("duration_s") is not None]
        median = statistics.median(before) if before else 0.0
        grown = now - median
        detail = (f"took {format_duration(now)} against a median of {format_duration(median)}"
                  if before else f"took {format_duration(now)} (not in earlier rehearsals)")
        if best is None or grown > best[0]:
            best = (grown, step["id"], detail)
    return (best[1], best[2]) if best else (None, "")


def trend(records: list[dict[str, Any]], last: int) -> list[dict[str, Any]]:
    """The last ``last`` records as the points of a trend: run id, when, RTO, verdict."""
    return [{"run_id": r["run_id"], "started_at": r["started_at"], "rto_s": r["rto_s"],
             "rpo_s": r["rpo_s"], "target_rto_s": r["targets"].get("rto_s"),
             "verdict": r["verdict"]} for r in records[-last:]]
