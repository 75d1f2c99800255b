"""Measure backups and restores on the lab with a database of at least 1 GB:
drkit's runs side by side with the same pgBackRest commands typed by hand.

    sudo python benchmarks/backup.py [--size-gb 1.0] [--out .drkit/bench/backup.json]

Needs a lab that is up (`drkit lab.up`). Grows the app database to --size-gb
with a padding table (kept for the next run), then, in one run:

    backup by hand    pgbackrest backup --type=full, repo1 then repo2, on the primary (ssh)
    backup (drkit)    invoke backup --type full                     (overhead target: <= 10 %)
    restore by hand   pgbackrest restore of the newest backup into a directory on the
                      primary's disk (no server start): restore throughput in MB/s
    restore (drkit)   invoke restore: scratch host, restore, replay, pg_amcheck, table
                      digests, host destroyed                       (target: <= 90 s end to end)

drkit's overhead is its wall time over the hand-typed commands' for the same
backups. The restore is also split into its steps from the run's journal.
Exit code 1 when a target is missed or a run failed, 2 when the lab is not up.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

from drkit.journal import read_events  # noqa: E402
from drkit.lab import database, netns, paths  # noqa: E402
from drkit.lab.hosts import ssh_argv  # noqa: E402

sys.path.insert(0, str(PROJECT_ROOT / "benchmarks"))
from failover import run as drkit  # noqa: E402  (one drkit run: result event, wall time)

TARGETS = {"backup_overhead_pct": 10.0, "restore_e2e_s": 90.0}
PGBACKREST = "runuser -u postgres -- pgbackrest --config-path=/var/lib/postgresql/pgbackrest"
PAD_TABLE = "drkit_bench_pad"


def ssh(lab: paths.LabPaths, address: str, command: str, timeout: float = 1800) -> str:
    proc = subprocess.run(ssh_argv(lab, address, command), capture_output=True, text=True,
                          timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{command!r} on {address} failed: {proc.stderr[-1500:]}")
    return proc.stdout.strip()


def psql(lab: paths.LabPaths, address: str, sql: str, db: str) -> str:
    return ssh(lab, address, f"cd /tmp && runuser -u postgres -- psql -h /run/postgresql -XAtq "
                             f"-v ON_ERROR_STOP=1 -d {db} -c {shlex.quote(sql)}")


def grow_database(lab: paths.LabPaths, primary: str, db: str, size_gb: float) -> int:
    """Pad the app's database to at least ``size_gb``; its size in bytes."""
    size = int(psql(lab, primary, f"SELECT pg_database_size('{db}')", db))
    want = int(size_gb * 2**30)
    psql(lab, primary, f"CREATE TABLE IF NOT EXISTS {PAD_TABLE} (id bigint, pad text)", db)
    while size < want:
        rows = int((want - size) / 350) + 1000  # ~360 bytes on disk per padding row
        print(f"growing database {db} from {size / 2**20:.0f} MiB by {rows} rows ...",
              flush=True)
        psql(lab, primary, f"INSERT INTO {PAD_TABLE} SELECT g, repeat(md5(g::text), 10) "
                           f"FROM generate_series(1, {rows}) g", db)
        size = int(psql(lab, primary, f"SELECT pg_database_size('{db}')", db))
    return size


def steps_of(run_id: str) -> dict[str, float]:
    events = read_events(PROJECT_ROOT / ".drkit" / "runs" / run_id / "journal.jsonl")
    return {e["step"]: e["duration_s"] for e in events
            if e["event"] == "step_finished" and e["status"] == "ok"}


def timed(fn, *args) -> float:
    start = time.monotonic()
    fn(*args)
    return time.monotonic() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-gb", type=float, default=1.0,
                        help="grow the database to at least this size (default 1)")
    parser.add_argument("--out", type=Path,
                        default=PROJECT_ROOT / ".drkit" / "bench" / "backup.json")
    args = parser.parse_args()
    if args.size_gb <= 0:
        parser.error("--size-gb must be more than 0")
    if not netns.gateway_exists():
        print("backup.py: the lab is not up; run `drkit lab.up` first", file=sys.stderr)
        return 2
    lab = paths.LabPaths.for_project(PROJECT_ROOT)
    primary = database.topology()["primary_host"]
    stanza = "lab"
    db = database.credentials()["dbname"]
    size = grow_database(lab, primary, db, args.size_gb)
    mib = size / 2**20
    print(f"database {db}: {mib:.0f} MiB on {primary}", flush=True)

    rows: dict[str, Any] = {"db_bytes": size}
    hand = 0.0
    for repo in (1, 2):
        hand += timed(ssh, lab, primary, f"cd /tmp && {PGBACKREST} --stanza={stanza} "
                                         f"--repo={repo} --type=full backup")
    rows["backup_by_hand_s"] = round(hand, 1)
    result, wall = drkit("backup", "--type", "full")
    rows["backup_drkit_s"] = round(wall, 1)
    rows["backup_steps"] = steps_of(result["run_id"])
    rows["backup_overhead_pct"] = round(100 * (wall - hand) / hand, 1)

    scratch = "/var/lib/postgresql/bench-restore"
    ssh(lab, primary, f"rm -rf {scratch}")
    restore_hand = timed(ssh, lab, primary, f"cd /tmp && {PGBACKREST} --stanza={stanza} "
                                            f"--repo=1 --pg1-path={scratch} --archive-mode=off "
                                            f"--type=immediate restore")
    ssh(lab, primary, f"rm -rf {scratch}")
    rows["restore_by_hand_s"] = round(restore_hand, 1)
    rows["restore_mb_s"] = round(mib / restore_hand, 1)
    result, wall = drkit("restore")
    rows["restore_e2e_s"] = round(wall, 1)
    rows["restore_rto_s"] = result["rto_s"]
    rows["restore_steps"] = steps_of(result["run_id"])

    missed = []
    if rows["backup_overhead_pct"] > TARGETS["backup_overhead_pct"]:
        missed.append(f"backup overhead {rows['backup_overhead_pct']} % > "
                      f"{TARGETS['backup_overhead_pct']} %")
    if rows["restore_e2e_s"] > TARGETS["restore_e2e_s"]:
        missed.append(f"restore {rows['restore_e2e_s']} s > {TARGETS['restore_e2e_s']} s")
    print(f"backup   by hand {rows['backup_by_hand_s']} s, drkit {rows['backup_drkit_s']} s: "
          f"overhead {rows['backup_overhead_pct']} % (target <= 10 %)")
    print("    " + ", ".join(f"{k} {v:.1f}" for k, v in rows["backup_steps"].items()))
    print(f"restore  by hand {rows['restore_by_hand_s']} s ({rows['restore_mb_s']} MiB/s), "
          f"drkit end to end {rows['restore_e2e_s']} s (target <= 90 s), "
          f"RTO {rows['restore_rto_s']} s")
    print("    " + ", ".join(f"{k} {v:.1f}" for k, v in rows["restore_steps"].items()))
    print("PASS" if not missed else "MISS: " + "; ".join(missed))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"machine": {"cpus": os.cpu_count(),
                                                "python": platform.python_version(),
                                                "kernel": platform.release()},
                                    "targets": TARGETS, "rows": rows}, indent=2))
    print(f"written: {args.out}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
