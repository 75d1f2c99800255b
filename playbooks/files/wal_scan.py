#!/usr/bin/env python3
"""Find a recovery point in a cluster's WAL and what committed after it, as JSON.

Run on the primary's host (RB-DR-004's "wal" step). It reads the current
timeline's WAL newest segment first with pg_waldump (Heap, Heap2 and
Transaction records only): the segments still in pg_wal, and older ones fetched
from the archive with ``--archive-get`` (pgBackRest's archive-get) into a
temporary directory, never further back than ``--stop-lsn`` (the oldest
backup's start) or the timeline's start. It stops once the recovery point is
behind it, plus ``--context`` segments for the "what touched this table"
help. Nothing is written to the cluster.

The point is where recovery with ``recovery_target_inclusive = off`` stops:
before the commit record of ``--xid``, before the first record at or after
``--lsn``, before the first commit at or after ``--time``. Every commit from
there on is lost by a restore to the point; the report counts them, gives their
time span and, per relation file node, how many touched it.

    wal_scan.py --pgdata /var/lib/postgresql/15/main --bin-dir /usr/lib/postgresql/15/bin \
        --socket /run/postgresql --xid 1234 --relfilenodes 16390,16401 \
        --archive-get '["runuser","-u","postgres","--","pgbackrest","--stanza=main"]'
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

SEGMENT = 16 * 1024 * 1024
RECORD = re.compile(
    r"^rmgr: (\w+)\s+len \(rec/tot\):\s*\d+/\s*\d+, tx:\s*(\d+), lsn: ([0-9A-F]+/[0-9A-F]+),"
    r" prev [0-9A-F]+/[0-9A-F]+, desc: (.*)$"
)
COMMIT = re.compile(r"^(COMMIT|ABORT) (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?) UTC(.*)$")
REL = re.compile(r"rel \d+/\d+/(\d+)")
DROPPED = re.compile(r"rels: ([^;]+)")
SUBXACTS = re.compile(r"subxacts: ([\d ]+)")
HEAP_RMGRS = ("Heap", "Heap2")


def lsn_int(text: str) -> int:
    hi, lo = text.split("/")
    return (int(hi, 16) << 32) | int(lo, 16)


def lsn_text(value: int) -> str:
    return f"{value >> 32:X}/{value & 0xFFFFFFFF:X}"


def segment_name(tli: int, lsn: int) -> str:
    seg = lsn // SEGMENT
    return f"{tli:08X}{seg // 0x100:08X}{seg % 0x100:08X}"


def psql(args: argparse.Namespace, query: str) -> str:
    out = subprocess.run(
        [
            "runuser",
            "-u",
            args.user,
            "--",
            f"{args.bin_dir}/psql",
            "-h",
            args.socket,
            "-p",
            str(args.port),
            "-d",
            "postgres",
            "-XAtc",
            query,
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd="/",
    )
    return out.stdout.strip()


def timeline_start(pgdata: Path, tli: int) -> int:
    """The LSN where timeline ``tli`` began (its history file's last switch point)."""
    if tli == 1:
        return 0
    history = pgdata / "pg_wal" / f"{tli:08X}.history"
    lines = [
        ln.split()
        for ln in history.read_text().splitlines()
        if ln.strip() and not ln.startswith("#")
    ]
    return lsn_int(lines[-1][1]) if lines else 0


class Scan:
    """Records per transaction, commits in WAL order, from segments newest first."""

    def __init__(self) -> None:
        self.commits: dict[int, dict] = {}  # lsn -> commit record
        self.rels: dict[int, set[int]] = {}  # xid -> relfilenodes its heap records touched

    def add(self, dump: str) -> None:
        for line in dump.splitlines():
            m = RECORD.match(line)
            if not m:
                continue
            rmgr, xid, lsn, desc = m.group(1), int(m.group(2)), lsn_int(m.group(3)), m.group(4)
            if rmgr in HEAP_RMGRS and xid:
                self.rels.setdefault(xid, set()).update(int(r) for r in REL.findall(desc))
            elif rmgr == "Transaction":
                c = COMMIT.match(desc)
                if not c:
                    continue
                rest = c.group(3)
                dropped = DROPPED.search(rest)
                subs = SUBXACTS.search(rest)
                self.commits[lsn] = {
                    "xid": xid,
                    "lsn": lsn,
                    "kind": c.group(1).lower(),
                    "time": datetime.strptime(
                        c.group(2),
                        "%Y-%m-%d %H:%M:%S.%f" if "." in c.group(2) else "%Y-%m-%d %H:%M:%S",
                    ).replace(tzinfo=UTC),
                    "dropped": [int(p.rsplit("/", 1)[1]) for p in dropped.group(1).split()]
                    if dropped
                    else [],
                    "subxacts": [int(s) for s in subs.group(1).split()] if subs else [],
                }

    def touched(self, commit: dict) -> set[int]:
        out = set(self.rels.get(commit["xid"], set()))
        for sub in commit["subxacts"]:
            out |= self.rels.get(sub, set())
        return out


def point_of(commits: list[dict], args: argparse.Namespace) -> dict | None:
    """The first lost commit (recovery stops just before it), or None when not seen."""
    for c in commits:
        if args.xid is not None and c["xid"] == args.xid:
            return c
        if args.lsn and c["lsn"] >= lsn_int(args.lsn):
            return c
        if args.time and c["kind"] == "commit" and c["time"] >= args.time:
            return c
    return None


def target_behind(scan: Scan, args: argparse.Namespace, oldest_read: int) -> bool:
    """Whether the recovery point lies at or after ``oldest_read`` (all of it scanned)."""
    if args.xid is not None:
        return any(c["xid"] == args.xid for c in scan.commits.values())
    if args.lsn:
        return lsn_int(args.lsn) >= oldest_read
    return any(c["time"] < args.time for c in scan.commits.values() if c["kind"] == "commit")


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def report(scan: Scan, args: argparse.Namespace, found: bool, scanned: dict) -> dict:
    commits = [scan.commits[k] for k in sorted(scan.commits)]
    point = point_of(commits, args) if found else None
    wanted = {int(r) for r in args.relfilenodes.split(",") if r}
    out: dict = {
        "scanned": scanned,
        "found": point is not None,
        "point": None,
        "target": None,
        "last_kept": None,
        "lost": None,
        "touched_before": {},
    }
    if args.xid is not None:
        own = next((c for c in commits if c["xid"] == args.xid), None)
        if own:
            out["target"] = {
                "xid": own["xid"],
                "kind": own["kind"],
                "lsn": lsn_text(own["lsn"]),
                "time": iso(own["time"]),
                "dropped_relfilenodes": own["dropped"],
                "relfilenodes": sorted(scan.touched(own)),
            }
    if point is None:
        return out
    kept = [c for c in commits if c["lsn"] < point["lsn"] and c["kind"] == "commit"]
    lost = [c for c in commits if c["lsn"] >= point["lsn"] and c["kind"] == "commit"]
    out["point"] = {"lsn": lsn_text(point["lsn"]), "time": iso(point["time"]), "xid": point["xid"]}
    if kept:
        last = kept[-1]
        out["last_kept"] = {
            "xid": last["xid"],
            "lsn": lsn_text(last["lsn"]),
            "time": iso(last["time"]),
        }
    by_rel: dict[int, int] = {}
    for c in lost:
        for rel in scan.touched(c):
            by_rel[rel] = by_rel.get(rel, 0) + 1
    out["lost"] = {
        "transactions": len(lost),
        "first": iso(lost[0]["time"]) if lost else None,
        "last": iso(lost[-1]["time"]) if lost else None,
        "span_s": round((lost[-1]["time"] - lost[0]["time"]).total_seconds(), 3) if lost else 0.0,
        "by_relfilenode": {str(k): v for k, v in sorted(by_rel.items())},
        "damaging": {
            "xid": point["xid"],
            "lsn": lsn_text(point["lsn"]),
            "relfilenodes": sorted(scan.touched(point)),
            "dropped_relfilenodes": point["dropped"],
        },
    }
    for rel in sorted(wanted):
        last5 = [c for c in kept if rel in scan.touched(c)][-5:]
        out["touched_before"][str(rel)] = [
            {"xid": c["xid"], "lsn": lsn_text(c["lsn"]), "time": iso(c["time"])}
            for c in reversed(last5)
        ]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pgdata", required=True)
    parser.add_argument("--bin-dir", required=True)
    parser.add_argument("--socket", default="/run/postgresql")
    parser.add_argument("--port", type=int, default=5432)
    parser.add_argument("--user", default="postgres")
    parser.add_argument("--xid", type=int)
    parser.add_argument("--lsn", default="")
    parser.add_argument("--time", default="")
    parser.add_argument(
        "--stop-lsn", default="0/0", help="never read WAL before this (the oldest backup's start)"
    )
    parser.add_argument(
        "--relfilenodes", default="", help="comma-separated: list what touched these"
    )
    parser.add_argument(
        "--context", type=int, default=2, help="segments read past the point for the help list"
    )
    parser.add_argument(
        "--archive-get", default="[]", help="JSON argv prefix of pgBackRest (archive-get SEG DEST)"
    )
    args = parser.parse_args()
    if sum(x not in (None, "") for x in (args.xid, args.lsn, args.time)) != 1:
        sys.exit("wal_scan: give exactly one of --xid, --lsn, --time")
    if args.time:
        args.time = datetime.fromisoformat(args.time.replace("Z", "+00:00")).astimezone(UTC)
    pgdata = Path(args.pgdata)
    tli, end = psql(
        args,
        # The timeline of the WAL being written (pg_control's lags a promotion).
        "SELECT ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int,"
        " pg_current_wal_lsn()",
    ).split("|")
    tli_i, end_i = int(tli), lsn_int(end)
    floor = max(lsn_int(args.stop_lsn), timeline_start(pgdata, tli_i))
    archive_get = json.loads(args.archive_get)
    scan = Scan()
    fetched, segments = 0, 0
    found_at = None
    oldest = end_i
    env = {**os.environ, "TZ": "UTC"}
    with tempfile.TemporaryDirectory(prefix="wal_scan.") as tmp:
        os.chmod(tmp, 0o777)  # archive-get runs as the postgres user
        seg_start = (end_i // SEGMENT) * SEGMENT
        while seg_start + SEGMENT > floor:
            for lsn in (seg_start, seg_start + SEGMENT):  # this segment and the one it runs into
                name = segment_name(tli_i, lsn)
                local, dest = pgdata / "pg_wal" / name, Path(tmp) / name
                if dest.exists() or lsn > end_i:
                    continue
                if local.exists():
                    dest.symlink_to(local)
                elif archive_get:
                    got = subprocess.run(
                        [*archive_get, "archive-get", name, str(dest)],
                        capture_output=True,
                        text=True,
                        cwd="/",
                    )
                    fetched += got.returncode == 0
            if not (Path(tmp) / segment_name(tli_i, seg_start)).exists():
                if segments == 0:  # the segment being written, not archived yet: go on back
                    seg_start -= SEGMENT
                    continue
                break  # neither in pg_wal nor in the archive: as far back as WAL goes
            start = max(seg_start, floor)
            stop = min(seg_start + SEGMENT, end_i)
            dump = subprocess.run(
                [
                    f"{args.bin_dir}/pg_waldump",
                    "-p",
                    tmp,
                    "-t",
                    str(tli_i),
                    "-s",
                    lsn_text(start),
                    "-e",
                    lsn_text(stop),
                    "-r",
                    "Heap",
                    "-r",
                    "Heap2",
                    "-r",
                    "Transaction",
                ],
                capture_output=True,
                text=True,
                env=env,
                cwd="/",
            )
            scan.add(dump.stdout)
            segments += 1
            oldest = start
            if found_at is None and target_behind(scan, args, start):
                found_at = segments
            if found_at is not None and segments - found_at >= args.context:
                break
            seg_start -= SEGMENT
    scanned = {
        "timeline": tli_i,
        "from_lsn": lsn_text(oldest),
        "to_lsn": end,
        "segments": segments,
        "fetched_from_archive": fetched,
        "floor_lsn": lsn_text(floor),
    }
    print(json.dumps(report(scan, args, found_at is not None, scanned)))


if __name__ == "__main__":
    main()
