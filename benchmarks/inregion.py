"""Measure RB-DR-001 on the running lab: `lab.chaos node-kill` of a us-east app
host, then `invoke replace-node --auto`, for --rounds rounds (the two app hosts'
zones in turn); then --replica-rounds rounds of the same for eu-west's database
node (the synchronous standby) under a canary writing 60 rows/s through db.

    python benchmarks/inregion.py --rounds 3 --replica-rounds 2 --out .drkit/bench/inregion.json

Per round: the command's wall time (target <= 60 s for an app node), the run's
RTO, each step's time from the journal, and what clients saw meanwhile: a poller
here asks the lab's resolver for app. and GETs /health from one of its answers,
in turn, every 50 ms (as a client with no cache would); ``failed`` counts the
requests that got no 200, ``failed_after_dns_out`` those after the dead host
left DNS (target 0: customers see nothing once it is out).

A replica round reports the wall time, RTO, the canary's lost writes (target 0)
and its write downtime: the longest time without an acknowledged write, which
is how long the primary waited for the dead synchronous standby before the run
told it to stop.

Zone rounds (--zone-hosts 1,4,12): RB-DR-002 with that many us-east app hosts
per zone. The capacity is set the way an operator sets it, in the estate's
Terraform variables: a file terraform/envs/lab/zz-bench.auto.tfvars.json
(ignored by git, removed afterwards, the baseline applied again) raises
us-east's app capacity, `lab.reset` configures the hosts and app.; then
`lab.chaos zone-outage --zone us-east-1b`, `zone-failover --zone us-east-1b`
(wall time, target <= 60 s; RTO; client requests that failed after the zone's
hosts left DNS, target 0), `lab.chaos restore` and `--restore` (wall time).
The cost must grow far slower than the host count (Ansible's forks).

Primary rounds (--primary-rounds): node-kill of us-east's database primary
under the canary, then `replace-node --host`: its in-region standby takes over.
Reported: the command's wall time; the time from the kill until the canary's
first acknowledged write on the new primary (writes back: target <= 30 s), split
into the kill until the run started (the command finding the dead node) and the
run's start until the write; the time until the promote step finished (it goes
on to repoint the other replicas); the canary's longest write gap (target
<= 5 s) and lost writes (target 0); then `lab.reset` brings the baseline primary
back (its time reported too).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

from drkit.checks.dns import resolve  # noqa: E402

TARGET_APP_S = 60.0
TARGET_PRIMARY_S = 30.0
TARGET_WRITE_GAP_S = 5.0
TARGET_ZONE_S = 60.0
ZONE = "us-east-1b"
BENCH_TFVARS = PROJECT_ROOT / "terraform" / "envs" / "lab" / "zz-bench.auto.tfvars.json"
LAB_TFVARS = PROJECT_ROOT / "terraform" / "envs" / "lab" / "lab.auto.tfvars"
RESOLVER = "10.77.0.2"
APP = "app.lab.internal"


class Clients:
    """GET /health through app. every 50 ms in a thread: (time, address, ok)."""

    def __init__(self) -> None:
        self.requests: list[tuple[float, str | None, bool]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        turn = itertools.count()
        while not self._stop.is_set():
            addresses = resolve(APP, resolver=RESOLVER, timeout=1.0)["addresses"]
            address = addresses[next(turn) % len(addresses)] if addresses else None
            ok = False
            if address:
                try:
                    with urllib.request.urlopen(f"http://{address}:8080/health",
                                                timeout=1.0) as resp:
                        ok = resp.status == 200
                except OSError:
                    ok = False
            self.requests.append((time.time(), address, ok))
            self._stop.wait(0.05)

    def __enter__(self) -> Clients:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def drkit(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "drkit", *args], cwd=PROJECT_ROOT,
                          capture_output=True, text=True, stdin=subprocess.DEVNULL)


def app_hosts() -> list[dict[str, Any]]:
    from drkit.lab import paths
    from drkit.lab.reconciler import read_view

    rows = read_view(paths.LabPaths.for_project(PROJECT_ROOT))["instances"]
    return sorted((r for r in rows if r["role"] == "app" and r["dr_region"] == "us-east"
                   and r["state"] == "running"), key=lambda r: r["zone"])


def _result(proc: subprocess.CompletedProcess[str], what: str) -> dict[str, Any]:
    if proc.returncode:
        raise SystemExit(f"{what} failed ({proc.returncode}): "
                         f"{(proc.stdout + proc.stderr)[-2000:]}")
    return next(json.loads(line) for line in reversed(proc.stdout.splitlines())
                if '"event": "result"' in line)


def _steps_and_dns_out(run_id: str) -> tuple[dict[str, float], float]:
    """Each step's time in the run's journal, and when its dns-out step finished."""
    from drkit.journal import parse_ts, read_events

    events = read_events(PROJECT_ROOT / ".drkit" / "runs" / run_id / "journal.jsonl")
    steps = {e["step"]: round(e.get("duration_s") or 0.0, 2) for e in events
             if e["event"] == "step_finished"}
    out_at = max(parse_ts(e["ts"]).timestamp() for e in events
                 if e["event"] == "step_finished" and e["step"] == "dns-out")
    return steps, out_at


def one_round(n: int) -> dict[str, Any]:
    victim = app_hosts()[n % 2]
    killed = drkit("lab.chaos", "node-kill", "--host", victim["instance_id"])
    if killed.returncode:
        raise SystemExit(f"node-kill failed: {killed.stderr[-1000:]}")
    with Clients() as clients:
        start = time.perf_counter()
        result = _result(drkit("replace-node", "--auto", "--yes", "--json"), "replace-node")
        wall = time.perf_counter() - start
    steps, out_at = _steps_and_dns_out(result["run_id"])
    failed = [r for r in clients.requests if not r[2]]
    drkit("lab.chaos", "restore")
    return {"run_id": result["run_id"], "victim": victim["instance_id"], "zone": victim["zone"],
            "wall_s": round(wall, 2), "rto_s": result["rto_s"], "steps_s": steps,
            "requests": len(clients.requests), "failed": len(failed),
            "failed_after_dns_out": sum(1 for r in failed if r[0] > out_at)}


def _kill_and_replace(host: str, out: Path) -> tuple[dict[str, Any], float, float,
                                                     dict[str, Any]]:
    """node-kill ``host`` under a canary writing 60 rows/s through db., then
    `replace-node --host`: the run's result, the kill's epoch time, the command's
    wall time and the canary's report."""
    from drkit.lab import database
    from drkit.lab.canary import Canary

    writer = Canary(database.canary_config(out, rate=60.0, duration_s=None))
    thread = threading.Thread(target=writer.run, daemon=True)
    thread.start()
    time.sleep(3)
    try:
        killed_at = time.time()
        killed = drkit("lab.chaos", "node-kill", "--host", host)
        if killed.returncode:
            raise SystemExit(f"node-kill failed: {killed.stderr[-1000:]}")
        start = time.perf_counter()
        proc = drkit("replace-node", "--host", host, "--yes", "--json")
        wall = time.perf_counter() - start
        time.sleep(3)
    finally:
        writer.stop()
        thread.join(timeout=60)
    result = _result(proc, "replace-node")
    return result, killed_at, wall, database.canary_report(out)


def replica_round(out: Path) -> dict[str, Any]:
    from drkit.lab import database

    victim = next(r for r in database.topology()["nodes"].values()
                  if r["region"] == "eu-west")
    result, _, wall, report = _kill_and_replace(victim["host"], out)
    drkit("lab.chaos", "restore")
    return {"run_id": result["run_id"], "victim": victim["instance_id"],
            "wall_s": round(wall, 2), "rto_s": result["rto_s"],
            "acknowledged": report["acknowledged"], "lost": report["lost"],
            "write_unavailable_s": report["write_unavailable_s"]}


def primary_round(out: Path) -> dict[str, Any]:
    from drkit.journal import RunState, parse_ts, read_events
    from drkit.lab import database

    topo = database.topology()
    victim = topo["nodes"][topo["primary_node"]]
    result, killed_at, wall, report = _kill_and_replace(victim["host"], out)
    state = RunState.from_events(read_events(
        PROJECT_ROOT / ".drkit" / "runs" / result["run_id"] / "journal.jsonl"))
    promoted = parse_ts(state.marks["data_restored"]).timestamp() - killed_at
    run_started = parse_ts(state.started_at).timestamp() - killed_at
    writes_back = _writes_back(out, killed_at)
    drkit("lab.chaos", "restore")
    start = time.perf_counter()
    reset = drkit("lab.reset")
    reset_s = time.perf_counter() - start
    if reset.returncode:
        raise SystemExit(f"lab.reset failed: {(reset.stdout + reset.stderr)[-2000:]}")
    return {"run_id": result["run_id"], "victim": victim["instance_id"],
            "wall_s": round(wall, 2),
            "writes_back_s": round(writes_back, 2), "run_started_s": round(run_started, 2),
            "promote_step_done_s": round(promoted, 2), "rto_s": result["rto_s"],
            "rpo_s": result["rpo_s"], "acknowledged": report["acknowledged"],
            "lost": report["lost"], "write_unavailable_s": report["write_unavailable_s"],
            "reset_s": round(reset_s, 2)}


def _writes_back(out: Path, killed_at: float) -> float:
    """Seconds from the kill until the canary's write that ended its longest gap
    after the kill: the first write the new primary acknowledged."""
    from drkit.lab.canary import ACKS, read_jsonl

    acks = sorted(a["ack"] for a in read_jsonl(out / ACKS))
    gaps = [(b - a, b) for a, b in itertools.pairwise(acks) if b > killed_at]
    if not gaps:
        raise SystemExit("the canary acknowledged no write after the kill")
    return max(gaps)[1] - killed_at


def base_capacity() -> dict[str, dict[str, int]]:
    """The lab's baseline ``capacity`` map, read from lab.auto.tfvars (its
    ``<region> = { db = N, app = M }`` lines), so a changed baseline is kept."""
    import re

    found = {m["region"]: {"db": int(m["db"]), "app": int(m["app"])} for m in re.finditer(
        r"^\s*(?P<region>[a-z]+-[a-z]+)\s*=\s*\{\s*db\s*=\s*(?P<db>\d+)\s*,\s*app\s*=\s*"
        r"(?P<app>\d+)\s*\}", LAB_TFVARS.read_text(), re.MULTILINE)}
    if "us-east" not in found:
        raise SystemExit(f"no capacity for us-east in {LAB_TFVARS}")
    return found


def set_app_hosts_per_zone(per_zone: int | None) -> None:
    """us-east runs ``per_zone`` app hosts in each of its two zones (None: the
    baseline), configured and in app.: Terraform, then `lab.reset`."""
    from drkit.lab import controller, paths

    if per_zone is None:
        BENCH_TFVARS.unlink(missing_ok=True)
    else:
        capacity = base_capacity()
        capacity["us-east"]["app"] = 2 * per_zone
        BENCH_TFVARS.write_text(json.dumps({"capacity": capacity}, indent=2) + "\n")
    lab = paths.LabPaths.for_project(PROJECT_ROOT)
    controller.apply_estate(PROJECT_ROOT, lab, progress=lambda _line: None)
    controller.reset(PROJECT_ROOT)


def zone_round(per_zone: int) -> dict[str, Any]:

    set_app_hosts_per_zone(per_zone)
    cut = sorted(r["ip"] for r in app_hosts() if r["zone"] == ZONE)
    killed = drkit("lab.chaos", "zone-outage", "--zone", ZONE)
    if killed.returncode:
        raise SystemExit(f"zone-outage failed: {killed.stderr[-1000:]}")
    with Clients() as clients:
        start = time.perf_counter()
        result = _result(drkit("zone-failover", "--zone", ZONE, "--yes", "--json"),
                         "zone-failover")
        wall = time.perf_counter() - start
    steps, out_at = _steps_and_dns_out(result["run_id"])
    failed = [r for r in clients.requests if not r[2]]
    drkit("lab.chaos", "restore")
    with Clients() as back_clients:
        start = time.perf_counter()
        back = _result(drkit("zone-failover", "--zone", ZONE, "--restore", "--yes", "--json"),
                       "zone-failover --restore")
        back_wall = time.perf_counter() - start
    return {"app_hosts_per_zone": per_zone, "run_id": result["run_id"],
            "wall_s": round(wall, 2), "rto_s": result["rto_s"], "steps_s": steps,
            "requests": len(clients.requests), "failed": len(failed),
            "failed_after_dns_out": sum(1 for r in failed if r[0] > out_at),
            # (seconds after dns-out, address): a cut-zone address here would be a
            # client sent to the zone; another one, a request that timed out (1 s).
            "failed_after_dns_out_at": [(round(r[0] - out_at, 2), r[1]) for r in failed
                                        if r[0] > out_at][:10],
            "cut_zone_addresses": cut,
            "restore_run_id": back["run_id"], "restore_wall_s": round(back_wall, 2),
            "restore_failed": sum(1 for r in back_clients.requests if not r[2])}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--replica-rounds", type=int, default=1)
    parser.add_argument("--primary-rounds", type=int, default=1)
    parser.add_argument("--zone-hosts", default="",
                        help="zone failover rounds with these app hosts per zone, e.g. 1,4,12")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    try:
        per_zone = [int(n) for n in args.zone_hosts.split(",") if n.strip()]
    except ValueError:
        parser.error(f"--zone-hosts {args.zone_hosts!r}: expected numbers, e.g. 1,4,12")
    if any(n < 1 or n > 16 for n in per_zone):
        parser.error("--zone-hosts: each count must be 1 to 16 hosts per zone")
    rows = []
    for n in range(args.rounds):
        row = one_round(n)
        rows.append(row)
        verdict = "PASS" if row["wall_s"] <= TARGET_APP_S else "MISS"
        print(f"round {n + 1}: app node {row['victim']} ({row['zone']}): wall "
              f"{row['wall_s']:.1f} s (target {TARGET_APP_S:.0f} s) {verdict}; RTO "
              f"{row['rto_s']:.1f} s; client requests {row['requests']}, failed "
              f"{row['failed']} ({row['failed_after_dns_out']} after the node left DNS); "
              f"steps {row['steps_s']}")
    walls = [r["wall_s"] for r in rows]
    met = sum(w <= TARGET_APP_S for w in walls)
    if walls:
        print(f"app node: median wall {statistics.median(walls):.1f} s, {met}/{len(rows)} "
              f"within {TARGET_APP_S:.0f} s; load {os.getloadavg()[0]:.2f}")
    replicas = []
    for n in range(args.replica_rounds):
        with tempfile.TemporaryDirectory() as tmp:
            row = replica_round(Path(tmp))
        replicas.append(row)
        print(f"replica round {n + 1}: eu-west db {row['victim']}: wall {row['wall_s']:.1f} s; "
              f"RTO {row['rto_s']:.1f} s; canary {row['acknowledged']} acknowledged, "
              f"{row['lost']} lost (target 0); write downtime {row['write_unavailable_s']} s")
    primaries = []
    for n in range(args.primary_rounds):
        with tempfile.TemporaryDirectory() as tmp:
            row = primary_round(Path(tmp))
        primaries.append(row)
        verdict = "PASS" if row["writes_back_s"] <= TARGET_PRIMARY_S and \
            row["write_unavailable_s"] <= TARGET_WRITE_GAP_S and row["lost"] == 0 else "MISS"
        print(f"primary round {n + 1}: us-east db {row['victim']}: writes back "
              f"{row['writes_back_s']:.1f} s after the kill (target {TARGET_PRIMARY_S:.0f} s; "
              f"run started at {row['run_started_s']:.1f} s, promote step done at "
              f"{row['promote_step_done_s']:.1f} s); "
              f"longest write gap {row['write_unavailable_s']} s (target "
              f"{TARGET_WRITE_GAP_S:.0f} s); canary {row['acknowledged']} acknowledged, "
              f"{row['lost']} lost; RPO {row['rpo_s']} s; wall {row['wall_s']:.1f} s, RTO "
              f"{row['rto_s']:.1f} s (capacity back); lab.reset {row['reset_s']:.1f} s "
              f"{verdict}")
    lost = sum(r["lost"] for r in replicas + primaries)
    primaries_ok = all(r["writes_back_s"] <= TARGET_PRIMARY_S
                       and r["write_unavailable_s"] <= TARGET_WRITE_GAP_S for r in primaries)
    zones = []
    if BENCH_TFVARS.exists():  # a killed run's: every apply would keep its capacity
        print(f"removing {BENCH_TFVARS.name}, left by a killed run, and applying the baseline")
        set_app_hosts_per_zone(None)
    try:
        for n in per_zone:
            row = zone_round(n)
            zones.append(row)
            verdict = "PASS" if row["wall_s"] <= TARGET_ZONE_S else "MISS"
            print(f"zone round, {n} app host(s) per zone: zone-failover wall {row['wall_s']:.1f} s "
                  f"(target {TARGET_ZONE_S:.0f} s) {verdict}; RTO {row['rto_s']:.1f} s; client "
                  f"requests {row['requests']}, failed {row['failed']} "
                  f"({row['failed_after_dns_out']} after the zone left DNS); --restore wall "
                  f"{row['restore_wall_s']:.1f} s ({row['restore_failed']} requests failed); "
                  f"steps {row['steps_s']}")
    finally:
        if per_zone:
            set_app_hosts_per_zone(None)
    zones_ok = all(r["wall_s"] <= TARGET_ZONE_S and r["failed_after_dns_out"] == 0
                   for r in zones)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"target_app_s": TARGET_APP_S, "rounds": rows,
                                        "replica_rounds": replicas,
                                        "primary_rounds": primaries,
                                        "target_zone_s": TARGET_ZONE_S, "zone_rounds": zones},
                                       indent=2) + "\n")
    return 0 if met == len(rows) and lost == 0 and zones_ok and primaries_ok else 1


if __name__ == "__main__":
    sys.exit(main())
