"""Measure RB-DR-004 (data corruption) on the lab with a database of at least 1 GB:
end-to-end RTO of `recover-corruption` with each strategy, and its parts.

    sudo python benchmarks/corruption.py [--size-gb 1.0] [--out .drkit/bench/corruption.json]

Needs a lab that is up (`drkit lab.up`). Grows the app database to --size-gb with
the padding table benchmarks/backup.py uses (kept for the next run), takes a full
backup (not timed: the incident starts after it), then twice:

    a table of 100 000 rows, a few seconds of writes, `lab.chaos corrupt --how update`
    (an UPDATE that overwrites a column in every row), then
    tables   recover-corruption --before-xid <that XID> --table <it>     (target <= 60 s)
    rewind   recover-corruption --before-xid <that XID> --strategy rewind (target <= 120 s)

Each run is split from its journal and ansible-runner's task events into:

    restore      pgBackRest restoring the backup (scratch host, or the primary's disk)
    WAL replay   the server started on the restored copy until it reached the point
                 and was promoted
    copy         the tables copied back in one transaction (tables only)
    verify       pg_amcheck, row counts and content hashes, the verify checks
    replicas     the replicas rebuilt from the recovered primary (rewind only)
    other        containment, finding the point, the approval, DNS, the smoke test,
                 the scratch host's launch and end, reports

RTO is the report's (from the incident start, the run's start here). Exit code 1
when a target is missed or a run failed, 2 when the lab is not up.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))
sys.path.insert(0, str(PROJECT_ROOT / "benchmarks"))

from backup import grow_database, psql, steps_of, write  # noqa: E402
from failover import run as drkit  # noqa: E402  (one drkit run: result event, wall time)

from drkit.drivers.ansible import job_events  # noqa: E402
from drkit.lab import database, netns, paths  # noqa: E402

TARGETS = {"tables_rto_s": 60.0, "rewind_rto_s": 120.0}
TABLE = "drkit_bench_orders"

# Which part of the recovery a playbook task belongs to, by its name.
TASK_PARTS = [
    ("restore", re.compile(r"^(pgbackrest : )?Restore( the backup|$)")),
    ("WAL replay", re.compile(r"Start the server|Wait until recovery reached")),
    ("verify", re.compile(r"pg_amcheck|Count and hash")),
]
STEP_PARTS = {"copyback": "copy", "verify": "verify", "verify-copy": "verify",
              "verify-tables": "verify", "verify-primary": "verify", "replicas": "replicas"}


def task_seconds(run_id: str, step: str) -> list[tuple[str, float]]:
    """Each finished task of ``step``'s playbook (every attempt) with its duration."""
    found = []
    for event in job_events(PROJECT_ROOT / ".drkit" / "runs" / run_id / "ansible" / step):
        data = event.get("event_data") or {}
        if event.get("event") in ("runner_on_ok", "runner_on_failed") and data.get("duration"):
            found.append((data.get("task", ""), float(data["duration"])))
    return found


def parts_of(run_id: str, wall: float) -> dict[str, float]:
    """The run's wall time split into restore, WAL replay, copy, verify, replicas, other."""
    steps = steps_of(run_id)
    parts = {"restore": 0.0, "WAL replay": 0.0, "copy": 0.0, "verify": 0.0, "replicas": 0.0}
    for step in ("restore", "primary"):  # tables: a scratch copy; rewind: in place
        for task, seconds in task_seconds(run_id, step):
            part = next((p for p, name in TASK_PARTS if name.search(task)), None)
            if part:
                parts[part] += seconds
    for step, part in STEP_PARTS.items():
        parts[part] += steps.get(step, 0.0)
    parts["other"] = wall - sum(parts.values())
    return {k: round(v, 1) for k, v in parts.items()}


def damage(lab: paths.LabPaths, primary: str, db: str, user: str) -> int:
    """A fresh table of 100 000 rows, then an UPDATE over every row; its XID."""
    psql(lab, primary, f'SET ROLE "{user}"; DROP TABLE IF EXISTS {TABLE}; '
                       f"CREATE TABLE {TABLE} (id serial PRIMARY KEY, amount int NOT NULL); "
                       f"INSERT INTO {TABLE} (amount) SELECT g FROM generate_series(1, 100000) g",
         db)
    proc = subprocess.run([sys.executable, "-m", "drkit", "lab.chaos", "corrupt", "--table",
                           TABLE, "--how", "update"], cwd=PROJECT_ROOT, capture_output=True,
                          text=True)
    found = re.search(r"damaging XID (\d+)", proc.stdout)
    if proc.returncode != 0 or not found:
        raise RuntimeError(f"lab.chaos corrupt failed: {proc.stdout[-1000:]}{proc.stderr[-1000:]}")
    return int(found.group(1))


def measure(lab: paths.LabPaths, strategy: str, db: str, user: str) -> dict[str, Any]:
    primary = database.topology()["primary_host"]
    xid = damage(lab, primary, db, user)
    args = ["recover-corruption", "--before-xid", str(xid), "--table", TABLE]
    if strategy == "rewind":
        args += ["--strategy", "rewind"]
    result, wall = drkit(args)
    restored = psql(lab, database.topology()["primary_host"],
                    f"SELECT count(*) FILTER (WHERE amount = 0) FROM {TABLE}", db)
    if restored != "0":
        raise RuntimeError(f"{strategy}: {restored} rows of {TABLE} still damaged")
    row = {"run_id": result["run_id"], "wall_s": round(wall, 1), "rto_s": result["rto_s"],
           "parts_s": parts_of(result["run_id"], wall), "steps_s": steps_of(result["run_id"])}
    print(f"{strategy:7s} RTO {row['rto_s']} s (target <= {TARGETS[strategy + '_rto_s']:.0f} s), "
          f"wall {row['wall_s']} s: "
          + ", ".join(f"{k} {v}" for k, v in row["parts_s"].items()), flush=True)
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-gb", type=float, default=1.0,
                        help="grow the database to at least this size (default 1)")
    parser.add_argument("--strategy", choices=["tables", "rewind", "both"], default="both")
    parser.add_argument("--out", type=Path,
                        default=PROJECT_ROOT / ".drkit" / "bench" / "corruption.json")
    args = parser.parse_args()
    if args.size_gb <= 0:
        parser.error("--size-gb must be more than 0")
    if not netns.gateway_exists():
        print("corruption.py: the lab is not up; run `drkit lab.up` first", file=sys.stderr)
        return 2
    lab = paths.LabPaths.for_project(PROJECT_ROOT)
    creds = database.credentials()
    db, user = creds["dbname"], creds["username"]
    size = grow_database(lab, database.topology()["primary_host"], db, args.size_gb)
    print(f"database {db}: {size / 2**20:.0f} MiB; taking a full backup (not timed)", flush=True)
    drkit(["backup", "--type", "full"])

    rows: dict[str, Any] = {"db_bytes": size}
    for strategy in (["tables", "rewind"] if args.strategy == "both" else [args.strategy]):
        rows[strategy] = measure(lab, strategy, db, user)
    missed = [f"{s} RTO {rows[s]['rto_s']} s > {TARGETS[s + '_rto_s']:.0f} s"
              for s in ("tables", "rewind") if s in rows
              and rows[s]["rto_s"] > TARGETS[s + "_rto_s"]]
    print("PASS" if not missed else "MISS: " + "; ".join(missed))
    write(args.out, rows, TARGETS)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
