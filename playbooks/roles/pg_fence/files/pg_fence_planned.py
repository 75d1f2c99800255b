#!/usr/bin/env python3
"""pg_fence's planned fence as one remote action: the whole write-critical half
of a switchover in one process on the old primary's host, with no round trip to
the controller between its steps (each was an Ansible task of 0.1-0.5 s).

    pg_fence_planned.py --data-dir D --socket-dir S --port P --wait-for eu_west \
        [--target eu_west] [--replay-timeout 60] [--poll 0.01]

Running primary: ALTER SYSTEM default_transaction_read_only = on and reload; wait
until new sessions are read-only; terminate client backends (walsenders stay);
pg_switch_wal(); commit a transaction that writes one WAL message, "fence --marker"
(no table; the promotion waiting on the target watches for it), with
synchronous_commit = remote_apply (its commit record makes each standby report
its replay position as soon as it replays it, instead of within
wal_receiver_status_interval); record the flush LSN (the fenced LSN); wait until
every replica of --wait-for has replayed it (pg_stat_replication); fast shutdown
(SIGINT to the postmaster) and wait until its control file says "shut down" (no
backend is left then and no connection is accepted; the postmaster may still be
archiving for a while). If the replicas do not catch up in time, the fence is
undone (writes allowed again, unless --no-revert, and a message "unfence --marker"
tells the waiting promotion) and the exit code is 1.

Stopped server (a resumed run): nothing to do; the last checkpoint of its
control file (a fast shutdown's checkpoint is the last record it wrote) stands
in for the fenced LSN. Refused (exit 1) when it was not shut down cleanly (its
WAL may go past that checkpoint), and for a standby (exit 2).

Prints one JSON object (the role's pg_fence_outputs, plus "error" on failure
and "fence_timings", epoch seconds of each step). A lock file serialises two
fences of the same cluster (a run killed mid-fence and its resumed run).
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import re
import signal
import subprocess
import sys
import time
from typing import Any

try:  # community.postgresql needs one of them on the host already
    import psycopg as pg
except ImportError:  # pragma: no cover - hosts with psycopg2 only
    import psycopg2 as pg  # type: ignore[no-redef]


class FenceError(Exception):
    """The fence cannot go on; ``code`` is the exit code."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def connect(args: argparse.Namespace):
    conn = pg.connect(host=args.socket_dir, port=args.port, user=args.user, dbname="postgres",
                      connect_timeout=5, application_name="drkit-fence")
    conn.autocommit = True
    return conn


def one(conn, sql: str, params: tuple = ()) -> Any:
    cur = conn.cursor()
    cur.execute(sql, params)
    row = cur.fetchone() if cur.description else None
    return row[0] if row and len(row) == 1 else row


def marker(args: argparse.Namespace, what: str) -> str:
    """The payload of the fence's WAL messages: "fence" or "unfence", then --marker."""
    return f"{what} {args.marker}".strip()


def postmaster_pid(data_dir: str) -> int | None:
    """The running postmaster's pid, from postmaster.pid (None: not running)."""
    try:
        with open(os.path.join(data_dir, "postmaster.pid"), encoding="utf-8") as fh:
            pid = int(fh.readline().strip())
    except (OSError, ValueError):
        return None
    return pid if alive(pid) else None


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def controldata(args: argparse.Namespace) -> dict[str, str]:
    out = subprocess.run([os.path.join(args.bin_dir, "pg_controldata"), args.data_dir],
                         capture_output=True, text=True, env={**os.environ, "LC_ALL": "C"},
                         check=True).stdout
    state = re.search(r"Database cluster state:\s+(.*)", out)
    lsn = re.search(r"Latest checkpoint location:\s+(\S+)", out)
    return {"cluster_state": state.group(1).strip() if state else "",
            "fenced_lsn": lsn.group(1) if lsn else ""}


def shut_down(args: argparse.Namespace) -> bool:
    """The control file says the cluster is shut down (a torn read says nothing)."""
    try:
        return controldata(args)["cluster_state"] == "shut down"
    except subprocess.CalledProcessError:
        return False


def wait(what: str, timeout: float, poll: float, check) -> Any:
    """check() until it returns something truthy; FenceError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() >= deadline:
            raise FenceError(f"timed out after {timeout:g} s waiting {what}")
        time.sleep(poll)


def already_stopped(args: argparse.Namespace) -> dict[str, Any]:
    found = controldata(args)
    if found["cluster_state"] != "shut down":
        # Not a clean shutdown: WAL after its last checkpoint may hold writes.
        raise FenceError(f"{args.data_dir} is stopped but was not shut down cleanly (cluster "
                         f"state: {found['cluster_state'] or 'unknown'}): its WAL after the last "
                         f"checkpoint {found['fenced_lsn']} may hold writes no replica has. "
                         "Start it (it recovers) and re-run, or fail over with --mode unplanned")
    return {"fenced": False, "reason": "already stopped (no-op)", **found,
            "target": args.target, "target_replay_lsn": None, "rpo_bytes": None,
            "stopped": True}


def fence(args: argparse.Namespace, out: dict[str, Any]) -> dict[str, Any]:
    timings = out["fence_timings"]
    conn = connect(args)
    if one(conn, "SELECT pg_is_in_recovery()"):
        raise FenceError(f"{args.data_dir} is a standby (in recovery), not the primary to "
                         "fence; check the host limit of the fence", code=2)
    timings["fence_started_at"] = time.time()
    try:
        one(conn, "ALTER SYSTEM SET default_transaction_read_only = on")
        one(conn, "SELECT pg_reload_conf()")

        def read_only() -> bool:
            probe = connect(args)
            try:
                return one(probe, "SELECT current_setting('default_transaction_read_only')") == "on"
            finally:
                probe.close()
        wait("for new sessions to be read-only", args.read_only_timeout, args.poll, read_only)
        timings["read_only_at"] = time.time()
        terminated = one(conn, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                               "WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
                         if args.terminate else "SELECT 0")
        one(conn, "SELECT pg_switch_wal()::text")
        # A read-write transaction that writes only a WAL message (no table), committed
        # with remote_apply: its commit record is flushed (a transaction that wrote
        # no WAL commits asynchronously) and asks every standby to report its replay
        # position once it replays it, instead of within wal_receiver_status_interval.
        # statement_timeout bounds the wait of a synchronous standby that is gone.
        conn.autocommit = False
        cur = conn.cursor()
        cur.execute("SET TRANSACTION READ WRITE")
        cur.execute("SELECT set_config('statement_timeout', %s, true)",
                    (f"{int(args.replay_timeout * 1000)}",))
        cur.execute("SET LOCAL synchronous_commit = remote_apply")
        # The message is the fence's marker: the promotion waiting on the target
        # (pg_promote_after_fence.py) promotes once it replayed it and, after it,
        # this server's shutdown checkpoint.
        cur.execute("SELECT pg_logical_emit_message(true, 'drkit', %s)", (marker(args, "fence"),))
        conn.commit()
        conn.autocommit = True
        lsn = one(conn, "SELECT pg_current_wal_flush_lsn()::text")
        timings["fenced_at"] = time.time()
        names = ",".join(args.wait_for)
        rows: list[tuple] = []

        def caught_up() -> bool:
            nonlocal rows
            cur = conn.cursor()
            cur.execute(
                "SELECT application_name, replay_lsn::text, "
                "COALESCE(replay_lsn >= %s::pg_lsn, false), "
                "GREATEST(pg_wal_lsn_diff(%s::pg_lsn, replay_lsn), 0)::bigint "
                "FROM pg_stat_replication WHERE application_name = ANY(string_to_array(%s, ','))",
                (lsn, lsn, names))
            rows = cur.fetchall()
            return {r[0] for r in rows if r[2]} >= set(args.wait_for)
        try:
            wait(f"for {names} to replay the fenced LSN {lsn}", args.replay_timeout, args.poll,
                 caught_up)
        except FenceError as exc:
            seen = {r[0]: r[1] for r in rows}
            raise FenceError(f"the replicas {args.wait_for} did not replay the fenced LSN {lsn} "
                             f"within {args.replay_timeout:g} s (last seen: {seen}; a replica "
                             "missing there is not connected)") from exc
        timings["caught_up_at"] = time.time()
    except (FenceError, pg.Error) as exc:
        if args.revert:
            undo = connect(args)
            try:
                one(undo, "ALTER SYSTEM RESET default_transaction_read_only")
                one(undo, "SELECT pg_reload_conf()")
                # Tells the promotion waiting on the target to give up (a commit
                # that does not wait for a standby: the target may be the one gone).
                undo.autocommit = False
                cur = undo.cursor()
                cur.execute("SET TRANSACTION READ WRITE")
                cur.execute("SET LOCAL synchronous_commit = local")
                cur.execute("SELECT pg_logical_emit_message(true, 'drkit', %s)",
                            (marker(args, "unfence"),))
                undo.commit()
            finally:
                undo.close()
        note = "The primary is writable again." if args.revert else "The primary stays read-only."
        raise FenceError(f"{str(exc).rstrip('.')}. {note} Check replication, then re-run the "
                         "fence.") from exc
    finally:
        conn.close()

    # Fast shutdown: SIGINT to the postmaster, then wait until its control file
    # says "shut down". The checkpointer writes that at the end of the shutdown
    # checkpoint, after every backend has exited and before the postmaster lets the
    # archiver push what is left and the walsenders end: nothing can write or
    # connect any more, and waiting for the process to go (pg_ctl -w) also waited
    # for the archiver's last pgbackrest calls (~2.4 s inside the outage, measured).
    # planned_verify.yml checks later, outside the outage, that the server is gone.
    pid = postmaster_pid(args.data_dir)
    if pid is not None:
        os.kill(pid, signal.SIGINT)
        wait("for the server to shut down", args.stop_timeout, args.poll,
             lambda: not alive(pid) or shut_down(args))
    timings["stopped_at"] = time.time()
    replay = {r[0]: r[1] for r in rows}
    # The last record the server wrote: the promotion on the target waits for it.
    checkpoint = controldata(args)["fenced_lsn"]
    return {"fenced": True, "reason": "stopped after the replicas replayed the fenced LSN",
            "fenced_lsn": lsn, "shutdown_checkpoint_lsn": checkpoint, "target": args.target,
            "target_replay_lsn": replay.get(args.target) if args.target else None,
            "rpo_bytes": max((int(r[3]) for r in rows), default=0), "replicas": replay,
            "terminated": int(terminated or 0), "stopped": True}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bin-dir", default="/usr/lib/postgresql/15/bin")
    p.add_argument("--data-dir", required=True)
    p.add_argument("--socket-dir", required=True)
    p.add_argument("--port", type=int, default=5432)
    p.add_argument("--user", default="postgres")
    p.add_argument("--target", default="")
    p.add_argument("--wait-for", required=True, type=lambda s: [n for n in s.split(",") if n])
    p.add_argument("--replay-timeout", type=float, default=60.0)
    p.add_argument("--read-only-timeout", type=float, default=20.0)
    p.add_argument("--stop-timeout", type=float, default=120.0)
    p.add_argument("--poll", type=float, default=0.01)
    p.add_argument("--no-terminate", dest="terminate", action="store_false")
    p.add_argument("--no-revert", dest="revert", action="store_false")
    p.add_argument("--lock-file", default="")
    p.add_argument("--marker", default="")
    args = p.parse_args(argv)
    out: dict[str, Any] = {"fence_timings": {"script_started_at": time.time()}}
    code = 0
    lock_path = args.lock_file or os.path.join(os.path.dirname(args.data_dir.rstrip("/")),
                                               ".drkit-fence.lock")
    with open(lock_path, "a", encoding="utf-8") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if postmaster_pid(args.data_dir) is None:
                out.update(already_stopped(args))
            else:
                out.update(fence(args, out))
        except FenceError as exc:
            out.update(fenced=False, stopped=False, error=f"pg_fence: {exc}")
            code = exc.code
        except (pg.Error, OSError, subprocess.CalledProcessError) as exc:
            out.update(fenced=False, stopped=False, error=f"pg_fence: {type(exc).__name__}: {exc}")
            code = 1
    print(json.dumps(out))
    return code


if __name__ == "__main__":
    sys.exit(main())
