"""A real moto server for tests: started on 127.0.0.1 on a free port, stopped by PID.

Tests that talk to AWS APIs go through a real HTTP endpoint, exactly as drkit
does against the lab or AWS, instead of patching boto3 in-process::

    @pytest.fixture(scope="module")
    def moto_url():
        with running_moto_server() as url:
            yield url

    def test_x(moto_url):
        ddb = aws_client("dynamodb", moto_url)
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
#: Dummy credentials; moto accepts any, botocore refuses to sign without some.
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/moto-api/", timeout=1):
            return True
    except urllib.error.HTTPError:
        return True  # any HTTP reply means the server is up
    except OSError:
        return False


@contextlib.contextmanager
def running_moto_server(*, startup_timeout_s: float = 30.0, lab: bool = False
                        ) -> Iterator[str]:
    """Start ``moto_server`` as a subprocess, yield its URL, stop it by PID.

    ``lab=True`` starts the lab's control plane instead (drkit.lab.moto_server:
    moto with drkit's fixes and middleware, plain HTTP only). The server's output
    goes to a log file whose tail is shown if it fails to start. The process is
    always stopped (terminate, then kill) and reaped.
    """
    exe = shutil.which("moto_server")
    if exe is None:
        raise RuntimeError("moto_server is not on PATH: pip install 'moto[server]'")
    with tempfile.TemporaryDirectory(prefix="drkit-moto-") as tmp:
        log_path = Path(tmp) / "moto.log"
        for _attempt in range(3):  # the free port may be taken before moto binds it
            port = free_port()
            url = f"http://{HOST}:{port}"
            with open(log_path, "wb") as log:
                argv = [sys.executable, "-m", "drkit.lab.moto_server", "--host", HOST,
                        "--port", str(port)] if lab else [exe, "-H", HOST, "-p", str(port)]
                proc = subprocess.Popen(
                    argv,
                    stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                )
            try:
                deadline = time.monotonic() + startup_timeout_s
                while proc.poll() is None and time.monotonic() < deadline:
                    if _answers(url):
                        break
                    time.sleep(0.1)
                if proc.poll() is None and _answers(url):
                    yield url
                    return
            finally:
                _stop(proc)
        tail = log_path.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"moto_server did not start on {HOST}:\n{tail}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()  # signals proc.pid only
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def aws_client(service: str, endpoint_url: str, region: str = "us-west-2") -> Any:
    """A boto3 client for ``service`` at ``endpoint_url``, in its own session.

    A fresh session per call, so each thread of a test can have its own
    (boto3 sessions are not thread-safe).
    """
    import boto3

    session = boto3.session.Session(region_name=region, **CREDENTIALS)
    return session.client(service, endpoint_url=endpoint_url)
