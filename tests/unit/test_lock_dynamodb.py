"""The DynamoDB lock against a real moto server: conditional writes decide races."""

from __future__ import annotations

import threading
import uuid
from dataclasses import replace

import pytest

from drkit.errors import ConfigError, LockHeld
from drkit.lock import DynamoDBLock, LockHolder, ensure_table, make_lock
from tests.support.moto import CREDENTIALS, aws_client, running_moto_server

RUN_A = "20261122T030112Z-RB-DR-003"
RUN_B = "20261122T030113Z-RB-DR-003"


@pytest.fixture(scope="module")
def moto_url():
    with running_moto_server() as url:
        yield url


@pytest.fixture
def table(moto_url):
    name = f"drkit-locks-{uuid.uuid4().hex[:8]}"
    assert ensure_table(aws_client("dynamodb", moto_url), name) == f"created lock table {name}"
    return name


def lock_for(moto_url, table, key="lab"):
    return DynamoDBLock(table, key, client=aws_client("dynamodb", moto_url))


def holder(run_id, host, pid, since="2026-11-22T03:01:12Z"):
    return LockHolder("alice" if host == "bastion-1" else "bob", host, pid, run_id, since)


def test_two_contenders_racing_exactly_one_wins_and_the_loser_is_told_who(moto_url, table):
    contenders = [holder(RUN_A, "bastion-1", 4121), holder(RUN_B, "bastion-2", 5353)]
    barrier = threading.Barrier(len(contenders))
    outcomes: dict[str, object] = {}

    def contend(me):
        lock = lock_for(moto_url, table)  # own client per thread
        barrier.wait()
        try:
            outcomes[me.run_id] = lock.acquire(me)
        except LockHeld as exc:
            outcomes[me.run_id] = exc

    threads = [threading.Thread(target=contend, args=(c,)) for c in contenders]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)

    winners = [c for c in contenders if isinstance(outcomes[c.run_id], str)]
    losers = [c for c in contenders if isinstance(outcomes[c.run_id], LockHeld)]
    assert len(winners) == 1 and len(losers) == 1
    winner, loser = winners[0], losers[0]
    assert lock_for(moto_url, table).read() == winner
    message = str(outcomes[loser.run_id])
    assert message.startswith(f"lock held by {winner.user}@{winner.host} (pid {winner.pid}, "
                              f"run {winner.run_id})")


def test_non_owner_release_is_refused_then_owner_releases_and_the_other_acquires(
        moto_url, table):
    lock = lock_for(moto_url, table)
    alice = holder(RUN_A, "bastion-1", 4121)
    bob = holder(RUN_B, "bastion-2", 5353)
    lock.acquire(alice)

    with pytest.raises(LockHeld, match=r"not the owner.*alice@bastion-1"):
        lock.release(bob)
    # Same run id from another process is not the owner either.
    with pytest.raises(LockHeld, match="not the owner"):
        lock.release(replace(alice, pid=9999))
    assert lock.read() == alice

    assert "released" in lock.release(alice)
    assert lock.read() is None
    assert lock.acquire(bob).startswith("acquired lock dynamodb://")
    assert lock.read() == bob


def test_locks_of_different_environments_do_not_interfere(moto_url, table):
    lock_for(moto_url, table, "lab").acquire(holder(RUN_A, "bastion-1", 1))
    lock_for(moto_url, table, "staging").acquire(holder(RUN_B, "bastion-2", 2))


def test_a_lock_from_another_host_is_only_replaced_by_break_or_resume(moto_url, table):
    lock = lock_for(moto_url, table)
    remote = holder(RUN_A, "bastion-9", 4121)
    lock.acquire(remote)

    with pytest.raises(LockHeld, match="on another host"):
        lock.acquire(holder(RUN_B, "bastion-1", 1))

    resumed = holder(RUN_A, "bastion-1", 77, since="2026-11-22T03:20:00Z")
    assert "resume of the same run" in lock.acquire(resumed, takeover_run_id=RUN_A)
    assert lock.read() == resumed

    breaker = holder(RUN_B, "bastion-2", 88, since="2026-11-22T03:30:00Z")
    assert "--break-lock" in lock.acquire(breaker, break_stale=True)
    assert lock.read() == breaker


def test_two_breakers_of_one_lock_cannot_both_win(moto_url, table):
    lock = lock_for(moto_url, table)
    lock.acquire(holder(RUN_A, "bastion-9", 4121))
    breakers = [holder(f"20261122T04000{i}Z-RB-DR-003", f"bastion-{i}", 100 + i,
                       since="2026-11-22T04:00:00Z") for i in range(4)]
    barrier = threading.Barrier(len(breakers))
    won: list[LockHolder] = []
    refused: list[LockHeld] = []

    def breaking(me):
        mine = lock_for(moto_url, table)
        barrier.wait()
        try:
            mine.acquire(me, break_stale=True)
            won.append(me)
        except LockHeld as exc:
            refused.append(exc)

    threads = [threading.Thread(target=breaking, args=(b,)) for b in breakers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)

    # The conditional write on the judged holder lets exactly one breaker win;
    # the others are refused, told who holds the lock now.
    assert len(won) == 1 and len(refused) == len(breakers) - 1
    assert lock.read() == won[0]
    for exc in refused:
        assert str(exc).startswith(f"lock held by {won[0].describe()}")


def test_a_missing_table_is_a_config_error_naming_it(moto_url):
    lock = lock_for(moto_url, "no-such-table")
    with pytest.raises(ConfigError, match=r"lock\.table: DynamoDB table 'no-such-table'"):
        lock.acquire(holder(RUN_A, "bastion-1", 1))


def test_make_lock_reaches_the_endpoint(moto_url, table, tmp_path):
    import boto3

    lock = make_lock(
        {"backend": "dynamodb", "table": table, "region": "us-west-2"},
        env_name="lab", state_dir=tmp_path, endpoint_url=moto_url,
        boto3_session_factory=lambda: boto3.session.Session(**CREDENTIALS),
    )
    me = holder(RUN_A, "bastion-1", 1)
    lock.acquire(me)
    assert lock_for(moto_url, table).read() == me
    assert ensure_table(aws_client("dynamodb", moto_url), table) == f"lock table {table} exists"
