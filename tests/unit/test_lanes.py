"""Parallel blocks: consecutive steps that name a lane run lane by lane at the same
time, through the real `drkit` command (steps are quick Python actions)."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from drkit.errors import ConfigError, ExitCode
from drkit.journal import RunState, read_events
from drkit.runbook import blocks, load_runbook


def _events(run: Path) -> list[dict]:
    return read_events(run / "journal.jsonl")


def _seq(events: list[dict], kind: str, step: str) -> int:
    return next(e["seq"] for e in events if e["event"] == kind and e.get("step") == step)


def test_lanes_run_side_by_side_and_the_block_ends_when_every_lane_has(workspace):
    out = workspace.drkit("run", "RB-TEST-004")
    assert out.returncode == 0, out.stdout + out.stderr
    run = workspace.only_run()
    events = _events(run)
    state = RunState.from_events(events)
    assert set(state.completed_steps) == {"before", "slow-a", "then-a", "slow-b",
                                          "fail-b", "then-b", "after"}  # fail-b: skipped
    # Lane b started (and finished) its first step while lane a's first step ran.
    assert _seq(events, "step_started", "slow-b") < _seq(events, "step_finished", "slow-a")
    # Each lane keeps its own order; the step after the block waits for both lanes.
    assert _seq(events, "step_finished", "slow-a") < _seq(events, "step_started", "then-a")
    assert _seq(events, "step_finished", "slow-b") < _seq(events, "step_started", "then-b")
    last_in_block = max(_seq(events, "step_finished", s) for s in ("then-a", "then-b"))
    assert last_in_block < _seq(events, "step_started", "after")
    assert any("lane a: slow-a -> then-a; lane b: slow-b -> fail-b -> then-b" in e["text"]
               for e in events if e["event"] == "decision")
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))


def test_a_failing_lane_stops_the_block_after_the_running_steps_end(workspace):
    out = workspace.drkit("run", "RB-TEST-004", "--param", "fail=true", "--param", "hold=1")
    assert out.returncode == ExitCode.STEP_FAILED
    assert "lane b failed on purpose" in out.stderr
    run = workspace.only_run()
    state = RunState.from_events(_events(run))
    assert state.failed_step == "fail-b"
    # Lane a's running step finished; no lane started another step, nor did the
    # step after the block.
    assert set(state.completed_steps) == {"before", "slow-a", "slow-b"}
    assert not (workspace.root / "out").exists()

    resumed = workspace.drkit("resume", run.name)  # fail=true is kept: it fails again
    assert resumed.returncode == ExitCode.STEP_FAILED
    state = RunState.from_events(_events(run))
    assert state.attempts["slow-a"] == 1 and state.attempts["fail-b"] == 2


def test_an_interrupt_waits_for_the_running_steps_then_resume_finishes(workspace):
    run_proc = workspace.popen("run", "RB-TEST-004", "--param", "hold=3")
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            runs = list(workspace.runs.glob("*/journal.jsonl")) if workspace.runs.exists() \
                else []
            if runs and '"slow-b"' in runs[0].read_text():
                break
            time.sleep(0.1)
    finally:
        run_proc.send_signal(signal.SIGTERM)
        run_proc.wait(timeout=60)
    assert run_proc.returncode == ExitCode.INTERRUPTED
    run = workspace.only_run()
    state = RunState.from_events(_events(run))
    assert state.status == "interrupted"
    # Both running steps were left to end; nothing after them started.
    assert {"slow-a", "slow-b"} <= set(state.completed_steps)
    assert "then-a" not in state.attempts and "after" not in state.attempts

    out = workspace.drkit("resume", run.name)
    assert out.returncode == 0, out.stdout + out.stderr
    state = RunState.from_events(_events(run))
    assert state.status == "succeeded" and state.attempts["slow-a"] == 1


def _write(tmp_path: Path, steps: str) -> Path:
    path = tmp_path / "RB-LANE-001.yml"
    path.write_text("id: RB-LANE-001\ntitle: t\nwhy: w\nseverity: SEV4\n"
                    "targets: {rto: 1m, rpo: 0s}\n" + steps)
    return path


def test_blocks_group_consecutive_lane_steps_only(tmp_path):
    rb = load_runbook(_write(tmp_path, """steps:
  - {id: a, action: {name: local.wait}}
  - {id: b, lane: x, action: {name: local.wait}}
  - {id: c, lane: y, action: {name: local.wait}}
  - {id: d, action: {name: local.wait}}
  - {id: e, lane: x, action: {name: local.wait}}
"""))
    assert [[s.id for s in block] for block in blocks(rb.steps)] == [["a"], ["b", "c"], ["d"],
                                                                     ["e"]]


@pytest.mark.parametrize(("steps", "path", "says"), [
    ("""steps:
  - {id: a, lane: x, action: {name: local.wait}, when: "steps.b.outputs"}
  - {id: b, lane: y, action: {name: local.wait}}
""", "steps[0].when", "another lane"),
    ("""steps:
  - {id: a, lane: x, action: {name: local.wait}}
  - {id: b, lane: y, action: {name: local.wait}}
  - {id: c, lane: y, action: {name: local.wait}, when: "steps.a.outputs"}
""", "steps[2].when", "another lane"),
    ("""preflight:
  - {id: p, lane: x, check: {probe: local.path, args: {path: .}, expect: result.exists}}
steps:
  - {id: a, action: {name: local.wait}}
""", "preflight[0].lane", "runs alone"),
    ("""steps:
  - {id: a, lane: x, approval: {prompt: go?}}
""", "steps[0].lane", "before or after the block"),
    ("""steps:
  - {id: a, lane: Big Lane, action: {name: local.wait}}
""", "steps[0].lane", "does not match"),
])
def test_bad_lanes_are_refused_with_their_path(tmp_path, steps, path, says):
    with pytest.raises(ConfigError) as info:
        load_runbook(_write(tmp_path, steps))
    assert any(path in line and says in line for line in str(info.value).splitlines()), \
        str(info.value)


def test_a_step_after_the_block_may_use_any_lane_s_outputs(tmp_path):
    rb = load_runbook(_write(tmp_path, """steps:
  - {id: a, lane: x, action: {name: local.wait}}
  - {id: b, lane: y, action: {name: local.wait}}
  - {id: c, action: {name: local.wait}, when: "steps.a.outputs and steps.b.outputs"}
"""))
    assert [s.lane for s in rb.steps] == ["x", "y", None]
