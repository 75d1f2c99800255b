"""Measure the lab's lifecycle: wall time and peak memory of lab up, reset and down.

Each operation runs in a fresh Python process (so its peak RSS, from
``resource.getrusage``, is its own), while this process samples the memory of
the lab's own processes: moto, the resolver and the reconciler (by pid file) and
everything running in the lab's namespaces (sshd, PostgreSQL, the app).

    sudo python benchmarks/lab.py --out .drkit/bench/lab.json

Before ``reset`` the lab is "used": us-east is cut off (a region outage), so reset
has something to undo. The lab runs in a private directory (``--lab-dir``, a
temporary one by default) and is always taken down at the end. The benchmark
refuses to start while any lab is up on the machine (the lab's namespaces are
shared by everyone on it).

Targets on the 2-core reference machine (issue 3): up <= 120 s, reset <= 30 s,
down <= 10 s. Each is printed as PASS or MISS; the exit code is 1 on a MISS or
when an operation failed (the lab is taken down and the JSON written anyway).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

from drkit.lab import netns, paths, processes  # noqa: E402

TARGETS_S = {"up": 120.0, "reset": 30.0, "down": 10.0}
PID_FILE_PROCESSES = ("moto", "resolver", "reconciler")
SAMPLE_INTERVAL_S = 0.25


# -- the operation, in its own process --------------------------------------------------


def run_operation(operation: str) -> None:
    """Child mode: run one controller operation, print one JSON line with its result
    and this process's peak RSS (self and waited-for children, e.g. terraform)."""
    from drkit.lab import chaos, controller

    lines: list[str] = []
    if operation == "break":
        result: dict[str, Any] = {"lines": chaos.region_outage(
            paths.LabPaths.for_project(PROJECT_ROOT), "us-east")}
    else:
        fn = {"up": controller.up, "reset": controller.reset, "down": controller.down}[operation]
        result = fn(PROJECT_ROOT, progress=lines.append)
    self_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(json.dumps({"result": result, "progress": lines,
                      "controller_peak_rss_mb": round(self_kb / 1024, 1),
                      "children_peak_rss_mb": round(children_kb / 1024, 1)}, default=str))


# -- sampling the lab's processes -------------------------------------------------------


def _rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, ValueError):
        pass
    return 0  # gone, or a kernel thread / zombie without RSS


def lab_pids(lab: paths.LabPaths) -> dict[str, set[int]]:
    """The lab's own processes right now, by kind."""
    found: dict[str, set[int]] = {}
    for name in PID_FILE_PROCESSES:
        record = processes.read_pid_file(lab.pid_file(name))
        if record is not None and record.matches():
            found.setdefault(name, set()).add(record.pid)
    for ns in netns.list_namespaces(paths.LAB_NS_PREFIX):
        kind = "gateway" if ns == paths.GATEWAY_NS else "hosts"
        found.setdefault(kind, set()).update(netns.ns_pids(ns))
    if "gateway" in found:  # moto and the resolver run in drk-gw: count them once
        found["gateway"] -= found.get("moto", set()) | found.get("resolver", set())
    return found


class Sampler(threading.Thread):
    """Samples the summed RSS of the lab's processes until stopped; keeps the peak."""

    def __init__(self, lab: paths.LabPaths) -> None:
        super().__init__(daemon=True)
        self.lab = lab
        self.stopping = threading.Event()
        self.peak_total_kb = 0
        self.peak_by_kind_kb: dict[str, int] = {}
        self.samples = 0

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                by_kind = {k: sum(_rss_kb(p) for p in pids)
                           for k, pids in lab_pids(self.lab).items()}
            except Exception:  # the lab is changing under us (down): skip this sample
                by_kind = {}
            self.samples += 1
            self.peak_total_kb = max(self.peak_total_kb, sum(by_kind.values()))
            for kind, kb in by_kind.items():
                self.peak_by_kind_kb[kind] = max(self.peak_by_kind_kb.get(kind, 0), kb)
            self.stopping.wait(SAMPLE_INTERVAL_S)

    def stop(self) -> None:
        self.stopping.set()
        self.join()


def measure(operation: str, lab: paths.LabPaths, env: dict[str, str]) -> dict[str, Any]:
    """Run ``operation`` in a child process while sampling the lab's memory."""
    sampler = Sampler(lab)
    sampler.start()
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, __file__, "--_operation", operation],
                          capture_output=True, text=True, env=env, cwd=PROJECT_ROOT)
    wall = time.monotonic() - t0
    sampler.stop()
    if proc.returncode != 0:
        raise SystemExit(f"lab {operation} failed (rc {proc.returncode}):\n"
                         f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    child = json.loads(proc.stdout.strip().splitlines()[-1])
    return {
        "operation": operation,
        "wall_s": round(wall, 2),
        "controller_total_s": child["result"].get("total_s"),
        "phases_s": child["result"].get("phases", {}),
        "controller_peak_rss_mb": child["controller_peak_rss_mb"],
        "children_peak_rss_mb": child["children_peak_rss_mb"],
        "lab_peak_rss_mb": round(sampler.peak_total_kb / 1024, 1),
        "lab_peak_rss_by_kind_mb": {k: round(v / 1024, 1)
                                    for k, v in sorted(sampler.peak_by_kind_kb.items())},
        "samples": sampler.samples,
    }


# -- report -----------------------------------------------------------------------------


def table(rows: list[dict[str, Any]]) -> str:
    head = (f"{'operation':<9} {'wall s':>7} {'target':>7} {'':<4} {'ctrl MB':>8} "
            f"{'children MB':>11} {'lab MB':>7}  lab peak by kind (MB)")
    out = [head, "-" * len(head)]
    for r in rows:
        target = TARGETS_S.get(r["operation"])
        verdict = "" if target is None else ("PASS" if r["wall_s"] <= target else "MISS")
        kinds = ", ".join(f"{k} {v}" for k, v in r["lab_peak_rss_by_kind_mb"].items())
        out.append(f"{r['operation']:<9} {r['wall_s']:>7.1f} "
                   f"{'' if target is None else f'<= {target:.0f}':>7} {verdict:<4} "
                   f"{r['controller_peak_rss_mb']:>8.1f} {r['children_peak_rss_mb']:>11.1f} "
                   f"{r['lab_peak_rss_mb']:>7.1f}  {kinds}")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, help="write the measurements as JSON here")
    parser.add_argument("--lab-dir", type=Path,
                        help="lab directory (default: a temporary one, removed by down)")
    parser.add_argument("--_operation", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args._operation:
        run_operation(args._operation)
        return 0

    if os.geteuid() != 0:
        raise SystemExit("the lab needs root (network namespaces)")
    if netns.gateway_exists():
        raise SystemExit(f"a lab is already up ({paths.GATEWAY_NS} exists); the lab's "
                         "namespaces are shared by the machine: run this when none is up")
    lab_dir = (args.lab_dir or Path(tempfile.mkdtemp(prefix="drkit-bench-")) / "lab").resolve()
    env = {**os.environ, paths.LAB_DIR_ENV: str(lab_dir)}
    lab = paths.LabPaths(lab_dir)
    rows: list[dict[str, Any]] = []
    error = None
    try:
        rows.append(measure("up", lab, env))
        rows.append(measure("break", lab, env))  # us-east cut off: a used lab
        rows.append(measure("reset", lab, env))
    except SystemExit as exc:  # an operation failed: still take the lab down, report
        error = str(exc)
        print(error, file=sys.stderr)
    finally:
        rows.append(measure("down", lab, env))
    if not args.lab_dir:
        lab_dir.parent.rmdir()

    print(table(rows))
    verdicts = {r["operation"]: r["wall_s"] <= TARGETS_S[r["operation"]]
                for r in rows if r["operation"] in TARGETS_S}
    report = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "kernel": platform.release()},
        "targets_s": TARGETS_S,
        "met": verdicts,
        "site_playbook": (PROJECT_ROOT / "playbooks" / "site.yml").exists(),
        "measurements": rows,
        "error": error,
    }
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
        print(f"\nwritten to {args.out}")
    return 0 if all(verdicts.values()) and error is None else 1


if __name__ == "__main__":
    sys.exit(main())
