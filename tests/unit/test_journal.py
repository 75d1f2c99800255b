"""The run journal: what a crash leaves behind, and what a resume derives from it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from drkit.errors import ConfigError, DrkitError
from drkit.journal import (
    EVENT_FIELDS,
    Journal,
    RunState,
    find_run,
    list_runs,
    new_run_id,
    read_events,
)

RUN_ID = "20261122T030112Z-RB-DR-003"
STEPS = ["declare", "fence", "scale-up", "promote", "dns"]


def started_fields(**over):
    fields = dict(
        run_id=RUN_ID, runbook="RB-DR-003", runbook_path="runbooks/RB-DR-003.yml",
        runbook_sha256="0" * 64, env="lab", params={"region": "eu-west"}, dry_run=False,
        user="alice", host="bastion-1", pid=4121, argv=["drkit", "run", "RB-DR-003"],
    )
    fields.update(over)
    return fields


def run_step(journal, step, status="ok", *, attempt=1, phase="main", duration=1.5):
    journal.append("step_started", step=step, kind="ansible", attempt=attempt, phase=phase)
    journal.append("step_finished", step=step, status=status, duration_s=duration,
                   error=None if status != "failed" else "rc=2", tail=[])


@pytest.fixture
def journal(tmp_path):
    return Journal.create(tmp_path / "runs" / RUN_ID, **started_fields())


def test_events_round_trip_with_sequence_and_utc_microsecond_timestamps(journal):
    written = journal.append("decision", text="no action: nothing to do")

    events = read_events(journal.path)

    assert [e["event"] for e in events] == ["run_started", "decision"]
    assert [e["seq"] for e in events] == [1, 2]
    assert events[1] == written
    assert events[0]["params"] == {"region": "eu-west"}
    ts = datetime.strptime(written["ts"], "%Y-%m-%dT%H:%M:%S.%fZ")
    assert ts.year >= 2024
    assert journal.path == journal.run_dir / "journal.jsonl"


def test_each_append_is_on_disk_as_one_complete_line_before_it_returns(journal):
    journal.append("decision", text="a")
    # A second reader (as after a crash) sees every appended event already.
    lines = journal.path.read_text().splitlines()
    assert len(lines) == 2
    assert json.loads(lines[-1])["text"] == "a"


def test_event_kinds_match_the_documented_table():
    assert EVENT_FIELDS["step_finished"] == {"step", "status", "duration_s", "error", "tail"}
    assert len(EVENT_FIELDS) == 14


def test_unknown_kind_or_missing_field_is_refused_on_append_and_nothing_is_written(journal):
    with pytest.raises(ValueError, match="unknown event kind 'step_exploded'"):
        journal.append("step_exploded", step="x")
    with pytest.raises(ValueError, match=r"missing field.*phase"):
        journal.append("step_started", step="x", kind="ansible", attempt=1)
    with pytest.raises(ValueError, match="'done' is not one of"):
        journal.append("step_finished", step="x", status="done", duration_s=1,
                       error=None, tail=[])
    assert len(read_events(journal.path)) == 1


def test_unknown_kind_on_read_names_the_file_and_line(journal):
    journal.append("decision", text="a")
    with open(journal.path, "a") as fh:
        fh.write(json.dumps({"seq": 3, "ts": "2026-11-22T03:01:12.123456Z",
                             "event": "teleport"}) + "\n")

    with pytest.raises(ConfigError) as exc:
        read_events(journal.path)
    assert str(journal.path) in str(exc.value)
    assert "line 3" in str(exc.value)
    assert "unknown kind 'teleport'" in str(exc.value)


def test_truncated_last_line_is_tolerated_and_reported(journal):
    run_step(journal, "declare")
    journal.append("step_started", step="fence", kind="ansible", attempt=1, phase="main")
    # The process dies half-way through writing the next line.
    with open(journal.path, "a") as fh:
        fh.write('{"seq": 5, "ts": "2026-11-22T03:01:1')

    decisions: list[str] = []
    events = read_events(journal.path, decisions=decisions)

    assert [e["event"] for e in events][-1] == "step_started"
    assert len(events) == 4
    assert len(decisions) == 1 and "truncated last line" in decisions[0]
    assert "line 5" in decisions[0]


def test_corrupt_middle_line_is_an_error_naming_the_line(journal):
    journal.append("decision", text="a")
    lines = journal.path.read_text().splitlines()
    lines.insert(1, '{"seq": 2, "ts": "garbage')
    journal.path.write_text("\n".join(lines) + "\n")

    with pytest.raises(ConfigError, match=r"line 2 is not valid JSON"):
        read_events(journal.path)


def test_resume_after_a_torn_write_cuts_the_fragment_and_journals_the_decision(journal):
    run_step(journal, "declare")
    with open(journal.path, "a") as fh:
        fh.write('{"seq": 4, "ts": "2026-11')

    resumed = Journal.open(journal.run_dir)
    resumed.append("run_resumed", user="bob", host="bastion-2", pid=7, argv=["--resume"])

    events = read_events(journal.path)
    assert [e["seq"] for e in events] == [1, 2, 3, 4, 5]
    assert events[3]["event"] == "decision"
    assert "removed a truncated last line" in events[3]["text"]
    assert events[4]["event"] == "run_resumed"


def test_create_refuses_a_directory_that_already_has_a_journal(journal):
    with pytest.raises(DrkitError, match="already exists"):
        Journal.create(journal.run_dir, **started_fields())


def test_state_of_a_clean_run(journal):
    journal.append("preflight_finished", ok=True, findings=[])
    for step in STEPS:
        journal.append("step_started", step=step, kind="ansible", attempt=1, phase="main")
        if step == "fence":
            journal.append("mark", name="outage_start", step=step, at="2026-11-22T03:02:00Z")
        if step == "promote":
            journal.append("step_output", step=step, outputs={"lsn": "0/3000060"})
            journal.append("step_output", step=step, outputs={"host": "10.20.1.5"})
            journal.append("rpo_evidence", step=step, seconds=0.0, lost_writes=0, detail={})
        if step == "dns":
            journal.append("mark", name="service_restored", step=step,
                           at="2026-11-22T03:10:00Z")
        journal.append("step_finished", step=step, status="ok", duration_s=2.0,
                       error=None, tail=[])
    journal.append("run_finished", status="succeeded", rto_s=480.0, rpo_s=0.0,
                   targets_met=True)

    state = journal.state()

    assert state.status == "succeeded"
    assert state.completed_steps == tuple(STEPS)
    assert state.failed_step is None and state.interrupted_step is None
    assert state.marks == {"outage_start": "2026-11-22T03:02:00Z",
                           "service_restored": "2026-11-22T03:10:00Z"}
    assert state.outputs == {"promote": {"lsn": "0/3000060", "host": "10.20.1.5"}}
    assert state.rpo_evidence[0]["lost_writes"] == 0
    assert state.step_durations["dns"] == 2.0
    assert state.attempts == dict.fromkeys(STEPS, 1)
    assert (state.run_id, state.runbook, state.env) == (RUN_ID, "RB-DR-003", "lab")
    assert state.params == {"region": "eu-west"} and state.dry_run is False
    assert state.finished_at is not None and state.started_at <= state.finished_at
    assert set(state.next_action(STEPS).values()) == {f"skip (completed in {RUN_ID})"}


def test_state_of_a_run_killed_mid_step(journal):
    run_step(journal, "declare")
    run_step(journal, "fence", "skipped")
    journal.append("step_started", step="scale-up", kind="terraform", attempt=1, phase="main")
    # SIGKILL: no step_finished, no run_finished.

    state = RunState.from_events(read_events(journal.path))

    assert state.status == "running"  # no run_finished: the process was killed
    assert state.completed_steps == ("declare", "fence")
    assert state.interrupted_step == "scale-up"
    assert state.finished_at is None
    assert state.next_action(STEPS) == {
        "declare": f"skip (completed in {RUN_ID})",
        "fence": f"skip (completed in {RUN_ID})",
        "scale-up": "re-run (interrupted)",
        "promote": "run",
        "dns": "run",
    }


def test_state_of_a_failed_run_with_on_failure_steps(journal):
    run_step(journal, "declare")
    run_step(journal, "fence", "failed")
    run_step(journal, "notify-failure", phase="on_failure")
    journal.append("run_finished", status="failed", rto_s=None, rpo_s=None,
                   targets_met=False)

    state = journal.state()

    assert state.status == "failed"
    assert state.failed_step == "fence"
    assert state.completed_steps == ("declare",)  # on_failure steps are not main steps
    assert state.interrupted_step is None
    assert state.next_action(STEPS)["fence"] == "re-run (failed)"


def test_state_of_a_resumed_run_that_then_finished(journal):
    run_step(journal, "declare")
    journal.append("step_started", step="fence", kind="ansible", attempt=1, phase="main")
    journal.append("mark", name="outage_start", step="fence", at="2026-11-22T03:02:00Z")
    # Killed. Resumed by someone else:
    resumed = Journal.open(journal.run_dir)
    resumed.append("run_resumed", user="bob", host="bastion-2", pid=99, argv=["--resume"])
    resumed.append("decision", text=f"skip declare (completed in {RUN_ID})")
    resumed.append("step_started", step="fence", kind="ansible", attempt=2, phase="main")
    resumed.append("mark", name="outage_start", step="fence", at="2026-11-22T03:30:00Z")
    resumed.append("step_finished", step="fence", status="ok", duration_s=3.0,
                   error=None, tail=[])
    for step in STEPS[2:]:
        run_step(resumed, step)
    resumed.append("run_finished", status="succeeded", rto_s=600.0, rpo_s=0.0,
                   targets_met=True)

    state = resumed.state()

    assert state.status == "succeeded"
    assert state.resumes == 1
    assert state.completed_steps == tuple(STEPS)
    assert state.interrupted_step is None
    assert state.attempts["fence"] == 2
    # The outage started when it first started, not when the resume re-marked it.
    assert state.marks["outage_start"] == "2026-11-22T03:02:00Z"


def test_state_needs_run_started():
    with pytest.raises(ConfigError, match="run_started"):
        RunState.from_events([])


def test_run_ids_are_utc_and_sortable():
    cet = timezone(timedelta(hours=1))
    assert new_run_id("RB-DR-003", datetime(2026, 11, 22, 4, 1, 12, tzinfo=cet)) == RUN_ID
    with pytest.raises(ValueError):
        new_run_id("RB-DR-003", datetime(2026, 11, 22, 3, 1, 12))


def test_find_run_returns_the_run_dir_or_lists_the_latest_five(tmp_path):
    runs = tmp_path / "runs"
    base = datetime(2026, 11, 22, 3, 0, 0, tzinfo=UTC)
    ids = [new_run_id("RB-DR-001", base + timedelta(minutes=i)) for i in range(7)]
    for run_id in ids:
        Journal.create(runs / run_id, **started_fields(run_id=run_id))

    assert find_run(runs, ids[2]) == runs / ids[2]
    with pytest.raises(ConfigError) as exc:
        find_run(runs, "20991231T000000Z-RB-NOPE")
    message = str(exc.value)
    assert all(run_id in message for run_id in ids[2:])
    assert ids[0] not in message and ids[1] not in message
    with pytest.raises(ConfigError):
        find_run(runs, "../" + ids[0])


def test_a_complete_last_line_missing_only_its_newline_is_kept(journal):
    journal.append("decision", text="a")
    journal.path.write_bytes(journal.path.read_bytes().rstrip(b"\n"))

    assert len(read_events(journal.path)) == 2
    resumed = Journal.open(journal.run_dir)
    resumed.append("decision", text="b")
    assert [e.get("text") for e in read_events(journal.path)] == [None, "a", "b"]


def test_list_runs_is_oldest_first_so_the_latest_are_at_the_end(tmp_path):
    runs = tmp_path / "runs"
    later, earlier = "20261122T040000Z-RB-DR-001", "20261122T030000Z-RB-DR-002"
    for run_id in (later, earlier):
        Journal.create(runs / run_id, **started_fields(run_id=run_id))
    (runs / "not-a-run").mkdir()
    assert list_runs(runs) == [earlier, later]
    assert list_runs(tmp_path / "missing") == []
