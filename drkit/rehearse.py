"""Rehearsals: a runbook run unattended, the baseline restored, the result recorded
and compared with the same rehearsal's history.

Order: everything is checked before anything runs (the rehearsal or runbook
exists, its parameters bind, the environment says how to restore its baseline,
the history reads). Then the run (``--yes`` for its own approvals), then the
environment's baseline command, whatever the run's outcome (not when the run
never started, e.g. the lock was held, or its preflight changed nothing). Then
one history record, the comparison, the report's trend section, and a
notification when the rehearsal failed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from drkit.display import make_display
from drkit.engine import Engine, RunOptions
from drkit.env import Environment
from drkit.errors import ConfigError, DrkitError, Interrupted, LockHeld
from drkit.fsutil import atomic_write_json, atomic_write_text
from drkit.history import (
    VERSION,
    Regression,
    append_record,
    compare,
    history_path,
    read_history,
    trend,
)
from drkit.project import Project
from drkit.redact import redact
from drkit.rehearsals import RehearsalSettings, load_settings
from drkit.report.html import to_html
from drkit.runbook import Runbook, bind_params, load_runbook, resolve_runbook


@dataclass(frozen=True)
class Target:
    """What to rehearse: a name (its history key), a runbook and its parameters."""

    name: str
    runbook: Runbook
    params: dict[str, Any]  # as given (settings values, command-line strings)


@dataclass
class Outcome:
    record: dict[str, Any]
    regressions: list[Regression]
    run_dir: Path | None
    failure: DrkitError | None
    notified: list[str] = field(default_factory=list)


def resolve(ref: str, cli_params: dict[str, str], settings: RehearsalSettings,
            project: Project) -> Target:
    """A rehearsal of the schedule by name, else a runbook by id (its history key
    is then the id and the parameters). Parameters are bound here, so a bad one
    is reported before anything runs, with the schedule's dotted path."""
    entry = settings.find(ref)
    if entry is not None:
        index = settings.schedule.index(entry)
        where = f"drkit.rehearsals.schedule[{index}]"
        try:
            path = resolve_runbook(entry.runbook, project.runbooks_dir)
        except ConfigError:
            raise ConfigError(f"{where}.runbook: no runbook {entry.runbook!r} in "
                              f"{project.runbooks_dir}",
                              hint="`drkit runbooks` lists them") from None
        params: dict[str, Any] = {**entry.params, **cli_params}
        name = entry.name
    else:
        try:
            path = resolve_runbook(ref, project.runbooks_dir)
        except ConfigError as exc:
            known = ", ".join(s.name for s in settings.schedule) or "none"
            raise ConfigError(f"no rehearsal or runbook {ref!r}",
                              hint=f"rehearsals of this environment: {known}; "
                                   f"{exc.hint or '`drkit runbooks` lists the runbooks'}"
                              ) from None
        where, params = "", dict(cli_params)
        name = None
    runbook = load_runbook(path)
    try:
        bind_params(runbook, params)
    except ConfigError as exc:
        if not where:
            raise
        raise ConfigError(exc.message, problems=[f"{where}.{p}" for p in exc.problems],
                          hint=exc.hint) from None
    if name is None:
        name = " ".join([runbook.id, *(f"{k}={v}" for k, v in sorted(params.items()))])
    return Target(name=name, runbook=runbook, params=params)


def rehearse(project: Project, environment: Environment, ref: str,
             cli_params: dict[str, Any], *, json_mode: bool = False,
             say: Any = print, restore: Callable[[], dict[str, Any]] | None = None) -> Outcome:
    """Run one rehearsal end to end; returns its outcome (a failed one included).
    Errors before the run (bad input, a held lock) leave as DrkitError, nothing written.
    ``restore`` replaces the environment's baseline command (a scratch estate's
    teardown): it returns the baseline's {ok, duration_s, detail}."""
    settings = load_settings(environment.settings)
    target = resolve(ref, cli_params, settings, project)
    entry = settings.find(target.name)
    baseline_command = (entry.baseline if entry else None) or settings.baseline
    if not baseline_command and restore is None:
        raise ConfigError(f"drkit.rehearsals.baseline: missing in environment "
                          f"{environment.name}; a rehearsal must put the environment back",
                          hint="set it to the command that restores the baseline, "
                               "e.g. [drkit, lab.reset]")
    hpath = history_path(project.state_dir, environment.name)
    previous = read_history(hpath, rehearsal=target.name)

    options = RunOptions(yes=True, interactive=False,
                         resume_command="drkit resume {run_id}")
    engine = Engine(project, environment, make_display(json_mode=json_mode), options)
    failure: DrkitError | None = None
    try:
        engine.start(target.runbook, target.params)
    except (LockHeld, Interrupted):
        raise  # another run owns the environment, or the operator stopped us
    except DrkitError as exc:
        failure = exc
    result = getattr(engine, "result", None)
    if result is None:  # stopped before its journal (bad input): nothing ran
        raise failure if failure else ConfigError("the rehearsal did not run")
    model = json.loads((result.run_dir / "report.json").read_text())
    if model["refused_by_preflight"]:
        baseline = {"ok": True, "duration_s": 0.0,
                    "detail": "not run: the preflight refused the run, nothing changed"}
    elif restore is not None:
        baseline = restore()
    else:
        baseline = run_baseline(baseline_command, project, environment, say=say)
    record = make_record(target, environment, model, baseline)
    regressions = compare(record, previous, last=settings.last, margin=settings.margin)
    record["verdict"] = "failed" if regressions else "passed"
    record["regressions"] = [r.text for r in regressions]
    append_record(hpath, record)
    _add_trend_to_report(result.run_dir, model, target.name, [*previous, record],
                         settings.last, regressions)
    outcome = Outcome(record, regressions, result.run_dir, failure)
    if regressions:
        outcome.notified = notify_failure(project, environment, settings, target, record,
                                          regressions, say=say)
    return outcome


def make_record(target: Target, environment: Environment, model: dict[str, Any],
                baseline: dict[str, Any]) -> dict[str, Any]:
    """One history line from a run's report model (docs/internals.md, "Rehearsal history")."""
    return {
        "v": VERSION,
        "rehearsal": target.name,
        "runbook": target.runbook.id,
        "params": redact(_jsonable(target.params)),
        "env": environment.name,
        "run_id": model["run_id"],
        "started_at": model["started_at"],
        "finished_at": model["finished_at"],
        "status": "refused" if model["refused_by_preflight"] else model["status"],
        "findings": model["preflight_findings"],
        "rto_s": model["achieved"]["rto_s"],
        "rpo_s": model["achieved"]["rpo_s"],
        "targets": model["targets"],
        "met": model["met"],
        "steps": [{"id": s["id"], "status": s["status"], "duration_s": s.get("duration_s"),
                   "error": (s.get("error") or None) and str(s["error"])[:300]}
                  for s in model["steps"]],
        "baseline": baseline,
        "verdict": "passed",
        "regressions": [],
    }


def _jsonable(params: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(params, default=str))


def baseline_argv(argv: list[str]) -> list[str]:
    """The baseline command; a leading ``drkit`` is this drkit (same interpreter),
    so a timer's sparse PATH does not matter."""
    if argv and argv[0] == "drkit":
        return [sys.executable, "-m", "drkit", *argv[1:]]
    return list(argv)


def run_baseline(argv: list[str], project: Project, environment: Environment, *,
                 say: Any = print) -> dict[str, Any]:
    """Run the environment's baseline command in the project; never raises: how it
    went is part of the rehearsal's result."""
    command = baseline_argv(argv)
    say(f"baseline: {' '.join(argv)}")
    env = {**os.environ, "DRKIT_PROJECT": str(project.root),
           "DRKIT_STATE_DIR": str(project.state_dir), "DRKIT_ENV": str(environment.path)}
    started = time.monotonic()
    try:
        proc = subprocess.run(command, cwd=project.root, env=env, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, check=False)
    except OSError as exc:
        return {"ok": False, "duration_s": round(time.monotonic() - started, 3),
                "detail": redact(f"{argv[0]}: {exc.strerror or exc}")}
    duration = round(time.monotonic() - started, 3)
    output = redact((proc.stdout or "") + (proc.stderr or ""))
    for line in output.splitlines():
        say(f"  {line}")
    if proc.returncode != 0:
        tail = " | ".join(output.strip().splitlines()[-3:])
        return {"ok": False, "duration_s": duration,
                "detail": f"exit {proc.returncode}" + (f": {tail}" if tail else "")}
    return {"ok": True, "duration_s": duration, "detail": f"{' '.join(argv)} succeeded"}


def notify_failure(project: Project, environment: Environment, settings: RehearsalSettings,
                   target: Target, record: dict[str, Any], regressions: list[Regression], *,
                   say: Any = print) -> list[str]:
    """Tell the environment's channels (``drkit.rehearsals.notify``, default all) that
    a rehearsal failed. The one place rehearsals call drkit.notify. A channel that
    fails is reported, never raised: the rehearsal's own failure must still show."""
    from drkit import notify

    channels = (environment.settings.get("notify") or {}).get("channels") or {}
    if not channels:
        say("notify: no channels in this environment (drkit.notify.channels)")
        return []
    subject = f"rehearsal {target.name} FAILED on {environment.name}"
    text = "\n".join([
        f"[REHEARSAL FAILED] {target.name}: {target.runbook.id} {target.runbook.title}",
        f"environment {environment.name}, run {record['run_id']}",
        *(f"- {r.text}" for r in regressions),
    ])
    try:
        if hasattr(notify, "send"):  # drkit.notify's function: text to the named channels
            deliveries = [(d.channel, d.sent, d.detail) for d in notify.send(
                text, channels, settings.notify, project_root=project.root, dry_run=False,
                subject=subject)]
        else:  # the severity-aware layer (drkit.notify.Notifier) renders a template
            deliveries = _notify_via_notifier(notify, project, environment, settings, target,
                                              record, regressions)
    except Exception as exc:  # a notification problem must not hide the failure
        say(f"notify: failed: {redact(str(exc))}")
        return []
    sent = []
    for channel, ok, detail in deliveries:
        say(f"notify {channel}: {detail}")
        if ok:
            sent.append(channel)
    return sent


def _notify_via_notifier(notify: Any, project: Project, environment: Environment,
                         settings: RehearsalSettings, target: Target, record: dict[str, Any],
                         regressions: list[Regression]) -> list[tuple[str, bool, str]]:
    records: list[Any] = []
    notifier = notify.Notifier(
        environment, project.root, severity=target.runbook.severity or "SEV3", dry_run=False,
        record=records.append,
        run={"id": record["run_id"], "runbook": target.runbook.id, "env": environment.name,
             "started_at": record["started_at"]})
    notifier.notify("status-identified", {"vars": {
        "title": f"Rehearsal {target.name} FAILED ({target.runbook.id})",
        "issue": "; ".join(r.text for r in regressions),
        "status": f"rehearsal run {record['run_id']} on {environment.name}"}},
        names=settings.notify)
    notifier.close()
    return [(r.channel, r.ok, r.detail) for r in records]


def _add_trend_to_report(run_dir: Path, model: dict[str, Any], name: str,
                         records: list[dict[str, Any]], last: int,
                         regressions: list[Regression]) -> None:
    """The run's report.json and report.html gain the rehearsal's trend (last N)."""
    model["rehearsal"] = {"name": name, "trend": trend(records, last),
                          "verdict": "failed" if regressions else "passed",
                          "regressions": [r.text for r in regressions]}
    atomic_write_json(run_dir / "report.json", model)
    atomic_write_text(run_dir / "report.html", to_html(model))
