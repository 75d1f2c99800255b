"""Runs through the real `drkit` command: exit codes, journals, locks, approvals,
resume. Steps here are Python actions and checks (fast); real terraform and
ansible runs are in test_runs_real.py."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

from drkit.errors import ExitCode
from drkit.journal import RunState, read_events


def _state(run_dir: Path) -> RunState:
    return RunState.from_events(read_events(run_dir / "journal.jsonl"))


def test_a_clean_run_succeeds_measures_rto_and_writes_every_report(workspace):
    out = workspace.drkit("run", "RB-TEST-001")
    assert out.returncode == 0, out.stdout + out.stderr
    run = workspace.only_run()
    state = _state(run)
    assert state.status == "succeeded"
    assert state.completed_steps == ("first", "middle", "restored", "last")
    assert {"outage_start", "service_restored"} <= set(state.marks)
    report = json.loads((run / "report.json").read_text())
    assert report["achieved"]["rto_s"] is not None
    assert report["met"]["rto"] is True
    assert [s["status"] for s in report["steps"]] == ["ok", "ok", "ok", "skipped"]
    for name in ("report.md", "junit.xml", "report.html"):
        assert (run / name).is_file()
    assert str(run.relative_to(workspace.root) / "report.md") in out.stdout


def test_a_failing_step_runs_on_failure_prints_the_resume_command_and_exits_4(workspace):
    out = workspace.drkit("run", "RB-TEST-001", "--param", "fail=true")
    assert out.returncode == ExitCode.STEP_FAILED
    run = workspace.only_run()
    assert "step last" in out.stderr and "failed on purpose" in out.stderr
    assert f"drkit resume {run.name}" in out.stderr
    state = _state(run)
    assert state.failed_step == "last"
    notes = (workspace.root / ".drkit" / "notifications.log").read_text()
    assert "[IDENTIFIED]" in notes  # the on_failure notification went out
    junit = (run / "junit.xml").read_text()
    assert 'name="last"' in junit and "<failure" in junit


def test_resuming_a_failed_run_skips_completed_steps(workspace):
    workspace.drkit("run", "RB-TEST-001", "--param", "fail=true")
    run = workspace.only_run()
    # The fix: the journal keeps the run's parameters, so resume re-runs `last`
    # with fail=true and it fails again; what matters is what got skipped.
    out = workspace.drkit("resume", run.name)
    assert out.returncode == ExitCode.STEP_FAILED
    state = _state(run)
    assert state.attempts == {"first": 1, "middle": 1, "restored": 1, "last": 2,
                              "tell-failed": 2}
    decisions = [e["text"] for e in read_events(run / "journal.jsonl")
                 if e["event"] == "decision"]
    assert any(d.startswith("first: skip (completed in") for d in decisions)


def test_bad_parameters_are_all_reported_with_exit_2_and_no_run_is_created(workspace):
    out = workspace.drkit("run", "RB-TEST-001", "--param", "hold=soon",
                          "--param", "colour=red")
    assert out.returncode == ExitCode.BAD_INPUT
    assert "params.hold" in out.stderr and "params.colour" in out.stderr
    assert not workspace.runs.exists() or not any(workspace.runs.iterdir())


def test_an_unknown_runbook_names_the_known_ones(workspace):
    out = workspace.drkit("run", "RB-NOPE")
    assert out.returncode == ExitCode.BAD_INPUT
    assert "RB-TEST-001" in out.stderr


def test_an_unanswerable_approval_fails_before_any_side_effect(workspace, tmp_path):
    marker = tmp_path / "created"
    out = workspace.drkit("run", "RB-TEST-002", "--param", f"marker={marker}")
    assert out.returncode == ExitCode.APPROVAL_REQUIRED
    assert "--yes" in out.stderr
    assert not marker.exists()
    assert not (workspace.root / ".drkit" / "locks" / "test.lock").exists()


def test_yes_passes_the_gate_and_journals_who_approved(workspace, tmp_path):
    marker = tmp_path / "created"
    out = workspace.drkit("run", "RB-TEST-002", "--param", f"marker={marker}", "--yes")
    assert out.returncode == 0, out.stderr
    assert marker.exists()
    state = _state(workspace.only_run())
    assert state.approvals[0]["how"] == "yes-flag"
    assert state.approvals[0]["prompt"].startswith("Create")  # what was agreed to
    assert "asked: Create" in (workspace.only_run() / "report.md").read_text()


def test_dry_run_shows_the_gate_and_the_action_but_changes_nothing(workspace, tmp_path):
    marker = tmp_path / "created"
    out = workspace.drkit("run", "RB-TEST-002", "--param", f"marker={marker}", "--dry-run")
    assert out.returncode == 0, out.stderr
    assert not marker.exists()
    assert "would ask: Create" in out.stdout
    assert "would run local.write_marker" in out.stdout


def test_a_second_run_on_a_locked_environment_is_refused_naming_the_holder(workspace):
    first = workspace.popen("run", "RB-TEST-001", "--param", "hold=60")
    try:
        lock = workspace.root / ".drkit" / "locks" / "test.lock"
        deadline = time.monotonic() + 60
        while not lock.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        holder = json.loads(lock.read_text())
        out = workspace.drkit("run", "RB-TEST-001")
        assert out.returncode == ExitCode.LOCK_HELD
        assert f"pid {first.pid}" in out.stderr
        assert holder["run_id"] in out.stderr
        assert f"{holder['user']}@{holder['host']}" in out.stderr
    finally:
        first.send_signal(signal.SIGINT)
        first.wait(timeout=60)
    # Ctrl-C: journaled, lock released, resumable
    assert first.returncode == ExitCode.INTERRUPTED
    assert not (workspace.root / ".drkit" / "locks" / "test.lock").exists()
    state = _state(workspace.only_run())
    assert state.status == "interrupted"
    assert state.interrupted_step == "middle"


def test_only_and_from_select_steps_and_unknown_ones_are_refused(workspace):
    out = workspace.drkit("run", "RB-TEST-001", "--only", "restored")
    assert out.returncode == 0, out.stderr
    state = _state(workspace.only_run())
    assert state.attempts == {"restored": 1}
    bad = workspace.drkit("run", "RB-TEST-001", "--from", "nope")
    assert bad.returncode == ExitCode.BAD_INPUT
    assert "first, middle, restored, last" in bad.stderr


def test_a_missed_rto_target_exits_6_after_writing_the_report(workspace):
    rb = workspace.root / "runbooks" / "RB-TEST-001-steps.yml"
    rb.write_text(rb.read_text().replace("rto: 5m", "rto: 1ms"))
    out = workspace.drkit("run", "RB-TEST-001", "--param", "hold=0.2")
    assert out.returncode == ExitCode.TARGET_MISSED
    assert "RTO" in out.stderr
    report = json.loads((workspace.only_run() / "report.json").read_text())
    assert report["met"]["rto"] is False
    assert "<failure" in (workspace.only_run() / "junit.xml").read_text()


def test_a_preflight_check_whose_when_is_false_is_skipped_and_says_so(workspace, tmp_path):
    marker = tmp_path / "changed"
    (workspace.root / "runbooks" / "RB-TEST-006-when.yml").write_text(f"""\
id: RB-TEST-006
title: A preflight check only one mode needs
why: RB-DR-006 checks the estate only when it restores onto it.
severity: SEV4
targets: {{rto: 5m, rpo: 0s}}
params:
  into: {{type: str, default: scratch, choices: [scratch, db], help: where}}
preflight:
  - id: estate
    when: params.into == 'db'
    check:
      probe: local.path
      args: {{path: no-such-file}}
      expect: result.exists
steps:
  - id: change
    action: {{name: local.write_marker, args: {{path: "{marker}"}}}}
""")
    out = workspace.drkit("run", "RB-TEST-006")
    assert out.returncode == 0, out.stdout + out.stderr
    events = read_events(workspace.only_run() / "journal.jsonl")
    assert "estate: skipped, when is false: params.into == 'db'" in [
        e["text"] for e in events if e["event"] == "decision"]
    assert marker.exists()

    marker.unlink()
    out = workspace.drkit("run", "RB-TEST-006", "--param", "into=db")
    assert out.returncode == ExitCode.PREFLIGHT_FAILED, out.stdout + out.stderr
    assert not marker.exists()


def test_a_keep_going_suite_runs_every_check_and_names_each_failure(workspace):
    out = workspace.drkit("run", "RB-TEST-007")
    assert out.returncode == ExitCode.STEP_FAILED, out.stdout + out.stderr
    assert "2 step(s) failed" in out.stderr
    assert "no/such/dir is missing: create it" in out.stderr
    assert "no/other/dir is missing: create it" in out.stderr
    run = workspace.only_run()
    report = json.loads((run / "report.json").read_text())
    assert [s["status"] for s in report["steps"]] == ["ok", "failed", "ok", "failed", "ok", "ok"]
    junit = (run / "junit.xml").read_text()
    assert junit.count("<failure") == 2
