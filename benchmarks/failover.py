"""Measure RB-DR-003 on the lab: planned and unplanned failovers, end to end, per
step, and as a client sees them (the canary's write downtime and lost writes).

    sudo python benchmarks/failover.py --out .drkit/bench/failover.json [--rounds 3]

Needs a lab that is up and at its baseline (`drkit lab.up`); each failover is
followed by a failback, so the lab ends where it started. Rows:

    planned     invoke failover --region eu-west                  (target: <= 45 s end to end,
                                                                   <= 10 s client write downtime)
    failback    invoke failback --region us-east
    unplanned   lab.chaos region-outage us-east, then
                invoke failover --region eu-west --mode unplanned (target: <= 60 s end to end)
    failback    restore, then invoke failback --region us-east

With --rounds N the four runs repeat N times and a summary gives, per target,
the median, the worst and in how many rounds it was met: on 2 cores one run's
wall time varies by several seconds with what else holds the CPU.

Exit code 1 when a target is missed (in any round) or a run failed, 2 when the
lab is not up.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

from drkit.journal import read_events  # noqa: E402
from drkit.lab import chaos, database, netns, paths  # noqa: E402
from drkit.lab.canary import Canary  # noqa: E402

TARGETS = {"planned": {"wall_s": 45.0, "write_downtime_s": 10.0},
           "unplanned": {"wall_s": 60.0}}
RATE = 60.0


def run(args: list[str]) -> tuple[dict[str, Any], float]:
    """One drkit run (JSON events); its result event and wall time."""
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "drkit", *args, "--yes", "--json"],
                          cwd=PROJECT_ROOT, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL)
    wall = time.monotonic() - start
    result = next((json.loads(line) for line in reversed(proc.stdout.splitlines())
                   if '"event": "result"' in line), None)
    if proc.returncode != 0 or result is None:
        raise RuntimeError(f"drkit {' '.join(args)} exited {proc.returncode}: "
                           f"{proc.stderr[-2000:]}")
    return result, wall


def steps_of(run_id: str) -> dict[str, float]:
    events = read_events(PROJECT_ROOT / ".drkit" / "runs" / run_id / "journal.jsonl")
    return {e["step"]: e["duration_s"] for e in events
            if e["event"] == "step_finished" and e["status"] == "ok"}


def measured(name: str, args: list[str], out: Path, before=None, after=None) -> dict:
    """A run under canary load: wall time, steps, RTO/RPO, client write downtime."""
    acks: list[dict] = []
    canary = Canary(database.canary_config(out / name, rate=RATE, duration_s=None),
                    on_event=lambda kind, rec: acks.append(rec) if kind == "ack" else None)
    writer = threading.Thread(target=canary.run, daemon=True)
    writer.start()
    while len(acks) < RATE:
        time.sleep(0.1)
    try:
        if before:
            before()
        result, wall = run(args)
        seen = len(acks)
        while len(acks) < seen + RATE:  # the service takes writes again
            time.sleep(0.1)
    finally:
        if after:
            after()
        canary.stop()
        writer.join(timeout=60)
    report = database.canary_report(out / name)
    return {"name": name, "args": args, "wall_s": round(wall, 1), "rto_s": result["rto_s"],
            "rpo_s": result["rpo_s"], "run_id": result["run_id"],
            "steps": steps_of(result["run_id"]),
            "write_downtime_s": round(report["failed_write_s"], 2),
            "acknowledged": report["acknowledged"], "lost": report["lost"]}


def one_round(work: Path, lab: paths.LabPaths) -> list[dict]:
    """Planned, failback, unplanned, failback: the lab ends at its baseline."""
    return [
        measured("planned", ["failover", "--region", "eu-west"], work),
        measured("failback", ["failback", "--region", "us-east"], work),
        measured("unplanned", ["failover", "--region", "eu-west", "--mode", "unplanned"], work,
                 before=lambda: chaos.region_outage(lab, "us-east"),
                 after=lambda: chaos.restore(lab, region="us-east", wait_s=30)),
        measured("failback-after-unplanned", ["failback", "--region", "us-east"], work),
    ]


def verdicts(row: dict) -> list[str]:
    target = TARGETS.get(row["name"], {})
    return [f"{k} {'PASS' if row[k] <= v else 'MISS'} (<= {v:g})" for k, v in target.items()]


def summary(rows: list[dict]) -> list[str]:
    """Per run kind over the rounds: median and worst of each targeted measure, and
    how many rounds met the target."""
    lines = []
    for name, target in TARGETS.items():
        mine = [r for r in rows if r["name"] == name]
        for key, limit in target.items():
            values = sorted(r[key] for r in mine)
            met = sum(v <= limit for v in values)
            lines.append(f"{name:<10} {key:<17} median {statistics.median(values):6.1f}  "
                         f"worst {values[-1]:6.1f}  target <= {limit:g}: "
                         f"met in {met}/{len(values)}")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / ".drkit" / "bench"
                        / "failover.json")
    parser.add_argument("--rounds", type=int, default=1,
                        help="repeat the four runs this many times (the spread matters on 2 cores)")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if not netns.gateway_exists():
        print("failover.py: the lab is not up; run `drkit lab.up` first", file=sys.stderr)
        return 2
    work = args.out.parent / "failover-canary"
    work.mkdir(parents=True, exist_ok=True)
    lab = paths.LabPaths.for_project(PROJECT_ROOT)
    rows = []
    for n in range(1, args.rounds + 1):
        for row in one_round(work, lab):
            rows.append({**row, "round": n})
    missed = []
    print(f"{'run':<26} {'wall s':>7} {'RTO s':>7} {'RPO s':>6} {'write down s':>12} "
          f"{'lost':>5}  verdict")
    for row in rows:
        found = verdicts(row)
        missed += [v for v in found if "MISS" in v]
        label = row["name"] + (f" #{row['round']}" if args.rounds > 1 else "")
        print(f"{label:<26} {row['wall_s']:>7} {row['rto_s']:>7} {row['rpo_s']!s:>6} "
              f"{row['write_downtime_s']:>12} {row['lost']:>5}  {'; '.join(found)}")
        print("    " + ", ".join(f"{k} {v:.1f}" for k, v in row["steps"].items()))
    if args.rounds > 1:
        print("\n".join(["", *summary(rows)]))
    args.out.write_text(json.dumps({"machine": {"cpus": os.cpu_count(),
                                                "python": platform.python_version(),
                                                "kernel": platform.release()},
                                    "targets": TARGETS, "rounds": args.rounds,
                                    "rows": rows}, indent=2))
    print(f"written: {args.out}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
