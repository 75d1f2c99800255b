"""Measure a region's database restored from the backups on the lab, with a
database of at least 1 GB: RB-DR-003 --source backup as `db-recovery --scenario
region-failure` decides it when the target region has no replica to promote.

    sudo python benchmarks/region_restore.py [--size-gb 1.0]
        [--out .drkit/bench/region_restore.json]

Needs a lab that is up and at its baseline (`drkit lab.up`). Grows the app
database to --size-gb with backup.py's padding table (kept for the next run),
takes a full backup, then under canary load:

    region-failure  the current WAL segment switched and archived; lab.chaos
                    region-outage us-east; ap-south's server stopped and its data
                    directory removed (a lost disk); then
                    invoke db-recovery --scenario region-failure --target-region
                    ap-south --allow-data-loss          (target: <= 300 s end to end)
    failback        chaos restored; invoke failback --region us-east

The target is the complete rebuild's (issue 16: <= 5 minutes for a 1 GB database
on this machine). This run is the rebuild's database, application and DNS part:
the hosts exist already, Terraform only scales the app up. Rows: wall time, RTO,
RPO (run start minus the last commit the restore replayed), the canary's lost
writes, each step, and the slowest Ansible tasks of the restore and reopen steps
(pgBackRest's restore, the replay, pg_amcheck, the table digests, the rewind of
eu-west) from ansible-runner's events. The lab ends at its baseline; the data
directory the restore kept on ap-south is removed.

Exit code 1 when a target is missed or a run failed, 2 when the lab is not up.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

from drkit.drivers.ansible import job_events  # noqa: E402
from drkit.journal import read_events  # noqa: E402
from drkit.lab import chaos, database, netns, paths  # noqa: E402

sys.path.insert(0, str(PROJECT_ROOT / "benchmarks"))
from backup import _db_hosts, grow_database, psql, ssh  # noqa: E402
from failover import measured, run  # noqa: E402

TARGETS = {"region-failure": {"wall_s": 300.0}}
PG_CTL = "runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl"
DATA_DIR = "/var/lib/postgresql/15/main"


def db_host(lab: paths.LabPaths, region: str) -> str:
    """The address of a region's running db host."""
    return next(h["ip"] for h in _db_hosts(lab) if h["dr_region"] == region)


def archive_now(lab: paths.LabPaths, primary: str, db: str) -> None:
    """Switch the primary's WAL segment and wait until it is archived."""
    segment = psql(lab, primary, "SELECT pg_walfile_name(pg_switch_wal())", db)
    deadline = time.monotonic() + 120
    while psql(lab, primary, "SELECT last_archived_wal FROM pg_stat_archiver", db) < segment:
        if time.monotonic() > deadline:
            raise RuntimeError(f"WAL segment {segment} was not archived within 120 s")
        time.sleep(0.5)


def slowest_tasks(run_id: str, step: str, n: int = 6) -> dict[str, float]:
    """The ``n`` longest Ansible tasks of one step's last attempt (ansible-runner's
    events), in seconds."""
    tasks: dict[str, float] = {}
    for event in job_events(PROJECT_ROOT / ".drkit" / "runs" / run_id / "ansible" / step):
        data = event.get("event_data") or {}
        if event.get("event") in ("runner_on_ok", "runner_on_failed") and data.get("task"):
            name = f"{data['task']} ({data.get('host', '')})"
            tasks[name] = tasks.get(name, 0.0) + float(data.get("duration") or 0)
    return dict(sorted(((k, round(v, 2)) for k, v in tasks.items()),
                       key=lambda kv: -kv[1])[:n])


def restored(run_id: str) -> dict[str, Any]:
    events = read_events(PROJECT_ROOT / ".drkit" / "runs" / run_id / "journal.jsonl")
    return [f for e in events if e["event"] == "step_output" and e["step"] == "restore"
            for f in e["outputs"]["facts"].values() if "restored" in f][-1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-gb", type=float, default=1.0)
    parser.add_argument("--out", type=Path,
                        default=PROJECT_ROOT / ".drkit" / "bench" / "region_restore.json")
    args = parser.parse_args()
    if not netns.gateway_exists():
        print("region_restore.py: the lab is not up; run `drkit lab.up` first", file=sys.stderr)
        return 2
    lab = paths.LabPaths.for_project(PROJECT_ROOT)
    work = args.out.parent / "region-restore-canary"
    work.mkdir(parents=True, exist_ok=True)
    db = database.credentials()["dbname"]
    primary, target = db_host(lab, "us-east"), db_host(lab, "ap-south")
    size = grow_database(lab, primary, db, args.size_gb)
    backup, backup_wall = run(["backup", "--type", "full"])
    print(f"database {size / 2**20:.0f} MiB; full backup {backup_wall:.1f} s", flush=True)

    def lose_the_region() -> None:
        archive_now(lab, primary, db)
        chaos.region_outage(lab, "us-east")
        ssh(lab, target, f"{PG_CTL} stop -D {DATA_DIR} -m immediate && rm -rf {DATA_DIR}")

    rows = [measured("region-failure", ["db-recovery", "--scenario", "region-failure",
                                        "--target-region", "ap-south", "--allow-data-loss"],
                     work, before=lose_the_region,
                     after=lambda: chaos.restore(lab, region="us-east", wait_s=30), ok=(0, 6))]
    run_id = rows[0]["run_id"]
    facts = restored(run_id)
    rows[0]["restore_tasks"] = slowest_tasks(run_id, "restore")
    rows[0]["reopen_tasks"] = slowest_tasks(run_id, "reopen")
    rows[0]["restored"] = {k: facts.get(k) for k in ("last_commit", "timeline", "lsn")}
    rows.append(measured("failback", ["failback", "--region", "us-east"], work))
    ssh(lab, target, f"rm -rf -- {shlex.quote(facts['kept_data_dir'])}")

    missed = []
    print(f"{'run':<16} {'wall s':>7} {'RTO s':>7} {'RPO s':>7} {'lost':>5} {'load':>5}  verdict")
    for row in rows:
        found = [f"{k} {'PASS' if row[k] <= v else 'MISS'} (<= {v:g})"
                 for k, v in TARGETS.get(row["name"], {}).items()]
        missed += [v for v in found if "MISS" in v]
        rpo = f"{row['rpo_s']:.1f}" if row["rpo_s"] is not None else "-"
        print(f"{row['name']:<16} {row['wall_s']:>7} {row['rto_s']:>7} {rpo:>7} "
              f"{row['lost']:>5} {row['load_1m']:>5.1f}  {'; '.join(found)}")
        print("    " + ", ".join(f"{k} {v:.1f}" for k, v in row["steps"].items()))
        for key in ("restore_tasks", "reopen_tasks"):
            for task, seconds in row.get(key, {}).items():
                print(f"    {key.split('_')[0]:<8} {seconds:7.2f} s  {task}")
    args.out.write_text(json.dumps({"machine": {"cpus": os.cpu_count(),
                                                "python": platform.python_version(),
                                                "kernel": platform.release()},
                                    "targets": TARGETS, "db_bytes": size,
                                    "backup_wall_s": round(backup_wall, 1),
                                    "backup_run_id": backup["run_id"], "rows": rows},
                                   indent=2))
    print(f"written: {args.out}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
