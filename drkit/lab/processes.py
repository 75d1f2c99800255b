"""Background processes of the lab, started and stopped by pid file.

The lab must kill only what it started. A pid file therefore records the pid
*and* the process start time (from /proc), so a pid reused by an unrelated
process after a reboot or a crash is never signalled. Files are written
atomically; a process is "gone" once /proc/PID has vanished or is a zombie.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from drkit.errors import LabError
from drkit.fsutil import atomic_write_json
from drkit.procinfo import is_alive, start_time, still_running


def reap(pid: int) -> None:
    """Collect ``pid``'s exit status if it is our child (no-op otherwise)."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def wait_gone(pids: Sequence[int], timeout: float = 10.0) -> list[int]:
    """Wait until every pid has vanished; return those still alive at the timeout."""
    deadline = time.monotonic() + timeout
    remaining = list(pids)
    while remaining:
        for pid in remaining:
            reap(pid)
        remaining = [p for p in remaining if is_alive(p)]
        if not remaining or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    return remaining


def kill_pids(pids: Sequence[int], *, sig: int = signal.SIGKILL, timeout: float = 10.0) -> None:
    """Signal each pid and wait for all to vanish; LabError if any survives."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
    left = wait_gone(pids, timeout)
    if left:
        raise LabError(f"processes {left} survived signal {sig} for {timeout:.0f} s")


@dataclass(frozen=True)
class PidRecord:
    """What a pid file holds: enough to recognise the very process we started."""

    name: str
    pid: int
    start_time: int
    argv: list[str]
    log: str

    def matches(self) -> bool:
        """True if the recorded process is still the one running under that pid."""
        return still_running(self.pid, self.start_time)


def read_pid_file(path: Path) -> PidRecord | None:
    """The record in ``path``, or None if there is no (readable) pid file."""
    try:
        data = json.loads(Path(path).read_text())
        return PidRecord(**data)
    except (FileNotFoundError, ValueError, TypeError):
        return None


def start(
    name: str,
    argv: Sequence[str],
    *,
    pid_file: Path,
    log_file: Path,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> PidRecord:
    """Start ``argv`` in its own session, output to ``log_file``, and record its pid.

    Refuses to start a second copy while the pid file names a live process.
    """
    existing = read_pid_file(pid_file)
    if existing is not None and existing.matches():
        raise LabError(
            f"{name} already runs (pid {existing.pid}, pid file {pid_file})",
            hint="run `lab down` first, or use the running lab",
        )
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab") as log:
        proc = subprocess.Popen(
            list(argv), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            env=env, cwd=cwd, start_new_session=True,
        )
    started = start_time(proc.pid)
    if started is None:
        raise LabError(f"{name} exited at once; see {log_file}")
    record = PidRecord(name, proc.pid, started, list(argv), str(log_file))
    atomic_write_json(pid_file, record.__dict__)
    return record


def stop(pid_file: Path, *, timeout: float = 5.0) -> str:
    """Stop the process a pid file names (TERM, then KILL), remove the file.

    Returns one line saying what was done, for the caller's progress output.
    """
    record = read_pid_file(pid_file)
    if record is None:
        with contextlib.suppress(FileNotFoundError):
            pid_file.unlink()
        return f"{pid_file.name}: no pid file, nothing to stop"
    if not record.matches():
        reap(record.pid)
        pid_file.unlink()
        return f"{record.name}: pid {record.pid} already gone"
    with contextlib.suppress(ProcessLookupError):
        os.kill(record.pid, signal.SIGTERM)
    if wait_gone([record.pid], timeout):
        kill_pids([record.pid])
        outcome = "killed (did not stop on TERM)"
    else:
        outcome = "stopped"
    pid_file.unlink()
    return f"{record.name}: pid {record.pid} {outcome}"


def stop_many(pid_files: Sequence[Path], *, timeout: float = 5.0) -> list[str]:
    """Stop several processes at once: TERM to all, then wait for all together
    (each one's shutdown time overlaps the others'). One line per process."""
    records = {f: read_pid_file(f) for f in pid_files}
    for record in records.values():
        if record is not None and record.matches():
            with contextlib.suppress(ProcessLookupError):
                os.kill(record.pid, signal.SIGTERM)
    live = [r.pid for r in records.values() if r is not None and r.matches()]
    wait_gone(live, timeout)
    return [stop(f, timeout=0.5) for f in pid_files]


def port_open(host: str, port: int, timeout: float = 0.2) -> bool:
    """True if a TCP connection to host:port succeeds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for_port(
    host: str, port: int, *, timeout: float = 20.0, record: PidRecord | None = None
) -> float:
    """Wait until host:port accepts TCP connections; return the seconds it took.

    With ``record``, fail fast (pointing at its log) if that process dies first.
    """
    t0 = time.monotonic()
    while not port_open(host, port):
        if record is not None and not record.matches():
            raise LabError(f"{record.name} exited before {host}:{port} answered; see {record.log}")
        if time.monotonic() - t0 > timeout:
            where = f"; see {record.log}" if record else ""
            raise LabError(f"{host}:{port} did not answer within {timeout:.0f} s{where}")
        time.sleep(0.05)
    return time.monotonic() - t0
