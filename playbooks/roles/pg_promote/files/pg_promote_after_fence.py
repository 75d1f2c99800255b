#!/usr/bin/env python3
"""pg_promote's switchover on the target's host: wait for the old primary's fence
in the WAL this standby replays, then run the promotion (pg_promote_after_fence.sql
through psql) at once, with no round trip to the controller between the two.

    pg_promote_after_fence.py --bin-dir B --data-dir D --socket-dir S --port P \
        --script pg_promote_after_fence.sql [--marker M] [--after-lsn L] \
        [--wait-timeout 240] [--replay-timeout 30] [--promote-timeout 60] [--poll 0.01]

Started together with the fence (one Ansible task on both hosts), it watches
what this standby replays (pg_waldump over the WAL replayed already, from a
segment before, then over the new WAL, every --scan-interval s until the marker,
then at every --poll s that brought new WAL) for:

- the fence's marker, a logical message "fence M" the fence script writes once
  the old primary is read-only and its client sessions are gone;
- after it, the old primary's shutdown checkpoint: the last record a clean
  shutdown writes; nothing can write there after it.

Once both are replayed it runs the promotion with the checkpoint's LSN as the LSN
the target must have replayed (the SQL checks it again). A marker "unfence M" (the
fence was undone: the target did not catch up in time) or no shutdown within
--wait-timeout refuses (psql's exit code 3 and an ERROR line, like the SQL's own
refusals). A standby out of recovery already goes straight to the SQL, which says
"already primary". With --after-lsn the wait is skipped (the controller read the
fence's result: a resumed run found the old primary stopped).

Prints the SQL's JSON, whose "waited" holds what was seen: the marker's and the
shutdown checkpoint's LSNs and the epoch seconds each was found.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from typing import Any

try:  # community.postgresql needs one of them on the host already
    import psycopg as pg
except ImportError:  # pragma: no cover - hosts with psycopg2 only
    import psycopg2 as pg  # type: ignore[no-redef]

RECORD = re.compile(r"lsn: (?P<lsn>[0-9A-F]+/[0-9A-F]+), prev [0-9A-F/]+, desc: (?P<desc>.*)$")
MESSAGE = re.compile(r'MESSAGE (?:non-)?transactional, prefix "drkit"; '
                     r"payload \(\d+ bytes\):(?P<hex>[0-9A-F ]*)")
WAL_FILE = re.compile(r"^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})$")
#: How many segments before the one replayed at the start are read for a marker
#: replayed already.
LOOK_BACK = 1


class Refused(Exception):
    """The target is not promoted."""


def lsn_int(text: str) -> int:
    high, low = text.split("/")
    return (int(high, 16) << 32) | int(low, 16)


def lsn_text(value: int) -> str:
    return f"{value >> 32:X}/{value & 0xFFFFFFFF:X}"


def records(dump: str) -> list[tuple[str, str]]:
    """(lsn, description) of each record in pg_waldump's output."""
    found = []
    for line in dump.splitlines():
        match = RECORD.search(line)
        if match:  # pg_waldump writes 0/0A000028 where the server says 0/A000028
            found.append((lsn_text(lsn_int(match["lsn"])), match["desc"]))
    return found


def message(desc: str) -> str | None:
    """The payload of a drkit logical message, None for any other record."""
    match = MESSAGE.match(desc)
    if not match:
        return None
    return bytes.fromhex(match["hex"].replace(" ", "")).decode("utf-8", "replace")


class Watch:
    """What the fence has done so far, as the replayed WAL tells it."""

    def __init__(self, marker: str) -> None:
        self.fence, self.undo = f"fence {marker}".strip(), f"unfence {marker}".strip()
        self.seen: dict[str, Any] = {"marker_lsn": None, "shutdown_checkpoint_lsn": None}
        self.undone: str | None = None

    def feed(self, found: list[tuple[str, str]]) -> bool:
        """Take in new records, in WAL order; True once the fence's shutdown
        checkpoint is among them. A fence undone and not fenced again refuses."""
        for lsn, desc in found:
            payload = message(desc)
            if payload == self.fence:
                self.seen.update(marker_lsn=lsn, marker_seen_at=time.time())
            elif payload == self.undo:
                self.seen["marker_lsn"], self.undone = None, lsn
            elif self.seen["marker_lsn"] and desc.startswith("CHECKPOINT_SHUTDOWN"):
                self.seen.update(shutdown_checkpoint_lsn=lsn, shutdown_seen_at=time.time())
                return True
        if self.undone and not self.seen["marker_lsn"]:
            raise Refused(f"the fence of the old primary was undone at {self.undone} (its "
                          "replicas did not catch up in time): the target stays a replica")
        return False


def segment_timelines(wal_dir: str, segment_size: int) -> dict[int, int]:
    """Each segment number pg_wal holds, with the newest timeline holding it."""
    per_id = 0x100000000 // segment_size
    newest: dict[int, int] = {}
    for m in map(WAL_FILE.match, os.listdir(wal_dir)):
        if m:
            segno = int(m[2], 16) * per_id + int(m[3], 16)
            newest[segno] = max(newest.get(segno, 0), int(m[1], 16))
    return newest


def wal_timeline(wal_dir: str, lsn: int, segment_size: int) -> int:
    """The newest timeline with a WAL file holding ``lsn``."""
    timeline = segment_timelines(wal_dir, segment_size).get(lsn // segment_size)
    if timeline is None:
        raise Refused(f"no WAL file in {wal_dir} holds {lsn_text(lsn)}")
    return timeline


def look_back(args: argparse.Namespace, replay: int, segment_size: int) -> list[tuple[str, str]]:
    """The records replayed already, from the start of the segment before the
    one replayed now (LOOK_BACK) up to ``replay``: a script that starts after the
    fence (a CI run saw it start once the old primary's shutdown was replayed)
    still sees its marker. The fence switches to a new segment before its marker and the
    shutdown (archiving on) switches again before its checkpoint, so the marker
    lies in the segment before at most. Each segment is read on the newest
    timeline pg_wal holds it on (a promotion in between changes the file's
    name), and what pg_waldump printed counts even when it stopped early (the
    start of a segment a standby never streamed): these records are history,
    read once; nothing after ``replay`` is taken from them."""
    wal_dir = os.path.join(args.data_dir, "pg_wal")
    newest = segment_timelines(wal_dir, segment_size)
    current = replay // segment_size
    found: list[tuple[str, str]] = []
    for segno in range(max(current - LOOK_BACK, 0), current + 1):
        start, end = segno * segment_size, min((segno + 1) * segment_size, replay)
        if segno not in newest or start >= end:
            continue
        proc = waldump(args, wal_dir, newest[segno], start, end)
        found += records(proc.stdout)
    return found


def waldump(args: argparse.Namespace, wal_dir: str, timeline: int, start: int,
            end: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [os.path.join(args.bin_dir, "pg_waldump"), f"--path={wal_dir}",
         f"--timeline={timeline}", f"--start={lsn_text(start)}", f"--end={lsn_text(end)}"],
        capture_output=True, text=True, env={**os.environ, "LC_ALL": "C"}, check=False)


def dump(args: argparse.Namespace, start: int, end: int,
         segment_size: int) -> tuple[list[tuple[str, str]] | None, str]:
    """The records from ``start`` to ``end``, and pg_waldump's complaint; None
    when pg_waldump did not read up to ``end`` (it exits 0 only then): the range
    is read again at the next poll, so no record is skipped."""
    wal_dir = os.path.join(args.data_dir, "pg_wal")
    proc = waldump(args, wal_dir, wal_timeline(wal_dir, max(end - 1, start), segment_size),
                   start, end)
    if proc.returncode != 0:
        return None, (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
    return records(proc.stdout), ""


def wait_for_fence(args: argparse.Namespace) -> dict[str, Any] | None:
    """The fence's marker and shutdown checkpoint, once replayed; None when the
    node is out of recovery already."""
    conn = pg.connect(host=args.socket_dir, port=args.port, user=args.user, dbname="postgres",
                      connect_timeout=5, application_name="drkit-promote-wait")
    conn.autocommit = True
    cur = conn.cursor()
    cur.execute("SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text, "
                "pg_size_bytes(current_setting('wal_segment_size'))")
    in_recovery, replay, segment_size = cur.fetchone()
    if not in_recovery:
        return None
    watch = Watch(args.marker)
    scanned = lsn_int(replay)
    if watch.feed(look_back(args, scanned, segment_size)):
        return {**watch.seen, "replay_lsn": replay, "found_in": "look-back"}
    deadline = time.monotonic() + args.wait_timeout
    next_scan, complaint = 0.0, ""
    while True:
        cur.execute("SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text")
        in_recovery, replay = cur.fetchone()
        if not in_recovery:
            return None
        end = lsn_int(replay)
        # Until the marker, writes still flow: a pg_waldump per new commit would
        # load the host for nothing. Once it is seen, every new record is looked at.
        if end > scanned and (watch.seen["marker_lsn"] or time.monotonic() >= next_scan):
            found, complaint = dump(args, scanned, end, segment_size)
            if found is not None:
                if watch.feed(found):
                    return {**watch.seen, "replay_lsn": replay}
                scanned, next_scan = end, time.monotonic() + args.scan_interval
        if time.monotonic() >= deadline:
            raise Refused(f"no clean shutdown of the old primary after its fence was replayed "
                          f"within {args.wait_timeout:g} s (seen: marker at "
                          f"{watch.seen['marker_lsn']}, replayed up to {replay}, read up to "
                          f"{lsn_text(scanned)}"
                          + (f", pg_waldump said: {complaint}" if complaint else "")
                          + "): the target stays a replica. Check the fence's result and "
                          "replication, then re-run")
        time.sleep(args.poll)


def psql(args: argparse.Namespace, after_lsn: str, waited: dict[str, Any]) -> list[str]:
    return [os.path.join(args.bin_dir, "psql"), "-X", "-q", "-At", "--set=ON_ERROR_STOP=1",
            f"--host={args.socket_dir}", f"--port={args.port}", f"--username={args.user}",
            "--dbname=postgres", f"--set=replay_timeout={args.replay_timeout}",
            f"--set=promote_timeout={args.promote_timeout}", f"--set=poll={args.poll}",
            f"--set=after_lsn={after_lsn}", f"--set=waited={json.dumps(waited)}",
            f"--file={args.script}"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bin-dir", default="/usr/lib/postgresql/15/bin")
    p.add_argument("--data-dir", required=True)
    p.add_argument("--socket-dir", required=True)
    p.add_argument("--port", type=int, default=5432)
    p.add_argument("--user", default="postgres")
    p.add_argument("--script", required=True)
    p.add_argument("--marker", default="")
    p.add_argument("--after-lsn", default="")
    p.add_argument("--wait-timeout", type=float, default=240.0)
    p.add_argument("--replay-timeout", type=float, default=30.0)
    p.add_argument("--promote-timeout", type=float, default=60.0)
    p.add_argument("--poll", type=float, default=0.01)
    p.add_argument("--scan-interval", type=float, default=0.1)
    args = p.parse_args(argv)
    started = time.time()
    after_lsn, waited = args.after_lsn, {"started_at": started}
    if not after_lsn:
        try:
            seen = wait_for_fence(args)
        except Refused as exc:
            print(f"ERROR:  pg_promote: refusing to promote: {exc}", file=sys.stderr)
            return 3
        except (pg.Error, OSError) as exc:
            print(f"ERROR:  pg_promote: {type(exc).__name__}: {str(exc).strip()}", file=sys.stderr)
            return 3
        if seen:
            waited.update(seen)
            after_lsn = seen["shutdown_checkpoint_lsn"]
    sys.stdout.flush()
    argv = psql(args, after_lsn, waited)
    os.execv(argv[0], argv)
    return 0  # pragma: no cover - execv does not return


if __name__ == "__main__":
    sys.exit(main())
