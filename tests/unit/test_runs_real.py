"""Runs with real Terraform and real Ansible (localhost only): the demo end to
end, a dry run that changes nothing, and a run killed with SIGKILL half-way
through a real step that resumes there."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from drkit.journal import RunState, read_events

pytestmark = pytest.mark.slow


def _state(run_dir: Path) -> RunState:
    return RunState.from_events(read_events(run_dir / "journal.jsonl"))


def test_the_demo_runs_terraform_and_ansible_end_to_end_with_reports(workspace, tmp_path):
    out_dir = tmp_path / "out"
    out = workspace.drkit("run", "examples/demo/runbook.yml", "--param", f"out_dir={out_dir}",
                          "--yes")
    assert out.returncode == 0, out.stdout + out.stderr
    assert (out_dir / "terraform.txt").is_file()
    assert (out_dir / "ansible.txt").is_file()
    run = workspace.only_run()
    report = json.loads((run / "report.json").read_text())
    assert report["status"] == "succeeded"
    assert [s["id"] for s in report["steps"]] == [
        "out-dir-is-absolute", "declare", "provision", "approve-configure", "configure",
        "resolved"]
    assert report["met"]["rto"] is True
    assert (run / "report.md").is_file() and (run / "junit.xml").is_file()
    # The playbook's plays are rows under its step, timed within it.
    configure = next(s for s in report["steps"] if s["id"] == "configure")
    [play] = configure["plays"]
    assert play["name"] == "Demo - write a marker file on localhost"
    assert configure["start_offset_s"] <= play["start_offset_s"]
    assert play["start_offset_s"] + play["duration_s"] <= (
        configure["start_offset_s"] + configure["duration_s"])
    assert "↳ Demo - write a marker file on localhost" in (run / "report.md").read_text()
    assert "Demo - write a marker file" in (run / "report.html").read_text()
    assert list((run / "terraform" / "provision").glob("*.jsonl")), "raw terraform log kept"
    assert (run / "ansible" / "configure").is_dir(), "ansible-runner artifacts kept"


def test_dry_run_creates_no_file_and_no_terraform_state(workspace, tmp_path):
    out_dir = tmp_path / "out"
    out = workspace.drkit("run", "examples/demo/runbook.yml", "--param", f"out_dir={out_dir}",
                          "--dry-run")
    assert out.returncode == 0, out.stdout + out.stderr
    assert not out_dir.exists()
    states = [p for p in workspace.root.rglob("*.tfstate*")]
    assert states == []
    assert "create terraform_data.marker" in out.stdout
    assert "Write the marker file" in out.stdout
    report = json.loads((workspace.only_run() / "report.json").read_text())
    assert report["dry_run"] is True
    assert any("terraform_data.marker" in line for line in report["dry_run_summary"])


def test_a_run_killed_in_a_real_step_resumes_there(workspace, tmp_path):
    markers = tmp_path / "markers"
    proc = workspace.popen("run", "RB-TEST-003", "--param", f"dir={markers}")
    started_log = markers / "started.log"
    try:
        deadline = time.monotonic() + 120
        while not started_log.exists() and time.monotonic() < deadline:
            assert proc.poll() is None, proc.stdout.read()
            time.sleep(0.2)
        assert started_log.exists(), "the ansible step never started"
        # A bastion crash: the whole process group dies at once, no cleanup.
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    run = workspace.only_run()
    killed = _state(run)
    assert killed.status == "running"  # never finished: killed
    assert killed.completed_steps == ("before",)
    assert killed.interrupted_step == "hold"
    assert not (markers / "after.txt").exists()

    (markers / "release").write_text("go")
    out = workspace.drkit("resume", run.name)
    assert out.returncode == 0, out.stdout + out.stderr
    state = _state(run)
    assert state.status == "succeeded"
    assert state.attempts == {"before": 1, "hold": 2, "after": 1}
    assert started_log.read_text().count("started") == 2  # the interrupted step re-ran
    assert (markers / "after.txt").exists()
    decisions = [e["text"] for e in read_events(run / "journal.jsonl")
                 if e["event"] == "decision"]
    assert any("took over" in d or "stale" in d for d in decisions), decisions
