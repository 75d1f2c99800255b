"""benchmarks/failover.py judges write downtime by the longest time without an
acknowledgement, and splits a planned run's at the promotion."""

from __future__ import annotations

from datetime import datetime

import pytest

from benchmarks import failover
from drkit.drivers.ansible import play_timings


def at(clock: str) -> float:
    """Epoch seconds of 2026-11-22T<clock>Z, as the canary writes its times."""
    return datetime.fromisoformat(f"2026-11-22T{clock}+00:00").timestamp()


def promote_output(plays: list[tuple[str, str]], last_event: str) -> dict:
    """The journal's step_output of step promote, plays timed by the ansible driver
    from ansible-runner's (play, created) start events."""
    starts = [(name, f"2026-11-22T{clock}+00:00") for name, clock in plays]
    return {"seq": 7, "ts": "2026-11-22T10:00:12.100000Z", "event": "step_output",
            "step": "promote",
            "outputs": {"plays": play_timings(starts, f"2026-11-22T{last_event}+00:00")}}


def ack(seq: int, clock: str, address: str = "10.20.1.5") -> dict:
    return {"seq": seq, "t": at(clock) - 0.01, "ack": at(clock), "address": address}


PLAYS = [("Work out the estate's facts and read the database credentials", "10:00:00.000"),
         ("Connect to the database hosts and ready the target", "10:00:01.000"),
         ("Cut DNS over to the target region", "10:00:03.000"),
         (failover.FENCE_PLAY, "10:00:04.000"),
         (failover.PROMOTE_PLAY, "10:00:07.500"),
         ("Repoint replicas at the new primary", "10:00:09.000")]
ACKS = [ack(1, "10:00:03.900", "10.10.1.5"), ack(2, "10:00:04.400", "10.10.1.5"),
        ack(3, "10:00:10.250"), ack(4, "10:00:10.270")]


def test_a_planned_runs_unavailability_splits_at_the_promotion() -> None:
    events = [{"seq": 6, "ts": "2026-11-22T10:00:00.000000Z", "event": "step_started",
               "step": "promote", "kind": "ansible", "attempt": 1, "phase": "main"},
              promote_output(PLAYS, "10:00:12.000")]
    parts = failover.unavailability_parts(events, ACKS)
    # The promote play ends where the repoint play starts (10:00:09).
    assert parts["fence_to_promote_s"] == pytest.approx(5.0)
    assert parts["promote_to_ack_s"] == pytest.approx(1.25)
    assert parts["promoted_at"] == "2026-11-22T10:00:09.000000Z"
    assert parts["first_ack_at"] == "2026-11-22T10:00:10.250000Z"
    assert failover.parts_line(parts) == (
        "    write unavailable: fence -> promote done 5.00 s, "
        "promote done -> first ack 1.25 s")


def test_a_resumed_promote_step_is_read_from_its_last_output() -> None:
    first_attempt = promote_output(PLAYS[:4], "10:00:04.200")
    parts = failover.unavailability_parts(
        [first_attempt, promote_output(PLAYS, "10:00:12.000")], ACKS)
    assert parts["fence_to_promote_s"] == pytest.approx(5.0)


def test_missing_plays_or_acks_are_named_not_guessed() -> None:
    with pytest.raises(ValueError, match="no fence and promotion timings and no play "
                                         "'Promote the target replica'"):
        failover.unavailability_parts([promote_output(PLAYS[:4], "10:00:05")], ACKS)
    with pytest.raises(ValueError, match="no acknowledgement after the promotion"):
        failover.unavailability_parts([promote_output(PLAYS, "10:00:12")], ACKS[:2])
    with pytest.raises(ValueError, match="no step_output of step promote"):
        failover.unavailability_parts([], ACKS)
    assert failover.parts_line({"error": "the journal has no step_output of step promote"}) == (
        "    write unavailable: parts unknown (the journal has no step_output of step promote)")


def test_a_switchover_is_split_by_its_scripts_own_timings() -> None:
    """The fence script's start and the promotion's end (each host's clock as its
    script read it) bound the first part, whatever the plays around them."""
    output = promote_output(PLAYS, "10:00:12.000")
    output["outputs"]["facts"] = {
        "lab-us-east-db": {"fenced": True, "fence_timings": {
            "script_started_at": at("10:00:03.700"), "fence_started_at": at("10:00:04.000"),
            "stopped_at": at("10:00:04.450")}},
        "lab-eu-west-db": {"promoted": True, "promote_timings": {
            "promote_started_at": at("10:00:04.610"), "promoted_at": at("10:00:04.700")}}}
    acks = [ack(1, "10:00:03.990", "10.10.1.5"), ack(2, "10:00:04.720"), ack(3, "10:00:04.740")]
    parts = failover.unavailability_parts([output], acks)
    assert parts["source"] == "scripts"
    assert parts["fence_to_promote_s"] == pytest.approx(0.7)
    assert parts["promote_to_ack_s"] == pytest.approx(0.02)
    assert parts["fence_started_at"] == "2026-11-22T10:00:04.000000Z"


def test_blocked_writes_miss_the_planned_target_though_nothing_failed() -> None:
    row = {"name": "planned", "wall_s": 40.2, "write_unavailable_s": 11.8, "failing_s": 0.0,
           "lost": 0}
    assert failover.verdicts(row) == ["wall_s PASS (<= 45)", "write_unavailable_s MISS (<= 3)",
                                      "lost PASS (<= 0)"]


def test_the_summary_judges_the_planned_median_and_every_round() -> None:
    def row(name: str, unavailable: float, lost: int = 0) -> dict:
        return {"name": name, "wall_s": 40.0, "write_unavailable_s": unavailable, "lost": lost}
    rows = [row("planned", u) for u in (1.2, 1.9, 2.4, 1.5, 2.9)] + [row("failback", 1.1, lost=2)]
    lines, missed = failover.summary(rows)
    assert missed == []
    planned = next(line for line in lines if line.startswith("planned ")
                   and "write_unavailable_s" in line)
    assert "median   1.90  worst   2.90  each <= 3: met in 5/5  median <= 2: PASS" in planned
    assert any(line.startswith("failback ") and "most in a round 2" in line for line in lines)
    _, missed = failover.summary([row("planned", u) for u in (2.1, 2.2, 1.0)])
    assert missed == ["planned write_unavailable_s median 2.10 > 2"]
