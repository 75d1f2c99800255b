"""Measure RB-DR-003 on the lab: planned and unplanned failovers, end to end, per
step, and as a client sees them (the canary's write unavailability, failing time
and lost writes).

    sudo python benchmarks/failover.py --out .drkit/bench/failover.json [--rounds 3]

Needs a lab that is up and at its baseline (`drkit lab.up`); each failover is
followed by a failback, so the lab ends where it started. Rows:

    planned     invoke failover --region eu-west                  (target: <= 45 s end to end,
                                                                   <= 2 s write unavailability)
    failback    invoke failback --region us-east
    unplanned   lab.chaos region-outage us-east, then
                invoke failover --region eu-west --mode unplanned (target: <= 60 s end to end)
    failback    restore, then invoke failback --region us-east

Write unavailability is the longest time the canary went without an
acknowledgement (blocked writes count); failing time, the seconds its writes were
failing, is shown beside it but no target uses it: writes that block fail nothing.
A planned run's unavailability is split at the promotion: fence start -> promote
done (the fence and promotion scripts' own timings in the promote step's
outputs) and promote done -> the first acknowledgement after it.

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
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

from drkit.journal import parse_ts, read_events, utc_now_iso  # noqa: E402
from drkit.lab import chaos, database, netns, paths  # noqa: E402
from drkit.lab.canary import ACKS, Canary, read_jsonl  # noqa: E402

# Each run's targets (issue 4; issue 19: a planned run's writes unavailable for at
# most 3 s in any round) and, over the rounds, targets on the median (issue 19:
# 2 s). No run may lose an acknowledged write.
TARGETS = {"planned": {"wall_s": 45.0, "write_unavailable_s": 3.0},
           "unplanned": {"wall_s": 60.0}}
MEDIAN_TARGETS = {"planned": {"write_unavailable_s": 2.0}}
KINDS = ("planned", "failback", "unplanned", "failback-after-unplanned")
RATE = 60.0
# Plays of playbooks/failover-promote.yml (step promote) that bounded the outage
# before fence and promotion became one remote action each (older journals).
FENCE_PLAY = "Fence the old primary"
PROMOTE_PLAY = "Promote the target replica"


def run(args: list[str], ok: tuple[int, ...] = (0,)) -> tuple[dict[str, Any], float]:
    """One drkit run (JSON events); its result event and wall time. ``ok``: the exit
    codes that count as a run that went through (6: it missed a target)."""
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "drkit", *args, "--yes", "--json"],
                          cwd=PROJECT_ROOT, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL)
    wall = time.monotonic() - start
    result = next((json.loads(line) for line in reversed(proc.stdout.splitlines())
                   if '"event": "result"' in line), None)
    if proc.returncode not in ok or result is None:
        raise RuntimeError(f"drkit {' '.join(args)} exited {proc.returncode}: "
                           f"{proc.stderr[-2000:]}")
    return result, wall


def steps_of(events: Sequence[dict[str, Any]]) -> dict[str, float]:
    return {e["step"]: e["duration_s"] for e in events
            if e["event"] == "step_finished" and e["status"] == "ok"}


def unavailability_parts(events: Sequence[dict[str, Any]],
                         acks: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """A planned failover's write unavailability in two parts: fence start ->
    promote done, and promote done -> the canary's first acknowledgement after it
    (the old primary is stopped by then: that write went to the new one through
    db.'s new answer). Both ends come from the last ``step_output`` of step
    promote: the fence script's ``fence_timings.fence_started_at`` (when it made
    the old primary read-only) and the promotion's ``promote_timings.promoted_at``
    (when the target left recovery), each host's clock as its script read it. A
    run whose outputs lack them (before the switchover was one remote action per
    host) is split at its plays instead: the fence play's start and the promote
    play's end (a play ends where the next one starts). Raises ValueError saying
    what the journal or the acknowledgements lack."""
    outputs = [e["outputs"] for e in events
               if e["event"] == "step_output" and e["step"] == "promote"]
    if not outputs:
        raise ValueError("the journal has no step_output of step promote")
    facts = (outputs[-1].get("facts") or {}).values()
    fence = next((f["fence_timings"] for f in facts
                  if isinstance(f, dict) and "fence_started_at" in (f.get("fence_timings") or {})),
                 None)
    promoted = next((f["promote_timings"] for f in facts
                     if isinstance(f, dict) and "promoted_at" in (f.get("promote_timings") or {})),
                    None)
    if fence and promoted:
        fence_at, promoted_at = float(fence["fence_started_at"]), float(promoted["promoted_at"])
        source = "scripts"
    else:
        plays = {p["name"]: p for p in outputs[-1].get("plays") or []}
        missing = [name for name in (FENCE_PLAY, PROMOTE_PLAY) if name not in plays]
        if missing:
            raise ValueError(f"step promote has no fence and promotion timings and no play "
                             f"{' or '.join(map(repr, missing))} "
                             f"(its plays: {', '.join(map(repr, plays)) or 'none'})")
        fence_at = parse_ts(plays[FENCE_PLAY]["started_at"]).timestamp()
        promote = plays[PROMOTE_PLAY]
        promoted_at = parse_ts(promote["started_at"]).timestamp() + float(promote["duration_s"])
        source = "plays"
    first = min((float(a["ack"]) for a in acks if float(a["ack"]) >= promoted_at), default=None)
    if first is None:
        raise ValueError("the canary has no acknowledgement after the promotion")
    return {"fence_to_promote_s": round(promoted_at - fence_at, 2),
            "promote_to_ack_s": round(first - promoted_at, 2),
            "fence_started_at": utc_now_iso(datetime.fromtimestamp(fence_at, UTC)),
            "promoted_at": utc_now_iso(datetime.fromtimestamp(promoted_at, UTC)),
            "first_ack_at": utc_now_iso(datetime.fromtimestamp(first, UTC)),
            "source": source}


def parts_line(parts: dict[str, Any]) -> str:
    """The table's line under a planned run: its unavailability's parts."""
    if "error" in parts:
        return f"    write unavailable: parts unknown ({parts['error']})"
    return (f"    write unavailable: fence -> promote done {parts['fence_to_promote_s']:.2f} s, "
            f"promote done -> first ack {parts['promote_to_ack_s']:.2f} s")


def measured(name: str, args: list[str], out: Path, before=None, after=None,
             parts: bool = False, ok: tuple[int, ...] = (0,)) -> dict:
    """A run under canary load: wall time, steps, RTO/RPO, write unavailability and
    failing time, lost writes; with ``parts``, the unavailability's parts; ``ok``,
    the exit codes of a run that went through."""
    load = os.getloadavg()[0]  # 2 shared cores: what else ran counts
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
        result, wall = run(args, ok)
        seen = len(acks)
        while len(acks) < seen + RATE:  # the service takes writes again
            time.sleep(0.1)
    finally:
        if after:
            after()
        canary.stop()
        writer.join(timeout=60)
    report = database.canary_report(out / name)
    events = read_events(PROJECT_ROOT / ".drkit" / "runs" / result["run_id"] / "journal.jsonl")
    row = {"name": name, "args": args, "wall_s": round(wall, 1), "rto_s": result["rto_s"],
           "rpo_s": result["rpo_s"], "run_id": result["run_id"], "steps": steps_of(events),
           "write_unavailable_s": round(report["write_unavailable_s"], 2),
           "failing_s": round(report["failing_s"], 2),
           "acknowledged": report["acknowledged"], "lost": report["lost"], "load_1m": load}
    if parts:
        try:
            row["write_unavailable_parts"] = unavailability_parts(
                events, read_jsonl(out / name / ACKS))
        except ValueError as exc:
            row["write_unavailable_parts"] = {"error": str(exc)}
    return row


def one_round(work: Path, lab: paths.LabPaths) -> list[dict]:
    """Planned, failback, unplanned, failback: the lab ends at its baseline."""
    return [
        measured("planned", ["failover", "--region", "eu-west"], work, parts=True),
        measured("failback", ["failback", "--region", "us-east"], work),
        measured("unplanned", ["failover", "--region", "eu-west", "--mode", "unplanned"], work,
                 before=lambda: chaos.region_outage(lab, "us-east"),
                 after=lambda: chaos.restore(lab, region="us-east", wait_s=30)),
        measured("failback-after-unplanned", ["failback", "--region", "us-east"], work),
    ]


def verdicts(row: dict) -> list[str]:
    target = {**TARGETS.get(row["name"], {}), "lost": 0}
    return [f"{k} {'PASS' if row[k] <= v else 'MISS'} (<= {v:g})" for k, v in target.items()]


def summary(rows: list[dict]) -> tuple[list[str], list[str]]:
    """Per run kind over the rounds: median and worst of wall time and write
    unavailability, the most writes lost in a round, and for each target in how
    many rounds it was met (a median target: whether the median meets it).
    Returns the lines and the missed median targets."""
    lines, missed = [], []
    for name in KINDS:
        mine = [r for r in rows if r["name"] == name]
        if not mine:
            continue
        for key in ("wall_s", "write_unavailable_s"):
            values = sorted(r[key] for r in mine)
            median = statistics.median(values)
            line = f"{name:<25} {key:<19} median {median:6.2f}  worst {values[-1]:6.2f}"
            if key in TARGETS.get(name, {}):
                limit = TARGETS[name][key]
                line += (f"  each <= {limit:g}: met in "
                         f"{sum(v <= limit for v in values)}/{len(values)}")
            if key in MEDIAN_TARGETS.get(name, {}):
                limit = MEDIAN_TARGETS[name][key]
                verdict = "PASS" if median <= limit else "MISS"
                line += f"  median <= {limit:g}: {verdict}"
                if verdict == "MISS":
                    missed.append(f"{name} {key} median {median:.2f} > {limit:g}")
            lines.append(line)
        lines.append(f"{name:<25} {'lost':<19} most in a round {max(r['lost'] for r in mine)}")
    return lines, missed


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
    print(f"{'run':<26} {'wall s':>7} {'RTO s':>7} {'RPO s':>6} {'unavail s':>9} "
          f"{'failing s':>9} {'lost':>5} {'load':>5}  verdict")
    for row in rows:
        found = verdicts(row)
        missed += [v for v in found if "MISS" in v]
        label = row["name"] + (f" #{row['round']}" if args.rounds > 1 else "")
        print(f"{label:<26} {row['wall_s']:>7} {row['rto_s']:>7} {row['rpo_s']!s:>6} "
              f"{row['write_unavailable_s']:>9} {row['failing_s']:>9} {row['lost']:>5} "
              f"{row['load_1m']:>5.1f}  "
              f"{'; '.join(found)}")
        print("    " + ", ".join(f"{k} {v:.1f}" for k, v in row["steps"].items()))
        if "write_unavailable_parts" in row:
            print(parts_line(row["write_unavailable_parts"]))
    lines, median_missed = summary(rows)
    missed += median_missed
    print("\n".join(["", *lines]))
    args.out.write_text(json.dumps({"machine": {"cpus": os.cpu_count(),
                                                "python": platform.python_version(),
                                                "kernel": platform.release()},
                                    "targets": TARGETS, "median_targets": MEDIAN_TARGETS,
                                    "rounds": args.rounds,
                                    "rows": rows}, indent=2))
    print(f"written: {args.out}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
