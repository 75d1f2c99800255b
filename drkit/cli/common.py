"""What every task shares: the one place errors become exit codes, and the
call that runs a runbook and prints how it went."""

from __future__ import annotations

import functools
import json
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from invoke import Program
from invoke.exceptions import Exit, ParseError

from drkit.display import make_display
from drkit.durations import parse_duration
from drkit.engine import Engine, RunOptions
from drkit.env import Environment, load_environment
from drkit.errors import ConfigError, DrkitError, ExitCode
from drkit.fsutil import atomic_write_text
from drkit.journal import RUN_ID_RE
from drkit.notify import SEVERITIES, normalize_severity
from drkit.project import find_project
from drkit.runbook import load_runbook, resolve_runbook

F = TypeVar("F", bound=Callable[..., Any])


def _exit(exc: DrkitError) -> Exit:
    """The only place a drkit error becomes an exit code: the error's documented one.
    Tasks reach it through maps_errors, unparsable command lines through DrkitProgram."""
    return Exit(f"drkit: {exc}", code=exc.exit_code)


def maps_errors(fn: F) -> F:
    """Turn DrkitError into invoke.Exit with the error's documented exit code."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except DrkitError as exc:
            raise _exit(exc) from None
        except KeyboardInterrupt:
            raise Exit("drkit: interrupted", code=ExitCode.INTERRUPTED) from None

    return wrapper  # type: ignore[return-value]


class DrkitProgram(Program):
    """invoke's Program, except that a command line it cannot parse (an unknown
    task or flag, a missing argument) is bad input, exit 2, like any other."""

    def parse_core(self, argv: list[str] | None) -> None:
        argv = self._help_first(argv)
        try:
            super().parse_core(argv)
        except ParseError as exc:
            raise self._bad_command_line(exc) from None

    def parse_tasks(self) -> None:
        try:
            super().parse_tasks()
        except ParseError as exc:
            raise self._bad_command_line(exc) from None

    def parse_cleanup(self) -> None:
        try:
            super().parse_cleanup()
        except ParseError as exc:
            raise self._bad_command_line(exc) from None

    def _help_first(self, argv: list[str] | None) -> list[str] | None:
        """``drkit TASK ... --help`` as ``drkit --help TASK``: invoke would hand
        --help to a task's positional argument (``drkit show --help`` looked for a
        runbook named --help) instead of printing the task's help."""
        if argv is None:
            argv = list(sys.argv)
        if len(argv) < 3:
            return argv
        task = argv[1]
        if task.startswith("-") or "--help" not in argv[2:]:
            return argv
        return [argv[0], "--help", task]

    def _bad_command_line(self, exc: ParseError) -> Exit:
        task = getattr(exc.context, "name", None)
        hint = (f"`{self.binary} {task} --help` lists its options" if task
                else f"`{self.binary} --list` lists the tasks")
        return _exit(ConfigError(str(exc).rstrip("!"), hint=hint))


def parse_params(pairs: list[str] | None) -> dict[str, str]:
    """``--param key=value`` pairs (repeatable) as a dict."""
    out: dict[str, str] = {}
    problems = []
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            problems.append(f"{pair!r} is not name=value")
        elif key in out and out[key] != value:
            problems.append(f"{key} given twice ({out[key]!r}, then {value!r})")
        else:
            out[key] = value
    if problems:
        raise ConfigError("bad --param", problems=problems,
                          hint="pass each parameter once as --param name=value")
    return out


def parse_time(text: str, flag: str) -> datetime | None:
    """An ISO-8601 time in the past (``2026-11-22T03:01:00Z``), or None when empty."""
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"{flag} {text!r}: not an ISO-8601 time",
                          hint="use e.g. 2026-11-22T03:01:00Z") from None
    value = value if value.tzinfo else value.replace(tzinfo=UTC)
    now = datetime.now(UTC)
    if value > now:
        raise ConfigError(f"{flag} {text}: in the future (it is {now:%Y-%m-%dT%H:%M:%SZ} now)",
                          hint="give the time the outage began, in UTC or with its offset")
    return value


def parse_positive(text: str, flag: str, *, kind: type[int] | type[float] = float,
                   example: str) -> Any:
    """A number greater than 0 given as ``flag``, or a ConfigError saying so."""
    try:
        value = kind(text)
    except ValueError:
        value = None
    if value is None or not math.isfinite(value) or value <= 0:
        what = "a whole number" if kind is int else "a number"
        raise ConfigError(f"{flag} {text!r}: expected {what} greater than 0",
                          hint=f"e.g. {flag} {example}")
    return value


def parse_duration_flag(text: str, flag: str, *, hint: str) -> float:
    """A duration given as ``flag`` (``30s``, ``2m``; a bare number is seconds)."""
    try:
        try:
            value: str | float = float(text)
        except ValueError:
            value = text
        return parse_duration(value)
    except ValueError as exc:
        raise ConfigError(f"{flag} {exc}", hint=hint) from None


def parse_severity(text: str) -> str | None:
    """``--severity``: SEV1..SEV4 (SEV-1, sev1 and 1 too), None when not given."""
    if not text:
        return None
    level = normalize_severity(text)
    if level is None:
        raise ConfigError(f"--severity {text!r}: not a severity",
                          hint=f"use one of: {', '.join(SEVERITIES)} (SEV1 is the worst)")
    return level


def check_run_id(text: str) -> str:
    """``text`` if it has the shape of a run id, else a ConfigError saying what one looks like."""
    if not RUN_ID_RE.match(text):
        raise ConfigError(f"{text!r} is not a run id (they look like 20261122T030112Z-RB-DR-003)",
                          hint="`drkit status` lists the recent runs")
    return text


@dataclass(frozen=True)
class Choice:
    """What a task's ``check_env`` decided against the estate: the runbook to run
    (db-recovery picks one per failure) and the decision line saying why."""

    runbook: str
    line: str


def run_runbook(runbook_ref: str, params: dict[str, Any], *, env: str = "",
                dry_run: bool = False, yes: bool = False, resume: str = "",
                from_step: str = "", only: str = "", break_lock: bool = False,
                json_mode: bool = False, incident_start: str = "",
                resume_command: str = "drkit resume {run_id}",
                check_env: Callable[[Environment], Any] | None = None,
                junit: str = "", severity: str = "") -> None:
    """Run (or resume) a runbook and print the outcome; errors leave as DrkitError.
    ``junit``: also copy the run's junit.xml there (for a CI job or a scheduler).

    Every option is checked before anything runs: alone, together, and against the
    environment's settings by ``check_env`` (a task's own rules, e.g. a known region).
    A ``check_env`` that returns a string has made a decision (which runbook, why):
    it becomes the run's first journaled decision line; one that returns a
    ``Choice`` has also chosen the runbook that runs."""
    if from_step and only:
        raise ConfigError(f"--from {from_step} and --only {only} together: --from runs the "
                          "steps from one on, --only runs one step", hint="pass one of them")
    if dry_run and break_lock:
        raise ConfigError("--break-lock with --dry-run: a dry run only reads the lock",
                          hint="drop --break-lock, or run for real to break a stale lock")
    if resume:
        check_run_id(resume)
        if dry_run:
            raise ConfigError(f"--dry-run with --resume: run {resume} continues as it started",
                              hint="drop --dry-run")
    started = parse_time(incident_start, "--incident-start")
    level = parse_severity(severity)
    project = find_project()
    environment = load_environment(project, env or None)
    decided = check_env(environment) if check_env else None
    if isinstance(decided, Choice):
        runbook_ref, decided = decided.runbook, decided.line
    display = make_display(json_mode=json_mode)
    options = RunOptions(dry_run=dry_run, yes=yes, resume=resume or None,
                         from_step=from_step or None, only=only or None,
                         break_lock=break_lock, incident_start=started,
                         resume_command=resume_command, severity=level,
                         decisions=(decided,) if isinstance(decided, str) else ())
    engine = Engine(project, environment, display, options)
    try:
        if resume:
            engine.resume(resume)
        else:
            path = resolve_runbook(runbook_ref, project.runbooks_dir)
            engine.start(load_runbook(path), params)
    finally:
        result = getattr(engine, "result", None)
        if result is not None:
            if junit and result.reports.get("junit"):
                target = Path(junit)
                target.parent.mkdir(parents=True, exist_ok=True)
                atomic_write_text(target, result.reports["junit"].read_text())
            _print_outcome(result, json_mode=json_mode, project_root=project.root)


def _print_outcome(result: Any, *, json_mode: bool, project_root: Path) -> None:
    report = result.reports.get("md")
    shown = report.relative_to(project_root) if report and report.is_relative_to(
        project_root) else report
    if json_mode:
        print(json.dumps({"event": "result", "run_id": result.run_id, "status": result.status,
                          "outcome": result.outcome, "rto_s": result.rto_s,
                          "rpo_s": result.rpo_s, "targets_met": result.targets_met,
                          "reports": {k: str(v) for k, v in result.reports.items()},
                          "would_change": result.dry_run_summary}))
        return
    out = sys.stdout
    if result.dry_run_summary:
        print("\nWhat would change (dry run, nothing was changed):", file=out)
        for line in result.dry_run_summary:
            print(f"  - {line}", file=out)
    print(f"\n{result.run_id}: {result.outcome}", file=out)
    print(f"report: {shown} (also report.html, report.json, junit.xml)", file=out)


def probe_context(environment: Environment) -> Any:
    """A StepContext for asking the estate's probes before a run starts (a task's
    check_env resolving its request), in the project's state directory."""
    from drkit.project import find_project
    from drkit.registry import StepContext

    project = find_project()
    return StepContext(env=environment, project=project, run_dir=project.state_dir)


def run_options(env: str, dry_run: bool, yes: bool, json_: bool, break_lock: bool,
                from_: str, only: str, incident_start: str = "") -> dict[str, object]:
    """A runbook task's shared flags (RUN_HELP) as run_or_resume's keyword options."""
    return {"env": env, "dry_run": dry_run, "yes": yes, "json_mode": json_,
            "break_lock": break_lock, "from_step": from_, "only": only,
            "incident_start": incident_start}


def run_or_resume(runbook_id: str, params: dict[str, Any], *, task_name: str, resume: str,
                  given: dict[str, object], check_env: Callable[[Environment], Any] | None = None,
                  **options: Any) -> None:
    """What a runbook's own task does: run ``runbook_id`` with ``params``, or resume
    one of its runs. ``given`` maps each task flag that sets a parameter to its
    value: a resumed run keeps its own, so any of them given is refused."""
    resume_command = f"invoke {task_name} --resume {{run_id}}"
    if resume:
        check_run_id(resume)
        extra = [flag for flag, value in given.items() if value]
        if extra:
            raise ConfigError(f"--resume {resume} continues that run with its own parameters; "
                              f"{', '.join(extra)} cannot change them",
                              hint=f"drop {', '.join(extra)}")
        if not resume.endswith(f"-{runbook_id}"):
            raise ConfigError(f"--resume {resume}: not a run of {runbook_id}",
                              hint=f"resume it with: drkit resume {resume}")
        run_runbook("", {}, resume=resume, resume_command=resume_command, **options)
    else:
        run_runbook(runbook_id, params, resume_command=resume_command, check_env=check_env,
                    **options)


def resume_one_of(runbook_ids: tuple[str, ...], resume: str, *, task_name: str,
                  given: dict[str, object], **options: Any) -> None:
    """A task that runs one of several runbooks (app-recovery, db-recovery) resumes
    the one its run id names; a run of none of them is refused as not a run of the
    first."""
    runbook = next((r for r in runbook_ids if resume.endswith(f"-{r}")), runbook_ids[0])
    run_or_resume(runbook, {}, task_name=task_name, resume=resume, given=given, **options)


def require_choice(value: str, choices: tuple[str, ...], flag: str, *, task: str,
                   what: str) -> None:
    """``flag`` must be given and be one of ``choices`` (a ``what``), else exit 2."""
    if value not in choices:
        raise ConfigError(f"{flag} {value!r}: not a {what}" if value else f"{task} needs {flag}",
                          hint=f"use one of: {', '.join(choices)}")
