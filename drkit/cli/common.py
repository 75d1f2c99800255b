"""What every task shares: the one place errors become exit codes, and the
call that runs a runbook and prints how it went."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from invoke.exceptions import Exit

from drkit.display import make_display
from drkit.durations import format_duration
from drkit.engine import Engine, RunOptions
from drkit.env import load_environment
from drkit.errors import ConfigError, DrkitError, ExitCode
from drkit.project import find_project
from drkit.runbook import load_runbook, resolve_runbook

F = TypeVar("F", bound=Callable[..., Any])


def maps_errors(fn: F) -> F:
    """Turn DrkitError into invoke.Exit with the error's documented exit code.
    This is the only place drkit errors become exit codes."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except DrkitError as exc:
            raise Exit(f"drkit: {exc}", code=exc.exit_code) from None
        except KeyboardInterrupt:
            raise Exit("drkit: interrupted", code=ExitCode.INTERRUPTED) from None

    return wrapper  # type: ignore[return-value]


def parse_params(pairs: list[str] | None) -> dict[str, str]:
    """``--param key=value`` pairs (repeatable) as a dict."""
    out: dict[str, str] = {}
    problems = []
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            problems.append(f"--param {pair!r}: expected key=value")
        else:
            out[key.strip()] = value
    if problems:
        raise ConfigError("bad --param", problems=problems)
    return out


def parse_time(text: str, flag: str) -> datetime | None:
    """An ISO-8601 time (``2026-11-22T03:01:00Z``) or None when empty."""
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"{flag} {text!r}: not an ISO-8601 time",
                          hint="use e.g. 2026-11-22T03:01:00Z") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def run_runbook(runbook_ref: str, params: dict[str, Any], *, env: str = "",
                dry_run: bool = False, yes: bool = False, resume: str = "",
                from_step: str = "", only: str = "", break_lock: bool = False,
                json_mode: bool = False, incident_start: str = "",
                resume_command: str = "drkit resume {run_id}") -> None:
    """Run (or resume) a runbook and print the outcome; errors leave as DrkitError."""
    project = find_project()
    environment = load_environment(project, env or None)
    display = make_display(json_mode=json_mode)
    options = RunOptions(dry_run=dry_run, yes=yes, resume=resume or None,
                         from_step=from_step or None, only=only or None,
                         break_lock=break_lock,
                         incident_start=parse_time(incident_start, "--incident-start"),
                         resume_command=resume_command)
    engine = Engine(project, environment, display, options)
    try:
        if resume:
            if params:
                raise ConfigError("a resumed run keeps its own parameters; drop the others",
                                  hint=resume_command.format(run_id=resume))
            engine.resume(resume)
        else:
            path = resolve_runbook(runbook_ref, project.runbooks_dir)
            engine.start(load_runbook(path), params)
    finally:
        result = getattr(engine, "result", None)
        if result is not None:
            _print_outcome(result, json_mode=json_mode, project_root=project.root)


def _print_outcome(result: Any, *, json_mode: bool, project_root: Path) -> None:
    report = result.reports.get("md")
    shown = report.relative_to(project_root) if report and report.is_relative_to(
        project_root) else report
    if json_mode:
        print(json.dumps({"event": "result", "run_id": result.run_id, "status": result.status,
                          "rto_s": result.rto_s, "rpo_s": result.rpo_s,
                          "targets_met": result.targets_met,
                          "reports": {k: str(v) for k, v in result.reports.items()},
                          "would_change": result.dry_run_summary}))
        return
    out = sys.stdout
    if result.dry_run_summary:
        print("\nWhat would change (dry run, nothing was changed):", file=out)
        for line in result.dry_run_summary:
            print(f"  - {line}", file=out)
    rto = "not measured" if result.rto_s is None else format_duration(result.rto_s)
    rpo = "not measured" if result.rpo_s is None else format_duration(result.rpo_s)
    if result.dry_run_summary is not None and getattr(result, "dry_run", False):
        print(f"\n{result.run_id}: dry run {result.status}; nothing was changed", file=out)
    else:
        print(f"\n{result.run_id}: {result.status}; RTO {rto}, RPO {rpo}; targets "
              f"{'met' if result.targets_met else 'NOT met'}", file=out)
    print(f"report: {shown} (also report.html, report.json, junit.xml)", file=out)
