"""The engine: runs a runbook's steps in order, journaled, locked, timed, resumable.

Order of a run (each decision is journaled as a one-line ``decision`` event):

1. Before anything: parameters bound, approvals that cannot be given (no terminal,
   no ``--yes``) refused, the environment's lock taken (a dry run only reads it).
2. Preflight checks, all of them, findings reported together (not on resume:
   they held when the run started, and a half-done failover would fail them;
   unless they never finished). A run they refuse changed nothing and cannot
   be resumed.
3. Steps in order. The journal gets ``step_started`` before the step's side
   effect and ``step_finished`` after, both fsynced, so a run killed at any
   instant resumes by skipping completed steps and re-running the interrupted one.
4. On a failed step: on_failure steps, the failing step's tail, the resume command.
5. At the end: RTO and RPO achieved against the targets, reports, lock released.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from drkit import registry
from drkit.durations import format_duration
from drkit.env import Environment
from drkit.errors import (
    ApprovalRequired,
    ConfigError,
    DrkitError,
    Interrupted,
    LockHeld,
    PreflightFailed,
    StepFailed,
    TargetMissed,
)
from drkit.journal import Journal, RunState, find_run, new_run_id, parse_ts, read_events
from drkit.lock import LockHolder, make_lock
from drkit.notify import Notifier
from drkit.project import Project
from drkit.redact import redact
from drkit.report import outcome, refused_by_preflight, write_reports
from drkit.runbook import Runbook, Step, bind_params, blocks, load_runbook, render_spec
from drkit.steps import Runtime, StepOutcome, ask_on_terminal, execute
from drkit.templating import evaluate


@dataclass
class RunOptions:
    """How to run: what the operator asked for on the command line."""

    dry_run: bool = False
    yes: bool = False
    interactive: bool | None = None  # None: ask when stdin is a terminal
    resume: str | None = None
    from_step: str | None = None
    only: str | None = None
    break_lock: bool = False
    incident_start: datetime | None = None
    #: SEV1..SEV4 instead of the runbook's own (decides who is notified, how often).
    severity: str | None = None
    resume_command: str = "drkit resume {run_id}"  # the hint printed when a run stops
    #: Choices made before the run (a task picking the runbook for a scenario, e.g.
    #: db-recovery's), journaled as its first decisions so the report shows them.
    decisions: tuple[str, ...] = ()


@dataclass
class RunResult:
    run_id: str
    run_dir: Path
    status: str  # succeeded | failed | interrupted
    rto_s: float | None
    rpo_s: float | None
    targets_met: bool
    reports: dict[str, Path] = field(default_factory=dict)
    dry_run_summary: list[str] = field(default_factory=list)
    dry_run: bool = False
    #: How it went in one line ("refused by preflight; nothing changed", ...).
    outcome: str = ""


class Engine:
    """One run of one runbook on one environment."""

    def __init__(self, project: Project, env: Environment, display: Any,
                 options: RunOptions | None = None,
                 ask: Callable[[str], bool] = ask_on_terminal) -> None:
        self.project = project
        self.env = env
        #: Serialises what lanes share: outputs, marks, the display.
        self._shared = threading.RLock()
        self.display = _Serialised(display, self._shared)
        self.options = options or RunOptions()
        self.ask = ask
        self.interactive = (self.options.interactive if self.options.interactive is not None
                            else sys.stdin.isatty())
        self.journal: Journal | None = None
        self.outputs: dict[str, dict[str, Any]] = {}
        self.would_change: list[str] = []
        #: Steps running right now, in start order (more than one inside a lane block).
        self._running: list[str] = []

    # ---------------------------------------------------------------- entry points

    def start(self, runbook: Runbook, given_params: dict[str, Any]) -> RunResult:
        """Start a new run of ``runbook`` with operator-given parameters."""
        if self.options.resume:
            raise ConfigError("start() called with --resume; use resume()")
        params = bind_params(runbook, given_params)
        self._check_step_selectors(runbook)
        self._refuse_unanswerable_approvals(runbook, params)
        run_id = new_run_id(runbook.id, datetime.now(UTC))
        run_dir = self.project.runs_dir / run_id
        while run_dir.exists():  # two runs in one second: keep ids unique
            time.sleep(1)
            run_id = new_run_id(runbook.id, datetime.now(UTC))
            run_dir = self.project.runs_dir / run_id
        with self._locked(run_id):
            self.journal = Journal.create(
                run_dir, run_id=run_id, runbook=runbook.id, runbook_path=str(runbook.path),
                runbook_sha256=runbook.sha256, env=self.env.name, params=redact(params),
                dry_run=self.options.dry_run, user=getpass.getuser(),
                host=socket.gethostname(), pid=os.getpid(), argv=redact(sys.argv),
                incident_start=_iso(self.options.incident_start),
                severity=self.options.severity or runbook.severity,
            )
            self._emit(self.journal.events()[-1])
            return self._run(runbook, params, run_id, run_dir, state=None)

    def resume(self, run_id: str) -> RunResult:
        """Continue a run from its journal: completed steps are skipped, the
        interrupted (or failed) one runs again."""
        run_dir = find_run(self.project.runs_dir, run_id)
        events = read_events(run_dir / "journal.jsonl")
        state = RunState.from_events(events)
        if state.status == "succeeded":
            raise ConfigError(f"run {run_id} already succeeded; there is nothing to resume")
        if state.dry_run:
            raise ConfigError(f"run {run_id} was a dry run; start a real run instead")
        if refused_by_preflight(events):
            # Its steps never ran, and a resume skips the preflight: start afresh.
            raise ConfigError(f"run {run_id} was refused by its preflight; nothing to resume",
                              hint="start a new run, whose preflight checks again")
        if state.env != self.env.name:
            raise ConfigError(
                f"run {run_id} ran on environment {state.env}, not {self.env.name}",
                hint=f"resume it with --env {state.env}",
            )
        started = events[0]
        runbook = load_runbook(Path(started["runbook_path"]))
        self._check_step_selectors(runbook)
        params = dict(state.params)
        self._refuse_unanswerable_approvals(runbook, params, skip=set(state.completed_steps))
        if started.get("incident_start") and not self.options.incident_start:
            self.options.incident_start = parse_ts(started["incident_start"])
        with self._locked(run_id, takeover=run_id):
            self.journal = Journal.open(run_dir)
            self.journal.append("run_resumed", user=getpass.getuser(),
                                host=socket.gethostname(), pid=os.getpid(),
                                argv=redact(sys.argv))
            if runbook.sha256 != started["runbook_sha256"]:
                self._decide(f"runbook {runbook.path.name} changed since the run started; "
                             "resuming with the current file")
            self.outputs = {k: dict(v) for k, v in state.outputs.items()}
            return self._run(runbook, params, run_id, run_dir, state=state)

    # ---------------------------------------------------------------- the run

    def _run(self, runbook: Runbook, params: dict[str, Any], run_id: str, run_dir: Path,
             state: RunState | None) -> RunResult:
        assert self.journal is not None
        targets = {"rto_s": runbook.rto_s, "rpo_s": runbook.rpo_s}
        override = self.env.targets_for(runbook.id)
        targets["rto_s"] = override.get("rto", targets["rto_s"])
        targets["rpo_s"] = override.get("rpo", targets["rpo_s"])
        started_at = state.started_at if state else self.journal.events()[0]["ts"]
        severity = self._severity(runbook)
        base_ctx = {
            "params": params, "env": self.env.template_context(), "targets": targets,
            "run": {"id": run_id, "dry_run": self.options.dry_run, "started_at": started_at,
                    "runbook": runbook.id, "env": self.env.name, "severity": severity},
        }
        self._notifier = Notifier(
            self.env, self.project.root, run=base_ctx["run"], severity=severity,
            dry_run=self.options.dry_run, record=self._notification,
            progress=lambda: self._progress(targets), prior_events=self.journal.events())
        mode = "DRY RUN " if self.options.dry_run else ""
        header = (f"{mode}{runbook.id} {runbook.title} on {self.env.name} "
                  f"(run {run_id})")
        self.display.start(header, [(s.id, s.title, s.kind)
                                    for s in (*runbook.preflight, *runbook.steps)])
        for text in (*self.options.decisions, *self._lock_decisions):
            self._decide(text)
        status = "failed"
        failure: DrkitError | None = None
        try:
            with _sigterm_as_interrupt():
                preflight_done = any(e["event"] == "preflight_finished"
                                     for e in self.journal.events())
                if state is None or not preflight_done:
                    if state is not None:
                        self._decide(f"preflight again: it never finished in run {run_id}")
                    self._preflight(runbook, base_ctx, run_dir)
                else:
                    self._decide(f"preflight skipped: it passed when run {run_id} started")
                self._notifier.start_updates()
                self._steps(runbook, base_ctx, run_dir, state)
            status = "succeeded"
        except KeyboardInterrupt:
            status = "interrupted"
            current = self._running[0] if self._running else None
            self.journal.append("interrupted", step=current, signal="SIGINT/SIGTERM")
            failure = Interrupted(
                f"run {run_id} interrupted" + (f" during step {current}" if current else ""),
                hint=f"resume with: {self._resume_command(run_id)}",
            )
        except (StepFailed, PreflightFailed, ApprovalRequired, ConfigError) as exc:
            failure = exc
            if isinstance(exc, StepFailed):
                self._on_failure(runbook, base_ctx, run_dir)
        finally:
            self._close_notifier()
            self.display.close()
        return self._finish(runbook, run_id, run_dir, status, targets, failure)

    def _preflight(self, runbook: Runbook, base_ctx: dict[str, Any], run_dir: Path) -> None:
        findings: list[str] = []
        if self.options.dry_run:
            holder = self._lock().read()
            if holder:
                findings.append(f"lock: held by {holder.describe()}")
        for step in runbook.preflight:
            # A check that only one mode of a runbook needs (RB-DR-006 --into db)
            # says so with ``when``; earlier checks' outputs are in ``steps``.
            ctx = {**base_ctx, "steps": self._steps_ctx()}
            if step.when and not evaluate(step.when, ctx):
                self._decide(f"{step.id}: skipped, when is false: {step.when}")
                self.display.step_finished(step.id, "skipped", 0.0,
                                           f"when is false: {step.when}")
                continue
            outcome = self._execute(step, base_ctx, run_dir, journal_phase=None)
            if not outcome.ok:
                findings.append(f"{step.id}: {outcome.error or outcome.summary}")
        assert self.journal is not None
        self.journal.append("preflight_finished", ok=not findings, findings=findings)
        if findings:
            # A dry run stops here too: the real run would, and later steps act on
            # what the preflight found.
            raise PreflightFailed(
                f"preflight found {len(findings)} problem(s); nothing was changed"
                + (" (dry run: a real run would stop here)" if self.options.dry_run else ""),
                findings=findings,
            )

    def _steps(self, runbook: Runbook, base_ctx: dict[str, Any], run_dir: Path,
               state: RunState | None) -> None:
        ids = [s.id for s in runbook.steps]
        plan = state.next_action(ids) if state else {i: "run" for i in ids}
        if self.options.from_step:
            start = ids.index(self.options.from_step)
            for sid in ids[:start]:
                if plan[sid] == "run" or plan[sid].startswith("re-run"):
                    plan[sid] = f"skip (before --from {self.options.from_step})"
        if self.options.only:
            for sid in ids:
                if sid != self.options.only:
                    plan[sid] = f"skip (--only {self.options.only})"
        failed: list[StepFailed] = []
        for block in blocks(runbook.steps):
            try:
                if block[0].lane is None:
                    self._run_step(block[0], plan, base_ctx, run_dir)
                else:
                    self._run_lanes(block, plan, base_ctx, run_dir)
            except StepFailed as exc:
                if not runbook.keep_going:
                    raise
                failed.append(exc)  # a readiness suite: every check runs, each is reported
        if failed:
            raise StepFailed(
                f"{len(failed)} step(s) failed: "
                + "; ".join(str(f.message).splitlines()[0] for f in failed),
                hint=failed[0].hint)

    def _run_step(self, step: Step, plan: dict[str, str], base_ctx: dict[str, Any],
                  run_dir: Path) -> None:
        """Skip, or run ``step``; StepFailed (with the resume command) when it fails."""
        verdict = plan[step.id]
        if verdict.startswith("skip"):
            self._decide(f"{step.id}: {verdict}")
            self.display.step_finished(step.id, "skipped", 0.0, verdict)
            return
        if verdict.startswith("re-run"):
            self._decide(f"{step.id}: {verdict}")
        ctx = {**base_ctx, "steps": self._steps_ctx()}
        if step.when and not evaluate(step.when, ctx):
            self._skip(step, f"when is false: {step.when}")
            return
        outcome = self._execute(step, base_ctx, run_dir, journal_phase="main")
        if not outcome.ok:
            tail = "\n".join(f"    {line}" for line in outcome.tail[-15:])
            raise StepFailed(
                f"step {step.id} ({step.title}) failed: {outcome.error or outcome.summary}"
                + (f"\n  last output:\n{tail}" if tail else ""),
                hint=f"fix the cause, then resume with: "
                     f"{self._resume_command(self.journal.events()[0]['run_id'])}",
            )

    def _run_lanes(self, block: list[Step], plan: dict[str, str], base_ctx: dict[str, Any],
                   run_dir: Path) -> None:
        """A parallel block: one thread per lane runs the lane's steps in order.

        A failed step stops its lane, and the other lanes start no new step; the
        block fails once the steps already running have ended. An interrupt
        does the same, then propagates (a second one stops the waiting).
        """
        lanes: dict[str, list[Step]] = {}
        for step in block:
            lanes.setdefault(str(step.lane), []).append(step)
        self._decide("side by side: " + "; ".join(
            f"lane {name}: {' -> '.join(s.id for s in steps)}" for name, steps in lanes.items()))
        stop = threading.Event()
        failures: list[BaseException] = []

        def run_lane(steps: list[Step], done: threading.Event) -> None:
            try:
                for step in steps:
                    if stop.is_set():
                        return
                    self._run_step(step, plan, base_ctx, run_dir)
            except BaseException as exc:  # handed to the main thread, which raises it
                failures.append(exc)
                stop.set()
            finally:
                done.set()

        finished = [threading.Event() for _ in lanes]
        for (name, steps), done in zip(lanes.items(), finished, strict=True):
            threading.Thread(target=run_lane, args=(steps, done), name=f"lane-{name}",
                             daemon=True).start()
        try:
            _wait_all(finished)
        except KeyboardInterrupt:
            stop.set()
            self.display.message("interrupted: no lane starts another step; waiting for "
                                 f"{', '.join(self._running) or 'the running steps'} to end "
                                 "(interrupt again to stop waiting)", style="yellow")
            with contextlib.suppress(KeyboardInterrupt):
                _wait_all(finished)
            raise
        if failures:
            first = failures[0]
            if len(failures) > 1 and isinstance(first, DrkitError):
                first.message += "\n  also failed in another lane: " + "; ".join(
                    str(f).splitlines()[0] for f in failures[1:])
            raise first

    def _on_failure(self, runbook: Runbook, base_ctx: dict[str, Any], run_dir: Path) -> None:
        for step in runbook.on_failure:
            try:
                ctx = {**base_ctx, "steps": self._steps_ctx()}
                if step.when and not evaluate(step.when, ctx):
                    self._skip(step, f"when is false: {step.when}", phase="on_failure")
                    continue
                self._execute(step, base_ctx, run_dir, journal_phase="on_failure")
            except DrkitError as exc:  # on_failure must not hide the original failure
                self._decide(f"on_failure step {step.id} failed too: {exc}")

    # ---------------------------------------------------------------- one step

    def _execute(self, step: Step, base_ctx: dict[str, Any], run_dir: Path,
                 journal_phase: str | None) -> StepOutcome:
        """Render, journal, run and record one step. ``journal_phase`` None means
        preflight (recorded in preflight_finished, not as a step)."""
        assert self.journal is not None
        ctx = {**base_ctx, "steps": self._steps_ctx()}
        spec = render_spec(step, ctx)
        for mark in step.marks_start if journal_phase else ():
            self._mark(mark, step.id)
        attempt = 1
        if journal_phase:
            attempt = 1 + sum(1 for e in self.journal.events()
                              if e["event"] == "step_started" and e["step"] == step.id)
            self.journal.append("step_started", step=step.id, kind=step.kind, attempt=attempt,
                                phase=journal_phase)
        self._running.append(step.id)
        self.display.step_started(step.id)
        step_ctx = registry.StepContext(
            env=self.env, project=self.project, run_dir=run_dir, dry_run=self.options.dry_run,
            progress=lambda text, sid=step.id: self.display.activity(sid, redact(text)),
        )
        runtime = Runtime(ctx=step_ctx, template_ctx=ctx, yes=self.options.yes,
                          interactive=self.interactive, timeout_s=step.timeout_s,
                          activity=step_ctx.progress, ask=self.ask,
                          notifier=getattr(self, "_notifier", None))
        began = time.monotonic()
        outcome = execute(step, spec, runtime)
        duration = round(time.monotonic() - began, 3)
        for text in step_ctx.decisions:
            self.journal.append("decision", text=f"{step.id}: {redact(text)}")
        self._record(step, outcome, journal_phase)
        status = "ok" if outcome.ok else "failed"
        if journal_phase:
            self.journal.append("step_finished", step=step.id, status=status,
                                duration_s=duration, error=redact(outcome.error),
                                tail=redact(outcome.tail[-20:]))
            if outcome.ok:
                for mark in step.marks_finish:
                    self._mark(mark, step.id)
        self._running.remove(step.id)
        shown = "would-change" if (self.options.dry_run and outcome.changes) else status
        self.display.step_finished(step.id, shown, duration, redact(outcome.summary))
        if self.options.dry_run:
            self._collect_dry_run(step, outcome)
        return outcome

    def _record(self, step: Step, outcome: StepOutcome, phase: str | None) -> None:
        assert self.journal is not None
        if outcome.approval:
            # What was agreed to, as the operator saw it (a post-mortem needs it).
            self.journal.append("approval", step=step.id, how=outcome.approval["how"],
                                by=outcome.approval["by"],
                                prompt=redact(outcome.approval.get("prompt") or ""))
        for n in outcome.notifications:
            self.journal.append("notify", step=step.id, template=n["template"],
                                channels=n["channels"], text=redact(n["text"]))
        # Preflight checks' outputs are kept too: later steps act on what the
        # preflight found (steps.<check>.outputs), and a resume reuses it.
        if outcome.outputs:
            outputs = redact(outcome.outputs)
            with self._shared:
                self.outputs[step.id] = outputs
            self.journal.append("step_output", step=step.id, outputs=outputs)
            for rpo in _rpo_reports(outputs):
                self.journal.append("rpo_evidence", step=step.id, seconds=rpo.get("seconds"),
                                    lost_writes=rpo.get("lost_writes"),
                                    detail=rpo.get("detail") or {})

    def _skip(self, step: Step, why: str, phase: str = "main") -> None:
        assert self.journal is not None
        self._decide(f"{step.id}: skipped, {why}")
        self.journal.append("step_finished", step=step.id, status="skipped", duration_s=0.0,
                            error=None, tail=[])
        self.display.step_finished(step.id, "skipped", 0.0, why)

    def _collect_dry_run(self, step: Step, outcome: StepOutcome) -> None:
        if step.kind == "terraform":
            for c in outcome.changes:
                self.would_change.append(f"terraform {step.id}: {c['action']} {c['address']}")
        elif step.kind == "ansible":
            for c in outcome.changes:
                self.would_change.append(f"ansible {step.id}: {c.get('host')} {c.get('task')}")
        elif step.kind in ("approval", "notify", "action"):
            self.would_change.append(f"{step.kind} {step.id}: {outcome.summary}")
        elif step.kind == "check" and not outcome.ok:
            self.would_change.append(f"check {step.id} would fail: {outcome.error}")

    # ---------------------------------------------------------------- the end

    def _finish(self, runbook: Runbook, run_id: str, run_dir: Path, status: str,
                targets: dict[str, float], failure: DrkitError | None) -> RunResult:
        assert self.journal is not None
        state = RunState.from_events(self.journal.events())
        # A dry run restores nothing: its times say nothing about recovery.
        measured = status == "succeeded" and not self.options.dry_run
        rto_s = _rto(state, self.options.incident_start) if measured else None
        rpo_s = _rpo(state) if not self.options.dry_run else None
        rto_ok = rto_s is None or rto_s <= targets["rto_s"]
        rpo_ok = rpo_s is None or rpo_s <= targets["rpo_s"]
        targets_met = status == "succeeded" and rto_ok and rpo_ok
        self.journal.append("run_finished", status=status, rto_s=rto_s, rpo_s=rpo_s,
                            targets_met=targets_met)
        reports = write_reports(run_dir, runbook=runbook, targets=targets,
                                dry_run_summary=self.would_change)
        result = RunResult(run_id=run_id, run_dir=run_dir, status=status, rto_s=rto_s,
                           rpo_s=rpo_s, targets_met=targets_met, reports=reports,
                           dry_run_summary=list(self.would_change),
                           dry_run=self.options.dry_run,
                           outcome=outcome(status=status, dry_run=self.options.dry_run,
                                           refused=refused_by_preflight(self.journal.events()),
                                           rto_s=rto_s, rpo_s=rpo_s, targets_met=targets_met))
        self.result = result
        if failure is not None:
            raise failure
        if status == "succeeded" and not self.options.dry_run and not (rto_ok and rpo_ok):
            missed = []
            if not rto_ok:
                missed.append(f"RTO {rto_s:.1f}s > target {targets['rto_s']:.0f}s")
            if not rpo_ok:
                missed.append(f"RPO {rpo_s:.1f}s > target {targets['rpo_s']:.0f}s")
            raise TargetMissed(f"run {run_id} completed but missed its targets: "
                               + "; ".join(missed), hint=f"see {reports.get('md')}")
        return result

    # ---------------------------------------------------------------- notifications

    def _severity(self, runbook: Runbook) -> str:
        """--severity, else the severity the run started with, else the runbook's."""
        assert self.journal is not None
        started = self.journal.events()[0].get("severity") or runbook.severity
        chosen = self.options.severity or started
        if chosen != started:
            self._decide(f"severity {chosen} (--severity); the run started at {started}")
        return chosen

    def _notification(self, rec: Any) -> None:
        """A delivery's outcome (from a notifier thread): journaled; a failure shown."""
        assert self.journal is not None
        self.journal.append("notification", **rec.fields())
        if not rec.ok:
            self.display.message(redact(f"notification to {rec.channel} ({rec.template}): "
                                        f"{rec.detail}; the run goes on"), style="red")

    def _progress(self, targets: dict[str, Any]) -> dict[str, Any]:
        """Where the run is, for ongoing updates."""
        assert self.journal is not None
        events = self.journal.events()
        done = [e["step"] for e in events if e["event"] == "step_finished" and e["status"] == "ok"]
        failed = [e["step"] for e in events
                  if e["event"] == "step_finished" and e["status"] == "failed"]
        with self._shared:
            running = list(self._running)
        return {"running": running, "completed": done, "failed": failed,
                "decisions": [e["text"] for e in events if e["event"] == "decision"][-3:],
                "rto_target": format_duration(targets["rto_s"])}

    def _close_notifier(self) -> None:
        notifier = getattr(self, "_notifier", None)
        if notifier is None:
            return
        pending = notifier.close()
        if pending:
            self._decide(f"notifications still being delivered to {', '.join(pending)} when "
                         "the run ended; not waiting longer (see the channel)")

    # ---------------------------------------------------------------- helpers

    def _steps_ctx(self) -> dict[str, Any]:
        with self._shared:
            return {sid: {"outputs": out} for sid, out in self.outputs.items()}

    def _decide(self, text: str) -> None:
        if self.journal:
            self.journal.append("decision", text=text)
        self.display.message(text, style="cyan")

    def _mark(self, name: str, step: str) -> None:
        assert self.journal is not None
        with self._shared:
            self._mark_once(name, step)

    def _mark_once(self, name: str, step: str) -> None:
        assert self.journal is not None
        if any(e["event"] == "mark" and e["name"] == name for e in self.journal.events()):
            return  # a re-run step does not move a moment already recorded
        self.journal.append("mark", name=name, step=step,
                            at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"))

    def _emit(self, event: dict[str, Any]) -> None:
        self.display.event(event)

    def _resume_command(self, run_id: str) -> str:
        return self.options.resume_command.format(run_id=run_id)

    def _lock(self) -> Any:
        return make_lock(self.env.settings.get("lock") or {"backend": "file"},
                         env_name=self.env.name, state_dir=self.project.state_dir,
                         boto3_session_factory=self.env.boto3_session,
                         endpoint_url=(self.env.settings.get("aws") or {}).get("endpoint_url"))

    @contextmanager
    def _locked(self, run_id: str, takeover: str | None = None) -> Iterator[None]:
        self._lock_decisions: list[str] = []
        if self.options.dry_run:
            self._lock_decisions.append("dry run: the lock is read, not taken")
            yield
            return
        lock = self._lock()
        holder = LockHolder.current(run_id)
        self._lock_decisions.append(lock.acquire(holder, break_stale=self.options.break_lock,
                                                 takeover_run_id=takeover))
        try:
            yield
        finally:
            try:
                lock.release(holder)
            except LockHeld as exc:  # someone broke our lock: say so, do not mask the run
                self.display.message(f"lock: {exc}", style="red")

    def _check_step_selectors(self, runbook: Runbook) -> None:
        ids = [s.id for s in runbook.steps]
        for flag, value in (("--from", self.options.from_step), ("--only", self.options.only)):
            if value and value not in ids:
                raise ConfigError(f"{flag} {value}: no such step in {runbook.id}",
                                  hint=f"steps: {', '.join(ids)}")

    def _refuse_unanswerable_approvals(self, runbook: Runbook, params: dict[str, Any],
                                       skip: set[str] = frozenset()) -> None:
        """Fail before any side effect when an approval would be needed and cannot be
        asked for. ``when`` conditions that depend on earlier steps' outputs cannot be
        known yet: such an approval counts as needed."""
        if self.options.dry_run or self.options.yes or self.interactive:
            return
        ctx = {"params": params, "env": self.env.template_context(), "steps": {},
               "targets": {"rto_s": runbook.rto_s, "rpo_s": runbook.rpo_s},
               "run": {"id": "", "dry_run": False, "started_at": "", "runbook": runbook.id}}
        needed = []
        for step in runbook.steps:
            if step.kind != "approval" or step.id in skip:
                continue
            if self.options.only and step.id != self.options.only:
                continue
            try:
                if step.when and not evaluate(step.when, ctx):
                    continue
            except Exception:  # depends on outputs not known yet: assume it will run
                pass
            needed.append(step.id)
        if needed:
            raise ApprovalRequired(
                f"{runbook.id} needs approval at step(s) {', '.join(needed)} and there is "
                "no terminal to ask; nothing was changed",
                hint="re-run with --yes to approve non-interactively (or run it from a terminal)",
            )


class _Serialised:
    """A display whose methods run one at a time (lanes call it from threads)."""

    def __init__(self, display: Any, lock: threading.RLock) -> None:
        self._display = display
        self._lock = lock

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._display, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                return attr(*args, **kwargs)
        return call


def _wait_all(events: list[threading.Event]) -> None:
    """Wait until every event is set, sleeping in short slices so that an interrupt
    is seen at once (an interrupted Thread.join can leave is_alive() wrong)."""
    while not all(e.is_set() for e in events):
        time.sleep(0.1)


def _rpo_reports(outputs: dict[str, Any]) -> list[dict[str, Any]]:
    """RPO evidence a step reported: ``outputs.rpo`` (probes, actions) or, for
    playbooks, ``outputs.facts.<host>.rpo`` (a role's ``set_stats`` drkit_outputs)."""
    found = [outputs["rpo"]] if isinstance(outputs.get("rpo"), dict) else []
    facts = outputs.get("facts")
    if isinstance(facts, dict):
        found += [f["rpo"] for f in facts.values()
                  if isinstance(f, dict) and isinstance(f.get("rpo"), dict)]
    return found


def _rto(state: RunState, incident_start: datetime | None) -> float | None:
    begin = (incident_start or (parse_ts(state.marks["outage_start"])
                                if "outage_start" in state.marks else parse_ts(state.started_at)))
    # Without a service_restored mark the whole run counts as the outage.
    end_ts = state.marks.get("service_restored")
    end = parse_ts(end_ts) if end_ts else datetime.now(UTC)
    return round((end - begin).total_seconds(), 3)


def _rpo(state: RunState) -> float | None:
    seconds = [e.get("seconds") for e in state.rpo_evidence if e.get("seconds") is not None]
    return max(seconds) if seconds else None


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ") if value else None


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM is handled like Ctrl-C: journaled, lock released, resumable."""
    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt
    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread (tests): leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
