"""The file lock: one run per environment, refusals that name the holder, and
stale locks reported rather than stolen."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from drkit.errors import ConfigError, LockHeld
from drkit.lock import DynamoDBLock, FileLock, LockHolder, make_lock

RUN_A = "20261122T030112Z-RB-DR-003"
RUN_B = "20261122T031500Z-RB-DR-003"
EARLIER = "2026-11-22T03:01:12Z"  # a lock taken before the current run started


@pytest.fixture
def lock(tmp_path):
    return FileLock(tmp_path / "locks" / "lab.lock")


@pytest.fixture
def dead_pid():
    """The pid of a process that has exited (and been reaped) on this host."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_describe_names_user_host_pid_run_and_time():
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    holder = LockHolder("alice", "bastion-1", 4121, RUN_A, f"{today}T03:01:12Z")
    assert holder.describe() == (
        f"alice@bastion-1 (pid 4121, run {RUN_A}) since 03:01:12Z"
    )
    old = replace(holder, since="2020-01-02T03:01:12Z")
    assert old.describe().endswith("since 2020-01-02 03:01:12Z")


def test_acquire_then_a_second_run_is_refused_naming_the_holder(lock):
    me = LockHolder.current(RUN_A)
    decision = lock.acquire(me)
    assert decision == f"acquired lock {lock.path} for run {RUN_A}"
    assert lock.read() == me

    other = LockHolder.current(RUN_B)
    with pytest.raises(LockHeld) as exc:
        lock.acquire(other)
    message = str(exc.value)
    assert message.startswith(f"lock held by {me.user}@{me.host} (pid {me.pid}, run {RUN_A})")
    assert "wait for it to finish, or run `invoke status` to see it" in message
    assert lock.read() == me  # untouched


def test_a_resume_does_not_take_over_a_lock_whose_process_is_alive(lock):
    me = LockHolder.current(RUN_A)
    lock.acquire(me)
    with pytest.raises(LockHeld, match="lock held by"):
        lock.acquire(replace(me, pid=me.pid + 1_000_000), takeover_run_id=RUN_A)


def test_stale_lock_is_reported_and_not_stolen(lock, dead_pid):
    gone = replace(LockHolder.current(RUN_A), pid=dead_pid, since=EARLIER)
    lock.acquire(gone)

    with pytest.raises(LockHeld) as exc:
        lock.acquire(LockHolder.current(RUN_B))

    assert str(exc.value) == (
        f"stale lock: held by {gone.describe()} whose process is gone; "
        "re-run with --break-lock if that run is dead"
    )
    assert lock.read() == gone


def test_stale_lock_is_broken_with_break_stale(lock, dead_pid):
    gone = replace(LockHolder.current(RUN_A), pid=dead_pid, since=EARLIER)
    lock.acquire(gone)
    me = LockHolder.current(RUN_B)

    decision = lock.acquire(me, break_stale=True)

    assert decision.startswith(f"broke the stale lock of {gone.describe()}")
    assert decision.endswith(f"acquired lock {lock.path} for run {RUN_B}")
    assert lock.read() == me


def test_a_resume_of_the_same_run_takes_over_its_own_stale_lock(lock, dead_pid):
    gone = replace(LockHolder.current(RUN_A), pid=dead_pid, since=EARLIER)
    lock.acquire(gone)
    resumed = LockHolder.current(RUN_A)

    decision = lock.acquire(resumed, takeover_run_id=RUN_A)

    assert "took over the stale lock" in decision and "resume of the same run" in decision
    assert lock.read() == resumed


def test_a_resume_of_another_run_does_not_take_over_a_stale_lock(lock, dead_pid):
    lock.acquire(replace(LockHolder.current(RUN_A), pid=dead_pid, since=EARLIER))
    with pytest.raises(LockHeld, match="stale lock"):
        lock.acquire(LockHolder.current(RUN_B), takeover_run_id=RUN_B)


def test_a_lock_from_another_host_is_never_judged_stale_by_pid(lock, dead_pid):
    remote = replace(LockHolder.current(RUN_A), host="bastion-9", pid=dead_pid,
                     since=EARLIER)
    lock.acquire(remote)

    with pytest.raises(LockHeld) as exc:
        lock.acquire(LockHolder.current(RUN_B))
    assert "on another host" in str(exc.value)
    assert "stale" not in str(exc.value)

    decision = lock.acquire(LockHolder.current(RUN_B), break_stale=True)
    assert "on another host" in decision and "not checked" in decision


def test_break_applies_only_to_a_lock_taken_before_this_run_started(lock, dead_pid):
    # Another breaker took the lock a moment ago, after this run started: the
    # operator's --break-lock was meant for the lock they were shown, not this one.
    me = LockHolder.current(RUN_B)
    newer = replace(me, run_id=RUN_A, host="bastion-9", pid=dead_pid)
    lock.acquire(newer)
    with pytest.raises(LockHeld, match="taken after this run started"):
        lock.acquire(me, break_stale=True)
    assert lock.read() == newer


def test_break_pinned_to_a_run_id_breaks_only_that_run(lock, dead_pid):
    gone = replace(LockHolder.current(RUN_A), pid=dead_pid, since=EARLIER)
    lock.acquire(gone)
    with pytest.raises(LockHeld, match="stale lock"):
        lock.acquire(LockHolder.current(RUN_B), break_stale="20261122T000000Z-RB-OTHER")
    assert "broke the stale lock" in lock.acquire(LockHolder.current(RUN_B), break_stale=RUN_A)


def test_release_by_a_non_owner_is_refused_and_the_owner_can_release(lock):
    me = LockHolder.current(RUN_A)
    lock.acquire(me)

    with pytest.raises(LockHeld, match="not the owner"):
        lock.release(LockHolder.current(RUN_B))
    assert lock.read() == me

    assert lock.release(me) == f"released lock {lock.path} of run {RUN_A}"
    assert lock.read() is None
    lock.acquire(LockHolder.current(RUN_B))  # free again


def test_a_lock_file_left_by_hand_is_reported_not_parsed_silently(lock):
    lock.path.parent.mkdir(parents=True)
    lock.path.write_text("{not json")
    with pytest.raises(LockHeld, match="unreadable"):
        lock.acquire(LockHolder.current(RUN_A))


def test_make_lock_picks_the_backend_from_settings(tmp_path):
    file_lock = make_lock({"backend": "file"}, env_name="lab", state_dir=tmp_path)
    assert isinstance(file_lock, FileLock)
    assert file_lock.path == tmp_path / "locks" / "lab.lock"
    assert isinstance(make_lock(None, env_name="lab", state_dir=tmp_path), FileLock)

    class FakeSession:
        def client(self, service, **kwargs):
            import boto3

            return boto3.session.Session(
                aws_access_key_id="x", aws_secret_access_key="x"
            ).client(service, **kwargs)

    ddb = make_lock({"backend": "dynamodb", "table": "drkit-locks", "region": "us-west-2"},
                    env_name="lab", state_dir=tmp_path, boto3_session_factory=FakeSession)
    assert isinstance(ddb, DynamoDBLock)
    assert (ddb.table, ddb.key) == ("drkit-locks", "lab")
    assert ddb.client.meta.region_name == "us-west-2"


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"backend": "s3"}, "lock.backend: unknown backend 's3'"),
        ({"backend": "dynamodb", "region": "us-west-2"}, "lock.table: required"),
        ({"backend": "dynamodb", "table": "t"}, "lock.region: required"),
        ({"backend": "file", "table": "t"}, "lock.table: unknown key"),
    ],
)
def test_make_lock_rejects_bad_settings_with_the_dotted_key(tmp_path, settings, expected):
    with pytest.raises(ConfigError) as exc:
        make_lock(settings, env_name="lab", state_dir=tmp_path)
    assert expected in str(exc.value)
