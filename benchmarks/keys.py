"""Measure key backups: Argon2id's cost per parameter set on this machine, sealing and
opening an archive, SLIP-39 split and combine, and (with a lab up) `invoke
keys.backup` and `keys.verify` end to end.

    python benchmarks/keys.py                 # the cryptography alone, no lab
    python benchmarks/keys.py --lab           # also keys.backup/keys.verify on the running lab
    python benchmarks/keys.py --compromise     # also RB-DR-005 on the running lab
    python benchmarks/keys.py --out .drkit/bench/keys.json

Each figure is the median of --repeat runs. --compromise times `invoke
key-compromise --key db-credentials` from the command's start to "the old
password is refused by every db node" (a poller here tries it on each node every
0.2 s; target <= 15 s) and to "every consumer rotated" (the consumers step done,
from the run's journal; target <= 60 s), and the whole run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

from drkit.keys import archive, shares  # noqa: E402

KDF_SETS = [
    {"memory_kib": 65536, "iterations": 3, "lanes": 4},  # drkit's (RFC 9106, 2nd option)
    {"memory_kib": 262144, "iterations": 3, "lanes": 4},
    {"memory_kib": 2097152, "iterations": 1, "lanes": 4},  # RFC 9106, 1st option
]


def _median(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def crypto(repeat: int) -> dict[str, Any]:
    kdfs = []
    for params in KDF_SETS:
        kdf = {"name": "argon2id", **params, "salt": "AAAAAAAAAAAAAAAAAAAAAA=="}
        try:
            seconds = _median(lambda kdf=kdf: archive.derive("a passphrase", kdf), repeat)
        except MemoryError:
            seconds = None
        kdfs.append({**params, "derive_s": seconds})
    keys = {f"key-{i}": os.urandom(4096) for i in range(8)}
    sealed = archive.seal(keys, passphrase="p", about={"label": "bench"})
    files = shares.split(sealed.recovery_secret, count=5, threshold=3, label="bench")
    given = [(str(f.index), f.words) for f in files[:3]]
    return {
        "kdf": kdfs,
        "seal_s": _median(lambda: archive.seal(keys, passphrase="p", about={}), repeat),
        "open_passphrase_s": _median(lambda: archive.open_archive(sealed.data, passphrase="p"),
                                     repeat),
        "open_recovery_s": _median(lambda: archive.open_archive(
            sealed.data, recovery_secret=sealed.recovery_secret), repeat),
        "split_5_of_3_s": _median(lambda: shares.split(sealed.recovery_secret, count=5,
                                                       threshold=3, label="b"), repeat),
        "combine_3_s": _median(lambda: shares.combine(given, identifier=files[0].identifier,
                                                      threshold=3, label="b"), repeat),
        "archive_bytes": len(sealed.data), "keys": len(keys),
    }


def drkit(*args: str) -> float:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "drkit", *args], cwd=PROJECT_ROOT,
                          capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if proc.returncode:
        raise SystemExit(f"drkit {' '.join(args)} failed ({proc.returncode}): "
                         f"{proc.stderr[-1500:]}")
    return time.perf_counter() - start


def lab(repeat: int) -> dict[str, Any]:
    backups, verifies = [], []
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as tmp:
            backups.append(drkit("keys.backup", "--shares", "5", "--threshold", "3",
                                 "--shares-out", f"{tmp}/custody", "--yes"))
        verifies.append(drkit("keys.verify", "--yes"))
    return {"keys_backup_s": statistics.median(backups),
            "keys_verify_s": statistics.median(verifies)}


def _old_refused_everywhere(hosts: list[str], user: str, password: str) -> bool:
    from drkit.checks.rotation import try_login

    return all(try_login(h, user, password, timeout=2) == "refused" for h in hosts)


def compromise(repeat: int) -> dict[str, Any]:
    """RB-DR-005 emergency runs on the lab that is up: seconds from the command's
    start to the old password refused on every db node, and to every consumer
    rotated; medians over ``repeat`` runs."""
    from drkit.checks.aws import instances
    from drkit.env import load_environment
    from drkit.journal import parse_ts, read_events
    from drkit.keys.sources import read_secret
    from drkit.project import find_project
    from drkit.registry import StepContext

    project = find_project(PROJECT_ROOT)
    env = load_environment(project)
    ctx = StepContext(env=env, project=project, run_dir=project.state_dir)
    hosts = [i["ip"] for r in env.regions for i in instances(ctx, r, "db", ("running",))]
    rows = []
    for _ in range(repeat):
        old = json.loads(read_secret(env, "drkit/lab/REGION/db-credentials")[0])
        start_wall, start = time.time(), time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "drkit", "key-compromise", "--key",
                                 "db-credentials", "--yes", "--json"], cwd=PROJECT_ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                stdin=subprocess.DEVNULL)
        refused = None
        while proc.poll() is None and refused is None:
            if _old_refused_everywhere(hosts, old["username"], old["password"]):
                refused = time.perf_counter() - start
            time.sleep(0.2)
        out, _ = proc.communicate()
        total = time.perf_counter() - start
        if proc.returncode:
            raise SystemExit(f"key-compromise failed ({proc.returncode}): {out[-1500:]}")
        run_id = next(json.loads(line)["run_id"] for line in reversed(out.splitlines())
                      if '"event": "result"' in line)
        events = read_events(project.runs_dir / run_id / "journal.jsonl")
        done = {e["step"]: parse_ts(e["ts"]).timestamp() - start_wall for e in events
                if e["event"] == "step_finished"}
        rows.append({"run_id": run_id, "old_refused_s": refused,
                     "revoked_step_s": done.get("promote"),
                     "consumers_rotated_s": done.get("consumers"), "total_s": total})
    pick = {k: statistics.median(r[k] for r in rows)
            for k in ("old_refused_s", "consumers_rotated_s", "total_s")}
    return {"runs": rows, **pick, "hosts": len(hosts)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lab", action="store_true", help="also time keys.backup/verify "
                        "on the lab that is up")
    parser.add_argument("--compromise", action="store_true", help="also time RB-DR-005 "
                        "(key-compromise --key db-credentials) on the lab that is up")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    result: dict[str, Any] = {"crypto": crypto(args.repeat)}
    for k in result["crypto"]["kdf"]:
        cost = f"{k['derive_s']:.3f} s" if k["derive_s"] is not None else "out of memory"
        print(f"argon2id m={k['memory_kib'] // 1024} MiB t={k['iterations']} "
              f"p={k['lanes']}: {cost}")
    c = result["crypto"]
    print(f"seal {c['keys']} keys: {c['seal_s']:.3f} s; open with passphrase "
          f"{c['open_passphrase_s']:.3f} s, with recovery secret {c['open_recovery_s']:.4f} s; "
          f"SLIP-39 split {c['split_5_of_3_s']:.4f} s, combine {c['combine_3_s']:.4f} s")
    if args.lab:
        result["lab"] = lab(args.repeat)
        print(f"invoke keys.backup (5 shares) {result['lab']['keys_backup_s']:.1f} s; "
              f"keys.verify {result['lab']['keys_verify_s']:.1f} s")
    if args.compromise:
        c = result["compromise"] = compromise(args.repeat)
        print(f"key-compromise db-credentials (median of {len(c['runs'])}): old password "
              f"refused on all {c['hosts']} db nodes after {c['old_refused_s']:.1f} s "
              f"(target 15 s), every consumer rotated after {c['consumers_rotated_s']:.1f} s "
              f"(target 60 s), run {c['total_s']:.1f} s; load {os.getloadavg()[0]:.2f}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
