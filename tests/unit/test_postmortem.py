"""`drkit postmortem` on a real failover's journal (copied from a lab run of
RB-DR-003, unplanned, to eu-west): the plans' post-incident record, with every
step and every decision, written beside the run's reports."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from drkit.errors import ExitCode
from drkit.journal import read_events

REPO = Path(__file__).resolve().parents[2]
RUN_ID = "20261203T081256Z-RB-DR-003"
JOURNAL = REPO / "tests" / "fixtures" / "postmortem" / RUN_ID / "journal.jsonl"


@pytest.fixture
def failover_run(workspace) -> Path:
    """The workspace with the project's runbooks, the lab environment and the run."""
    for rb in (REPO / "runbooks").glob("RB-*.yml"):
        shutil.copy(rb, workspace.root / "runbooks" / rb.name)
    shutil.copytree(REPO / "inventory" / "lab", workspace.root / "inventory" / "lab")
    run = workspace.runs / RUN_ID
    run.mkdir(parents=True)
    shutil.copy(JOURNAL, run / "journal.jsonl")
    return run


def test_postmortem_drafts_the_record_with_every_step_and_decision(workspace, failover_run):
    out = workspace.drkit("postmortem", RUN_ID)

    assert out.returncode == 0, out.stderr
    record = (failover_run / "postmortem.md").read_text()
    assert record in out.stdout
    events = read_events(JOURNAL)
    steps = {e["step"] for e in events if e["event"] == "step_finished"}
    decisions = [e["text"] for e in events if e["event"] == "decision"]
    assert len(steps) >= 8 and len(decisions) >= 5
    for step in steps:
        assert f"step {step} " in record or f"step {step} (" in record, step
    for text in decisions:
        assert f"- {text}" in record and f"decision: {text}" in record
    assert "# Post-incident record: RB-DR-003 Region failover" in record
    assert "| RTO | 30m 00s | 1m 11s | met |" in record  # the lab's target, from its settings
    assert "| RPO | 0.0s | 0.0s | met |" in record
    assert "synchronous standby" in record  # the RPO evidence
    assert "- nothing: every step succeeded" in record
    for section in ("## Timeline (UTC)", "## Decisions", "## What failed", "## Root cause",
                    "## Action items", "Within 48 hours:", "Within 30 days:"):
        assert section in record


def test_a_failed_run_lists_what_failed_and_an_action_for_it(workspace):
    out = workspace.drkit("run", "RB-TEST-001", "-p", "fail=true")
    assert out.returncode == ExitCode.STEP_FAILED
    run = workspace.only_run()

    out = workspace.drkit("postmortem", run.name)

    assert out.returncode == 0, out.stderr
    record = (run / "postmortem.md").read_text()
    assert "- step **last** (last) failed: RuntimeError: the last step failed on purpose" \
        in record
    assert "| 1 | Find and fix why step last failed |" in record


def test_postmortem_keeps_an_edited_record_unless_forced(workspace, failover_run):
    (failover_run / "postmortem.md").write_text("edited by the review\n")
    out = workspace.drkit("postmortem", RUN_ID)
    assert out.returncode == ExitCode.BAD_INPUT and "--force" in out.stderr
    assert (failover_run / "postmortem.md").read_text() == "edited by the review\n"
    assert workspace.drkit("postmortem", RUN_ID, "--force").returncode == 0
