"""Measure backups and restores on the lab with a database of at least 1 GB:
drkit's runs side by side with the same pgBackRest commands typed by hand.

    sudo python benchmarks/backup.py [--size-gb 1.0] [--out .drkit/bench/backup.json]

Needs a lab that is up (`drkit lab.up`). Grows the app database to --size-gb
with a padding table (kept for the next run), then, in one run:

    backup (drkit)    invoke backup --type full, once to warm up and learn where it
                      backs up (a streaming standby, start/stop on the primary), then
    backup by hand    the same pgBackRest commands on the same host, typed into one ssh
                      session: backup --type=full into repo1, then repo2, with the
                      same options (--backup-standby and the primary as pg2 over TLS)
    backup (drkit)    invoke backup --type full             (overhead target: <= 10 %)
                      (by hand and drkit alternate for --rounds rounds; medians)
    restore by hand   pgbackrest restore of the newest backup into a directory on the
                      primary's disk (no server start): restore throughput in MB/s
    restore (drkit)   invoke restore: scratch host, restore, replay, pg_amcheck, table
                      digests, host destroyed                       (target: <= 90 s end to end)

drkit's overhead is its wall time over the hand-typed commands' for the same
backups; where drkit's extra seconds go is split out of its journal and
ansible-runner's events (process start and report, preflight, each play, the
pgBackRest commands themselves, the `listed` check). The restore is also split
into its steps from the run's journal.
Exit code 1 when a target is missed or a run failed, 2 when the lab is not up.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

from drkit.drivers.ansible import job_events  # noqa: E402
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


def backup_argv(stanza: str, repo: int, primary: str | None) -> str:
    """The pgBackRest command the pgbackrest role's backup.yml runs for one repo
    (as typed on the host), from a standby when ``primary`` is its address."""
    argv = [PGBACKREST, f"--stanza={stanza}", "--log-level-console=info",
            "--log-level-stderr=off", f"--repo={repo}", "--type=full"]
    if primary:
        tls = "/var/lib/postgresql/pgbackrest/tls"
        argv += ["--backup-standby", f"--pg2-host={primary}", "--pg2-host-type=tls",
                 "--pg2-host-port=8432", f"--pg2-host-ca-file={tls}/ca.crt",
                 f"--pg2-host-cert-file={tls}/host.crt", f"--pg2-host-key-file={tls}/host.key",
                 "--pg2-path=/var/lib/postgresql/15/main", "--pg2-port=5432",
                 "--pg2-socket-path=/run/postgresql"]
    return " ".join([*argv, "backup"])


def backup_facts(run_id: str) -> dict[str, Any]:
    """What the run's backup step reported (source, primary, backups, decision)."""
    events = read_events(PROJECT_ROOT / ".drkit" / "runs" / run_id / "journal.jsonl")
    outputs = [e["outputs"] for e in events
               if e["event"] == "step_output" and e["step"] == "backup"]
    return next(iter(outputs[-1]["facts"].values()))


def where_drkit_spends(run_id: str, wall: float) -> dict[str, float]:
    """A drkit backup run's wall time, split: process start/exit and reports
    (outside the journal), lock and preflight, each play of the backup step
    (with the pgBackRest commands and ansible-playbook's own start apart), the
    `listed` check."""
    run_dir = PROJECT_ROOT / ".drkit" / "runs" / run_id
    events = read_events(run_dir / "journal.jsonl")

    def at(event: str, step: str | None = None) -> datetime:
        return next(datetime.fromisoformat(e["ts"].replace("Z", "+00:00")) for e in events
                    if e["event"] == event and (step is None or e.get("step") == step))

    split: dict[str, float] = {}
    journaled = (at("run_finished") - at("run_started")).total_seconds()
    split["process start, exit and reports"] = wall - journaled
    split["lock and preflight"] = (at("step_started", "backup") - at("run_started")).total_seconds()
    step = next(e for e in events if e["event"] == "step_finished" and e["step"] == "backup")
    plays = next(e["outputs"]["plays"] for e in events
                 if e["event"] == "step_output" and e["step"] == "backup")
    split["ansible-playbook start (inventory, parse)"] = step["duration_s"] - sum(
        p["duration_s"] for p in plays)
    pgbackrest = 0.0
    for event in job_events(run_dir / "ansible" / "backup"):
        data = event.get("event_data") or {}
        if event.get("event") == "runner_on_ok" and data.get("task") == (
                "Back up into each repository in turn"):
            pgbackrest += float(data.get("duration") or 0)
    for play in plays:
        split[f"play: {play['name']}"] = play["duration_s"]
    split["  of which the pgBackRest commands"] = pgbackrest
    split["listed check"] = next(e["duration_s"] for e in events
                                 if e["event"] == "step_finished" and e["step"] == "listed")
    return {k: round(v, 2) for k, v in split.items()}


def measure_backup(lab: paths.LabPaths, stanza: str, rounds: int) -> dict[str, Any]:
    """drkit's `invoke backup --type full` and the same pgBackRest commands by hand,
    alternating, after one drkit run that warms up and shows where it backs up."""
    result, wall = drkit(["backup", "--type", "full"])
    facts = backup_facts(result["run_id"])
    hosts = {h["name"]: h["ip"] for h in _db_hosts(lab)}
    source, primary = hosts[facts["source"]], hosts[facts["primary"]]
    from_standby = facts["from_standby"]
    print(f"drkit backs up on {facts['source']} ({'standby' if from_standby else 'primary'}); "
          f"warm-up run {wall:.1f} s", flush=True)
    by_hand = "cd / && " + " && ".join(
        backup_argv(stanza, repo, primary if from_standby else None)
        for repo in range(1, len(facts["backups"]) + 1))
    hand, ours, runs = [], [], []
    for _ in range(rounds):
        hand.append(timed(ssh, lab, source, by_hand))
        print(f"  by hand {hand[-1]:.1f} s", flush=True)
        result, wall = drkit(["backup", "--type", "full"])
        moved = backup_facts(result["run_id"])["source"]
        if moved != facts["source"]:  # not the same commands any more: say so, do not hide it
            raise RuntimeError(f"drkit backed up on {moved}, the hand-typed commands ran on "
                               f"{facts['source']}: the comparison would not be fair")
        ours.append(wall)
        runs.append(result["run_id"])
        print(f"  drkit {wall:.1f} s", flush=True)
    median_hand, median_ours = statistics.median(hand), statistics.median(ours)
    # The drkit run nearest the median is split (with its own wall time).
    typical = min(range(len(ours)), key=lambda i: abs(ours[i] - median_ours))
    return {
        "backup_source": facts["source"], "backup_from_standby": from_standby,
        "backup_decision": facts.get("decision"),
        "backup_by_hand_s": round(median_hand, 1), "backup_drkit_s": round(median_ours, 1),
        "backup_by_hand_all_s": [round(x, 1) for x in hand],
        "backup_drkit_all_s": [round(x, 1) for x in ours],
        "backup_overhead_pct": round(100 * (median_ours - median_hand) / median_hand, 1),
        # What drkit adds per backup, whatever the size (orchestration, not copying).
        "backup_added_s": round(median_ours - median_hand, 1),
        "backup_steps": steps_of(runs[typical]),
        "backup_drkit_split_s": where_drkit_spends(runs[typical], ours[typical]),
        "backup_drkit_split_wall_s": round(ours[typical], 1),
        "backup_cluster_bytes": facts["backups"][0]["size_bytes"],
    }


def print_backup(rows: dict[str, Any]) -> None:
    print(f"backup   by hand {rows['backup_by_hand_s']} s, drkit {rows['backup_drkit_s']} s: "
          f"overhead {rows['backup_overhead_pct']} % (target <= 10 %), "
          f"{rows['db_bytes'] / 2**20:.0f} MiB database, "
          f"{rows['backup_cluster_bytes'] / 2**20:.0f} MiB cluster, "
          f"from {'a standby' if rows['backup_from_standby'] else 'the primary'} "
          f"({rows['backup_source']})")
    # The added seconds hardly grow with the database: the size from which they are
    # within the target, at the rate the hand-typed commands reached here.
    rate = rows["db_bytes"] / rows["backup_by_hand_s"]
    within = rows["backup_added_s"] / (TARGETS["backup_overhead_pct"] / 100) * rate
    print(f"    drkit adds {rows['backup_added_s']} s per backup; that is within "
          f"{TARGETS['backup_overhead_pct']:.0f} % from about {within / 2**30:.1f} GiB "
          f"at {rate / 2**20:.0f} MiB/s")
    print("    " + ", ".join(f"{k} {v:.1f}" for k, v in rows["backup_steps"].items()))
    print(f"    where a drkit run of {rows['backup_drkit_split_wall_s']} s went:")
    for what, seconds in rows["backup_drkit_split_s"].items():
        print(f"    {seconds:6.2f} s  {what}")


def write(out: Path, rows: dict[str, Any], targets: dict[str, float] = TARGETS) -> None:
    """The benchmark's JSON: the machine, the targets and the rows measured."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": {"cpus": os.cpu_count(),
                                           "python": platform.python_version(),
                                           "kernel": platform.release()},
                               "targets": targets, "rows": rows}, indent=2))
    print(f"written: {out}")


def _db_hosts(lab: paths.LabPaths) -> list[dict[str, str]]:
    """Every running db host of the lab: inventory name (Name tag + instance id), IP
    and DR region."""
    from drkit.lab import reconciler

    return [{"name": f"{r['name']}_{r['instance_id']}", "ip": r["ip"],
             "dr_region": r.get("dr_region", "")}
            for r in reconciler.read_view(lab)["instances"]
            if r["state"] == "running" and r.get("role") == "db"]


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
    parser.add_argument("--rounds", type=int, default=2,
                        help="backups by hand and by drkit, alternating (default 2; medians)")
    parser.add_argument("--skip-restore", action="store_true",
                        help="measure the backup only")
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
    rows.update(measure_backup(lab, stanza, args.rounds))
    if args.skip_restore:
        print_backup(rows)
        write(args.out, rows)
        return 1 if rows["backup_overhead_pct"] > TARGETS["backup_overhead_pct"] else 0

    scratch = "/var/lib/postgresql/bench-restore"
    ssh(lab, primary, f"rm -rf {scratch}")
    restore_hand = timed(ssh, lab, primary, f"cd /tmp && {PGBACKREST} --stanza={stanza} "
                                            f"--repo=1 --pg1-path={scratch} --archive-mode=off "
                                            f"--type=immediate restore")
    ssh(lab, primary, f"rm -rf {scratch}")
    rows["restore_by_hand_s"] = round(restore_hand, 1)
    rows["restore_mb_s"] = round(mib / restore_hand, 1)
    result, wall = drkit(["restore"])  # failover.run takes the argument list
    rows["restore_e2e_s"] = round(wall, 1)
    rows["restore_rto_s"] = result["rto_s"]
    rows["restore_steps"] = steps_of(result["run_id"])

    missed = []
    if rows["backup_overhead_pct"] > TARGETS["backup_overhead_pct"]:
        missed.append(f"backup overhead {rows['backup_overhead_pct']} % > "
                      f"{TARGETS['backup_overhead_pct']} %")
    if rows["restore_e2e_s"] > TARGETS["restore_e2e_s"]:
        missed.append(f"restore {rows['restore_e2e_s']} s > {TARGETS['restore_e2e_s']} s")
    print_backup(rows)
    print(f"restore  by hand {rows['restore_by_hand_s']} s ({rows['restore_mb_s']} MiB/s), "
          f"drkit end to end {rows['restore_e2e_s']} s (target <= 90 s), "
          f"RTO {rows['restore_rto_s']} s")
    print("    " + ", ".join(f"{k} {v:.1f}" for k, v in rows["restore_steps"].items()))
    print("PASS" if not missed else "MISS: " + "; ".join(missed))
    write(args.out, rows)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
