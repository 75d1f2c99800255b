"""No process of a playbook outlives the drkit that started it, even a drkit
killed with SIGKILL.

Every process of one playbook run carries a token in its environment
(``DRKIT_PLAYBOOK_RUN``), whatever session it put itself in: ansible-runner's
pexpect child has a session of its own and ignores SIGHUP, and so does Mitogen's
connection process. Killing by token is the only way to reach them all.

- ``reap(token)`` kills them; the driver calls it when a playbook ends or times out.
- ``Guard(token, remove=files)`` starts a small process that waits on a pipe only
  drkit holds open. When drkit closes it, or dies (even by SIGKILL), the guard
  reaps the token, then deletes ``files`` (the runner's env files, which may hold
  credentials). Without it a killed drkit left its playbook acting on the hosts,
  found still running hours later, while ``--resume`` ran the same playbook again.

This file runs as the guard's script (``python -I -S reaper.py FD TOKEN [FILE...]``):
it imports nothing but the standard library.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable

#: Environment variable that marks every process of one playbook run.
RUN_TOKEN_ENV = "DRKIT_PLAYBOOK_RUN"


def reap(token: str, wait_s: float = 5.0) -> list[int]:
    """SIGKILL every process that still carries ``token``, until none does (or
    ``wait_s`` has passed); their pids.

    A killed process takes a moment to go, and one may fork as it is killed, so
    the scan repeats until it finds none.
    """
    killed: list[int] = []
    deadline = time.monotonic() + wait_s
    while True:
        alive = carrying(token)
        if not alive or time.monotonic() >= deadline:
            return killed
        for pid in alive:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
            if pid not in killed:
                killed.append(pid)
        time.sleep(0.05)


def carrying(token: str) -> list[int]:
    """Live processes whose environment holds ``token`` (a zombie's environment
    reads empty: it is gone)."""
    marker = f"{RUN_TOKEN_ENV}={token}".encode()
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry.name}/environ", "rb") as f:
                if marker in f.read().split(b"\0"):
                    found.append(int(entry.name))
        except OSError:
            continue  # gone, or not ours to read
    return found


class Guard:
    """Reaps ``token`` and deletes ``remove`` when ``close()`` is called or this
    process dies.

    The guard runs in a session of its own, so a Ctrl-C or a ``kill -- -PGID``
    aimed at drkit does not reach it, and it holds nothing but the pipe's read end.
    """

    def __init__(self, token: str, remove: Iterable[str | os.PathLike] = ()) -> None:
        read_end, self._write_end = os.pipe()  # both close-on-exec: no child inherits
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-I", "-S", os.path.abspath(__file__), str(read_end), token,
                 *map(str, remove)],
                pass_fds=(read_end,), start_new_session=True, stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        except BaseException:
            os.close(self._write_end)
            raise
        finally:
            os.close(read_end)

    def close(self) -> None:
        """Let the guard reap and clean up now; wait for it."""
        with contextlib.suppress(OSError):
            os.close(self._write_end)
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()

    def __enter__(self) -> Guard:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _guard(fd: int, token: str, remove: list[str]) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while os.read(fd, 512):  # drkit never writes: this returns at EOF
        pass
    reap(token)
    for path in remove:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


if __name__ == "__main__":
    _guard(int(sys.argv[1]), sys.argv[2], sys.argv[3:])
