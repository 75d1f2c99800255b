"""The run journal: an append-only, fsynced JSON-lines file per run, and the run
state derived from it alone.

Why: a DR run can be killed at any instant (the bastion reboots, the operator's
SSH session drops). The engine appends an event *before* each side effect and
waits for it to be on disk, so after a crash the journal says exactly which
steps completed and which one was interrupted; ``--resume`` skips the former
and re-runs the latter. The format is fixed in docs/internals.md
("Journal events"); ``EVENT_FIELDS`` below is that table.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from drkit.errors import ConfigError, DrkitError
from drkit.fsutil import append_line_durably, fsync_dir

log = logging.getLogger(__name__)

JOURNAL_NAME = "journal.jsonl"

#: Event kind -> required fields (docs/internals.md, "Journal events"). Every
#: field must be present (its value may be null, e.g. ``error`` of an ok step).
#: Extra fields are allowed so a newer drkit can add detail without making an
#: older one refuse to resume; an unknown *kind* is always an error.
EVENT_FIELDS: dict[str, set[str]] = {
    "run_started": {
        "run_id", "runbook", "runbook_path", "runbook_sha256", "env", "params",
        "dry_run", "user", "host", "pid", "argv",
    },
    "run_resumed": {"user", "host", "pid", "argv"},
    "preflight_finished": {"ok", "findings"},
    "step_started": {"step", "kind", "attempt", "phase"},
    "step_output": {"step", "outputs"},
    "step_finished": {"step", "status", "duration_s", "error", "tail"},
    "mark": {"name", "step", "at"},
    "rpo_evidence": {"step", "seconds", "lost_writes", "detail"},
    "approval": {"step", "how", "by"},
    "notify": {"step", "template", "text"},
    "notification": {"step", "channel", "template", "action", "ok", "detail", "attempts"},
    "decision": {"text"},
    "interrupted": {"step", "signal"},
    "run_finished": {"status", "rto_s", "rpo_s", "targets_met"},
}

#: Fields whose value must be one of a fixed set (docs/internals.md).
EVENT_CHOICES: dict[tuple[str, str], frozenset[str]] = {
    ("step_started", "phase"): frozenset({"main", "on_failure"}),
    ("step_finished", "status"): frozenset({"ok", "failed", "skipped"}),
    ("approval", "how"): frozenset({"yes-flag", "interactive", "dry-run"}),
    ("run_finished", "status"): frozenset({"succeeded", "failed", "interrupted"}),
}

#: Keys every line carries, set by ``Journal.append``, never by the caller.
ENVELOPE = ("seq", "ts", "event")

RUN_ID_RE = re.compile(r"^\d{8}T\d{6}Z-RB-[A-Z0-9][A-Z0-9-]*$")


def utc_now_iso(now: datetime | None = None) -> str:
    """``2026-11-22T03:01:12.123456Z``: the journal's timestamp format."""
    now = now or datetime.now(UTC)
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_ts(ts: str) -> datetime:
    """Parse a journal timestamp back into an aware UTC datetime."""
    return datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def _problems(record: Any) -> list[str]:
    """What is wrong with one journal record ([] when it is valid)."""
    if not isinstance(record, dict):
        return [f"expected a JSON object, got {type(record).__name__}"]
    problems = []
    seq = record.get("seq")
    if not isinstance(seq, int) or isinstance(seq, bool):
        problems.append("seq: expected an integer")
    ts = record.get("ts")
    try:
        parse_ts(ts)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        problems.append(f"ts: expected a UTC time like 2026-11-22T03:01:12.123456Z, got {ts!r}")
    kind = record.get("event")
    if kind not in EVENT_FIELDS:
        problems.append(
            f"event: unknown kind {kind!r} (known: {', '.join(sorted(EVENT_FIELDS))})"
        )
        return problems
    problems += _field_problems(kind, record)
    return problems


def _field_problems(kind: str, fields: dict[str, Any]) -> list[str]:
    problems = []
    missing = sorted(EVENT_FIELDS[kind] - fields.keys())
    if missing:
        problems.append(f"{kind}: missing field(s) {', '.join(missing)}")
    for (k, name), allowed in EVENT_CHOICES.items():
        if k == kind and name in fields and fields[name] not in allowed:
            problems.append(
                f"{kind}.{name}: {fields[name]!r} is not one of {', '.join(sorted(allowed))}"
            )
    return problems


@dataclass
class _Scan:
    """What reading a journal file found, including a torn tail to repair."""

    events: list[dict[str, Any]]
    good_end: int  # byte offset just past the last valid line (and its newline)
    torn: bytes | None  # an unparseable last line: a crash mid-write
    missing_newline: bool  # the last valid line was written without its "\n"
    decisions: list[str] = field(default_factory=list)


def _scan(path: Path) -> _Scan:
    data = path.read_bytes()
    lines = data.split(b"\n")
    ends_with_newline = data.endswith(b"\n")
    if ends_with_newline:
        lines = lines[:-1]  # the empty string after the final newline
    events: list[dict[str, Any]] = []
    offset = 0
    good_end = 0
    torn: bytes | None = None
    missing_newline = False
    decisions: list[str] = []
    for index, raw in enumerate(lines):
        lineno = index + 1
        is_last = index == len(lines) - 1
        has_newline = not is_last or ends_with_newline
        offset += len(raw) + (1 if has_newline else 0)
        try:
            record = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            if is_last:
                # A crash mid-write leaves a partial line (or, after a power cut,
                # NULs). Everything before it was fsynced and is intact.
                torn = raw
                decisions.append(
                    f"journal {path}: ignoring line {lineno}, a truncated last line "
                    f"({len(raw)} bytes) left by a crash mid-write; lines before it are intact"
                )
                break
            raise ConfigError(
                f"{path}: line {lineno} is not valid JSON ({exc}); the journal is corrupt",
                hint="the run cannot be resumed from it; start a new run",
            ) from None
        problems = _problems(record)
        if not problems and record["seq"] != len(events) + 1:
            problems.append(f"seq: expected {len(events) + 1}, got {record['seq']}")
        if problems:
            raise ConfigError(
                f"{path}: line {lineno} is not a valid journal event",
                problems=[f"line {lineno}: {p}" for p in problems],
                hint="the run cannot be resumed from it; start a new run",
            )
        events.append(record)
        good_end = offset
        missing_newline = not has_newline
    for text in decisions:
        log.warning("%s", text)
    return _Scan(events, good_end, torn, missing_newline, decisions)


def read_events(path: str | os.PathLike[str], *, decisions: list[str] | None = None
                ) -> list[dict[str, Any]]:
    """Read and validate every event of a journal file.

    A truncated last line (a crash mid-write) is tolerated: it is left out and a
    one-line decision saying so is logged and, if given, appended to
    ``decisions``. Any other bad line (not JSON, unknown kind, missing field, out
    of sequence) raises ConfigError naming the file and line number.
    """
    scan = _scan(Path(path))
    if decisions is not None:
        decisions.extend(scan.decisions)
    return scan.events


class Journal:
    """The append-only journal of one run (``<run_dir>/journal.jsonl``)."""

    def __init__(self, run_dir: Path, next_seq: int) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / JOURNAL_NAME
        self._next_seq = next_seq
        self._lock = threading.Lock()

    @classmethod
    def create(cls, run_dir: Path, **run_started_fields: Any) -> Journal:
        """Start the journal of a new run: make ``run_dir`` and write run_started.

        Refuses (DrkitError) if ``run_dir`` already holds a journal: two runs
        must never share one.
        """
        _check_fields("run_started", run_started_fields)
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        path = run_dir / JOURNAL_NAME
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            raise DrkitError(
                f"{path} already exists: another run used this run id",
                hint="wait a second and start again, or --resume that run",
            ) from None
        os.close(fd)
        fsync_dir(run_dir)
        journal = cls(run_dir, next_seq=1)
        journal.append("run_started", **run_started_fields)
        return journal

    @classmethod
    def open(cls, run_dir: Path) -> Journal:
        """Open an existing run's journal to append to it (``--resume``).

        A truncated last line left by a crash is cut off (the line cannot be
        completed) and a ``decision`` event records that it was.
        """
        run_dir = Path(run_dir)
        path = run_dir / JOURNAL_NAME
        if not path.is_file():
            raise ConfigError(f"{path}: no journal here; is {run_dir.name} a drkit run?")
        scan = _scan(path)
        if scan.torn is not None or scan.missing_newline:
            with open(path, "r+b") as fh:
                fh.truncate(scan.good_end)
                if scan.missing_newline:
                    fh.seek(0, os.SEEK_END)
                    fh.write(b"\n")
                fh.flush()
                os.fsync(fh.fileno())
        journal = cls(run_dir, next_seq=len(scan.events) + 1)
        if scan.torn is not None:
            journal.append(
                "decision",
                text=f"journal: removed a truncated last line ({len(scan.torn)} bytes) "
                f"left by a crash mid-write; the {len(scan.events)} events before it are intact",
            )
        return journal

    def append(self, event: str, **fields: Any) -> dict[str, Any]:
        """Append one event and return it once it is on disk (written and fsynced).

        Adds ``seq`` and a UTC ``ts`` with microseconds. An unknown kind, a
        missing required field or a value that is not JSON is a programming
        error (ValueError): nothing is written.
        """
        _check_fields(event, fields)
        with self._lock:  # steps in lanes append from threads: one seq, one line each
            record = {"seq": self._next_seq, "ts": utc_now_iso(), "event": event, **fields}
            try:
                line = json.dumps(record, default=_json_default, allow_nan=False)
            except (TypeError, ValueError) as exc:
                raise ValueError(
                    f"journal event {event}: cannot be written as JSON: {exc}") from None
            append_line_durably(self.path, line)
            self._next_seq += 1
        return json.loads(line)

    def events(self) -> list[dict[str, Any]]:
        """Every event written so far, validated."""
        with self._lock:
            return read_events(self.path)

    def state(self) -> RunState:
        """The run's state, derived from the journal alone."""
        return RunState.from_events(self.events())


def _check_fields(event: str, fields: dict[str, Any]) -> None:
    if event not in EVENT_FIELDS:
        raise ValueError(
            f"journal: unknown event kind {event!r} (known: {', '.join(sorted(EVENT_FIELDS))})"
        )
    reserved = sorted(set(ENVELOPE) & fields.keys())
    if reserved:
        raise ValueError(f"journal event {event}: {', '.join(reserved)} are set by the journal")
    problems = _field_problems(event, fields)
    if problems:
        raise ValueError("journal: " + "; ".join(problems))


def _json_default(value: Any) -> Any:
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, datetime):
        return utc_now_iso(value)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


@dataclass(frozen=True)
class RunState:
    """What a run did, derived from its journal events alone.

    ``status`` is ``running`` when the latest start or resume has no
    run_finished after it: the process is still going or was killed.
    """

    run_id: str
    runbook: str
    env: str
    params: dict[str, Any]
    dry_run: bool
    status: str
    completed_steps: tuple[str, ...]
    failed_step: str | None
    interrupted_step: str | None
    started_at: str
    finished_at: str | None
    marks: dict[str, str]
    rpo_evidence: tuple[dict[str, Any], ...]
    step_durations: dict[str, float]
    outputs: dict[str, dict[str, Any]]
    approvals: tuple[dict[str, Any], ...]
    attempts: dict[str, int]
    resumes: int = 0
    step_status: dict[str, str] = field(default_factory=dict)
    #: Every step started and never finished (several when lanes ran side by side);
    #: ``interrupted_step`` is the last of them to start.
    interrupted_steps: tuple[str, ...] = ()

    @classmethod
    def from_events(cls, events: Sequence[dict[str, Any]]) -> RunState:
        """Fold the journal into the run's state.

        Per step only the latest outcome counts: a step that failed and then
        succeeded on resume is completed; one that was started and never
        finished (killed or interrupted) is the one to re-run.
        """
        if not events or events[0].get("event") != "run_started":
            raise ConfigError(
                "journal does not begin with run_started; the run never really started",
                hint="start a new run",
            )
        first = events[0]
        status = "running"
        finished_at: str | None = None
        latest: dict[str, str] = {}  # step -> latest main-phase outcome
        finish_order: list[str] = []
        phase_of: dict[str, str] = {}
        open_steps: dict[str, None] = {}  # started main steps without a finish, in order
        marks: dict[str, str] = {}
        rpo: list[dict[str, Any]] = []
        durations: dict[str, float] = {}
        outputs: dict[str, dict[str, Any]] = {}
        approvals: list[dict[str, Any]] = []
        attempts: dict[str, int] = {}
        resumes = 0
        for ev in events:
            kind = ev["event"]
            if kind == "run_resumed":
                resumes += 1
                status, finished_at = "running", None
            elif kind == "run_finished":
                status, finished_at = ev["status"], ev["ts"]
            elif kind == "step_started":
                step = ev["step"]
                attempts[step] = attempts.get(step, 0) + 1
                phase_of[step] = ev["phase"]
                if ev["phase"] == "main":
                    open_steps[step] = None
            elif kind == "step_finished":
                step = ev["step"]
                open_steps.pop(step, None)
                if ev["duration_s"] is not None:
                    durations[step] = float(ev["duration_s"])
                if phase_of.get(step, "main") == "main":
                    latest[step] = ev["status"]
                    if step in finish_order:
                        finish_order.remove(step)
                    finish_order.append(step)
            elif kind == "step_output":
                outputs.setdefault(ev["step"], {}).update(ev["outputs"] or {})
            elif kind == "mark":
                # First occurrence wins: re-running a step on resume must not
                # move the moment the outage started.
                marks.setdefault(ev["name"], ev["at"])
            elif kind == "rpo_evidence":
                rpo.append({k: ev[k] for k in ("step", "seconds", "lost_writes", "detail")}
                           | {"ts": ev["ts"]})
            elif kind == "approval":
                approvals.append({k: ev[k] for k in ("step", "how", "by")}
                                 | {"ts": ev["ts"], "prompt": ev.get("prompt", "")})
        completed = tuple(s for s in finish_order if latest[s] in ("ok", "skipped"))
        failed = [s for s in finish_order if latest[s] == "failed"]
        interrupted = next(reversed(open_steps), None) if open_steps else None
        return cls(
            run_id=first["run_id"],
            runbook=first["runbook"],
            env=first["env"],
            params=dict(first["params"] or {}),
            dry_run=bool(first["dry_run"]),
            status=status,
            completed_steps=completed,
            failed_step=failed[-1] if failed else None,
            interrupted_step=interrupted,
            started_at=first["ts"],
            finished_at=finished_at,
            marks=marks,
            rpo_evidence=tuple(rpo),
            step_durations=durations,
            outputs=outputs,
            approvals=tuple(approvals),
            attempts=attempts,
            resumes=resumes,
            step_status=dict(latest),
            interrupted_steps=tuple(open_steps),
        )

    def next_action(self, step_ids: Iterable[str]) -> dict[str, str]:
        """For each step of the runbook, in order, what a resume does with it.

        Each value is a one-line text for the engine to log and journal as a
        decision; its first word is the verb: ``skip (completed in <run>)``,
        ``re-run (interrupted)``, ``re-run (failed)`` or ``run``.
        """
        completed = set(self.completed_steps)
        actions: dict[str, str] = {}
        for step in step_ids:
            if step in completed:
                actions[step] = f"skip (completed in {self.run_id})"
            elif step == self.interrupted_step or step in self.interrupted_steps:
                actions[step] = "re-run (interrupted)"
            elif self.step_status.get(step) == "failed":
                actions[step] = "re-run (failed)"
            else:
                actions[step] = "run"
        return actions


def new_run_id(runbook_id: str, now: datetime) -> str:
    """``YYYYMMDDTHHMMSSZ-<RUNBOOK-ID>`` in UTC; ``now`` must be timezone-aware."""
    if now.tzinfo is None:
        raise ValueError("new_run_id: now must be timezone-aware (use datetime.now(UTC))")
    return f"{now.astimezone(UTC):%Y%m%dT%H%M%SZ}-{runbook_id}"


def find_run(runs_dir: Path, run_id: str) -> Path:
    """The directory of run ``run_id`` under ``runs_dir``.

    A run that does not exist is a ConfigError listing the five latest runs, so
    the operator can copy the right id.
    """
    runs_dir = Path(runs_dir)
    candidate = runs_dir / run_id
    if RUN_ID_RE.match(run_id) and (candidate / JOURNAL_NAME).is_file():
        return candidate
    latest = list_runs(runs_dir)[-5:][::-1]
    listing = ", ".join(latest) if latest else "none"
    raise ConfigError(
        f"no run {run_id!r} in {runs_dir}; latest runs: {listing}",
        hint="pass one of those to --resume",
    )


def list_runs(runs_dir: Path) -> list[str]:
    """Run ids under ``runs_dir`` that have a journal, oldest first (the latest last)."""
    if not Path(runs_dir).is_dir():
        return []
    ids = [
        p.name for p in Path(runs_dir).iterdir()
        if RUN_ID_RE.match(p.name) and (p / JOURNAL_NAME).is_file()
    ]
    # Ids begin with their UTC start time, so name order is time order.
    return sorted(ids)
