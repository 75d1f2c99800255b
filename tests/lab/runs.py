"""What the lab tests of every runbook share: the real CLI without a terminal,
the run's journal, a canary writing through DNS, and a drkit killed mid-run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime
from functools import cache
from pathlib import Path

from drkit import topology
from drkit.drivers.ansible import job_events
from drkit.drivers.reaper import RUN_TOKEN_ENV
from drkit.journal import read_events
from drkit.lab import controller, database

PROJECT = Path(__file__).resolve().parents[2]
RUNS = PROJECT / ".drkit" / "runs"
BASELINE_PRIMARY = "us-east"  # the database node that is primary at the baseline
RATE = 60.0  # canary writes per second (the issue asks for at least 50)
RESOLVER = "10.77.0.2"  # the lab's resolver, where the estate's clients ask
APP = "app.lab.internal"


@cache
def lab_db_nodes() -> tuple[topology.DbNode, ...]:
    """The lab's database nodes, from its configuration (drkit.topology)."""
    from drkit.env import load_environment
    from drkit.project import find_project

    return tuple(topology.db_nodes(load_environment(find_project(PROJECT), "lab").regions))


def replica_nodes(primary: str = BASELINE_PRIMARY) -> list[topology.DbNode]:
    """Every database node but ``primary`` (a node key)."""
    return [n for n in lab_db_nodes() if n.key != primary]


def expected_sync_names(primary: str = BASELINE_PRIMARY) -> str:
    """synchronous_standby_names as the site sets it on ``primary`` with every
    standby streaming (estate.yml, role postgresql_primary)."""
    from drkit.env import load_environment
    from drkit.project import find_project

    pg = load_environment(find_project(PROJECT), "lab").settings.get("postgres") or {}
    names = topology.sync_candidates(list(lab_db_nodes()), primary,
                                     list(pg.get("synchronous_regions") or []),
                                     bool(pg.get("synchronous_in_region")))
    method = "FIRST" if pg.get("synchronous_in_region") else "ANY"
    return "" if not names else names[0] if len(names) == 1 else \
        f"{method} 1 ({', '.join(names)})"


def drkit(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """The real CLI, without a terminal (as a scheduled rehearsal runs it)."""
    return subprocess.run([sys.executable, "-m", "drkit", *args], cwd=PROJECT,
                          capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, env=os.environ.copy())


def result_of(proc: subprocess.CompletedProcess[str]) -> dict:
    """The final JSON `result` event of a --json run."""
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("{") and '"event": "result"' in line:
            return json.loads(line)
    raise AssertionError(f"no result event; stdout tail: {proc.stdout[-2000:]}\n"
                         f"stderr: {proc.stderr[-2000:]}")


def journal(run_id: str) -> list[dict]:
    return read_events(RUNS / run_id / "journal.jsonl")


def decisions(run_id: str) -> list[str]:
    """The run's journaled decision lines, in order."""
    return [e["text"] for e in journal(run_id) if e["event"] == "decision"]


def wait(what: str, predicate, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f} s: {what}"
        time.sleep(0.5)


class Canary:
    """drkit's lab canary in a thread: numbered writes through db.lab.internal."""

    def __init__(self, out: Path) -> None:
        from drkit.lab.canary import Canary as Writer

        self.out = out
        self.acks: list[dict] = []
        self.writer = Writer(database.canary_config(out, rate=RATE, duration_s=None),
                             on_event=self._on_event)
        self.thread = threading.Thread(target=self.writer.run, name="canary", daemon=True)

    def _on_event(self, kind: str, record: dict) -> None:
        if kind == "ack":
            self.acks.append(record)

    def __enter__(self) -> Canary:
        self.thread.start()
        wait("the canary's first acknowledged writes", lambda: len(self.acks) >= RATE, 60)
        return self

    def __exit__(self, *exc: object) -> None:
        self.writer.stop()
        self.thread.join(timeout=60)

    def keep_writing(self, n: int = int(RATE)) -> None:
        """Wait until ``n`` more writes are acknowledged (the service works again)."""
        target = len(self.acks) + n
        wait(f"{n} acknowledged writes after the run", lambda: len(self.acks) >= target, 120)

    def report(self) -> dict:
        return database.canary_report(self.out)


def assert_only_unarchived_writes_lost(canary: Canary, restored: dict, rpo_s: float,
                                       archived_by: float) -> dict:
    """A restore from the backups under canary load (its playbook's ``restored`` report):
    every write acknowledged before ``archived_by`` (the last segment switched and
    archived) is back; what is lost was acknowledged after the last commit the restore
    replayed; the reported RPO covers it. The canary's report."""
    report = canary.report()
    last_commit = datetime.fromisoformat(restored["last_commit"]).timestamp()
    acks = {a["seq"]: a for a in canary.acks}
    lost_acked_at = [float(acks[s]["ack"]) for s in report["lost_seqs"] if s in acks]
    assert all(at >= last_commit for at in lost_acked_at), (lost_acked_at[:3],
                                                            restored["last_commit"])
    assert not [at for at in lost_acked_at if at < archived_by - 1.0], lost_acked_at[:3]
    assert rpo_s >= max(lost_acked_at, default=last_commit) - last_commit
    return report


def app_instances(lab, *, running: bool = False) -> dict[str, dict]:
    """The lab's us-east app instances by id, as the reconciler sees them: any state,
    or with ``running`` the running ones."""
    return {i: r for i, r in lab.view().items() if r["role"] == "app"
            and r["dr_region"] == "us-east" and (not running or r["state"] == "running")}


def health(ip: str) -> int:
    """The status of the app's GET /health on ``ip`` (HTTPError for a non-2xx one)."""
    import urllib.request

    with urllib.request.urlopen(f"http://{ip}:8080/health", timeout=5) as resp:
        return resp.status


class AppSampler:
    """A client of app. in a thread: every 50 ms it asks the lab's resolver for app.
    (``samples``: time, addresses) and, with ``health``, GETs /health from each
    address answered (``failures``: time, address, why)."""

    def __init__(self, health: bool = False) -> None:
        self.health = health
        self.samples: list[tuple[float, list[str]]] = []
        self.failures: list[tuple[float, str, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="app-sampler", daemon=True)

    def _run(self) -> None:
        import urllib.request

        from drkit.checks.dns import resolve

        while not self._stop.is_set():
            now = time.time()
            addresses = resolve(APP, resolver=RESOLVER, timeout=1.0)["addresses"]
            self.samples.append((now, addresses))
            for ip in addresses if self.health else []:
                try:
                    with urllib.request.urlopen(f"http://{ip}:8080/health", timeout=1) as rsp:
                        if rsp.status != 200:
                            self.failures.append((now, ip, f"HTTP {rsp.status}"))
                except OSError as exc:
                    self.failures.append((now, ip, str(exc)))
            self._stop.wait(0.05)

    def __enter__(self) -> AppSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def finished_at(run_id: str, step: str) -> float:
    """When the run last finished ``step`` (epoch seconds)."""
    from drkit.journal import parse_ts

    ts = [e["ts"] for e in journal(run_id) if e["event"] == "step_finished"
          and e["step"] == step]
    assert ts, f"run {run_id} never finished step {step}"
    return parse_ts(ts[-1]).timestamp()


def started_after(run_id: str, step: str, since: int) -> bool:
    return any(e["event"] == "step_started" and e["step"] == step
               for e in journal(run_id)[since:])


def task_started(step: str, task: str, since: datetime | None = None):
    """A kill_when moment: the playbook of ``step`` has started the task ``task``
    (ansible-runner writes each event as it happens), at or after ``since`` if
    given (an earlier, killed attempt of the step may have started it too)."""
    def moment(run_id: str, _since: int) -> bool:
        return any(event.get("event") == "playbook_on_task_start"
                   and event.get("event_data", {}).get("task") == task
                   and (since is None or datetime.fromisoformat(event["created"]) >= since)
                   for event in job_events(RUNS / run_id / "ansible" / step))
    return moment


def kill_when(args: list[str], run_id: str | None, what: str, moment,
               delay: float = 0.0) -> str:
    """Start drkit with ``args`` (a resume when ``run_id`` is given), SIGKILL it
    ``delay`` seconds after ``moment(run_id, since)`` holds; the run's id."""
    since = len(journal(run_id)) if run_id else 0
    proc = subprocess.Popen([sys.executable, "-m", "drkit", *args], cwd=PROJECT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        if run_id is None:
            wait("the run's journal", lambda: RUNS.exists() and any(
                (d / "journal.jsonl").exists()
                and read_events(d / "journal.jsonl")[0]["pid"] == proc.pid
                for d in RUNS.iterdir()), 60)
            run_id = next(d.name for d in RUNS.iterdir() if (d / "journal.jsonl").exists()
                          and read_events(d / "journal.jsonl")[0]["pid"] == proc.pid)
        # A run that ends first (it failed) fails the test at once, not after 900 s.
        wait(what, lambda: proc.poll() is not None or moment(run_id, since), 900)
        if proc.poll() is not None:
            output = proc.stdout.read() if proc.stdout else ""
            raise AssertionError(f"drkit {' '.join(args)} exited {proc.returncode} before "
                                 f"{what}:\n{output[-3000:]}")
        time.sleep(delay)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
    assert_no_playbook_outlives(run_id)
    return run_id


def assert_no_playbook_outlives(run_id: str) -> None:
    """No process of a playbook the killed drkit was running lives on (each has a
    session of its own, out of reach of the kill), and the runner's env files,
    which may hold credentials, are gone. Nothing else runs playbooks meanwhile."""
    wait("the killed run's playbooks to go", lambda: not playbook_processes(), 15)
    # The guard deletes the env files after it has reaped the processes: a moment later.
    wait("the killed run's env files to go",
         lambda: not list((RUNS / run_id / "ansible").glob("*/env/envvars")), 15)


def playbook_processes() -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and f"{RUN_TOKEN_ENV}=".encode() in (
                    proc / "environ").read_bytes():
                found.append(int(proc.name))
        except OSError:
            continue
    return found


def assert_baseline_streaming(lab) -> dict:
    """us-east is the primary, db. answers it, every other node streams from it
    (the baseline topology a test that moved the primary leaves behind)."""
    primary = lab.db_node(BASELINE_PRIMARY)["ip"]

    def streaming() -> bool:
        topo = database.topology()
        return topo["primary_node"] == BASELINE_PRIMARY and all(
            topo["nodes"][n.key].get("streaming") for n in replica_nodes())

    wait("every replica to stream from the restored primary", streaming, 120)
    topo = database.topology()
    for node in replica_nodes():
        receiver = topo["nodes"][node.key]["receiver"]
        assert receiver["sender_host"] == primary, (node.key, receiver)
    assert controller.dns_answers()["addresses"] == [primary]
    return topo


class DnsSampler:
    """Samples what db.lab.internal resolves to, five times a second."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, list[str]]] = []
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="dns-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            answer = controller.dns_answers(timeout=0.5)
            if answer.get("answering"):
                self.samples.append((time.time(), answer.get("addresses", [])))
            self._stop.wait(0.2)

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(timeout=5)

    def __enter__(self) -> DnsSampler:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def several_at_once(self) -> list[tuple[float, list[str]]]:
        """Samples that named more than one address (two writable primaries)."""
        return [(t, a) for t, a in self.samples if len(a) > 1]


def assert_no_write_lost(report: dict, dns: DnsSampler | None = None) -> None:
    """The canary lost no acknowledged write (its longest write gap printed), and
    db. never named two hosts while ``dns`` sampled it."""
    print(f"canary: {report['acknowledged']} acknowledged, {report['lost']} lost, longest "
          f"write gap {report['write_unavailable_s']} s")
    assert report["acknowledged"] > 0 and report["lost"] == 0, report
    if dns is not None:
        assert dns.samples and not dns.several_at_once(), dns.several_at_once()[:3]
