"""Probes of the machine drkit runs on: files, TCP ports, HTTP endpoints."""

from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request
from typing import Any

from drkit.registry import StepContext, probe


@probe("local.path")
def path_probe(ctx: StepContext, path: str) -> dict[str, Any]:
    """Whether a path exists, and what it is."""
    p = ctx.project.path(path)
    return {"path": str(p), "exists": p.exists(), "is_dir": p.is_dir(), "is_file": p.is_file()}


@probe("net.tcp")
def tcp_probe(ctx: StepContext, host: str, port: int, timeout: float = 2.0) -> dict[str, Any]:
    """Whether a TCP connection to host:port opens, and how long it took."""
    start = time.monotonic()
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            return {"open": True, "seconds": round(time.monotonic() - start, 3), "error": None}
    except OSError as exc:
        return {"open": False, "seconds": round(time.monotonic() - start, 3), "error": str(exc)}


@probe("http.get")
def http_probe(ctx: StepContext, url: str, timeout: float = 5.0) -> dict[str, Any]:
    """Status code and body of an HTTP GET (body cut to 2 kB)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            body = resp.read(2048).decode("utf-8", "replace")
            return {"status": resp.status, "body": body, "error": None}
    except urllib.error.HTTPError as exc:
        return {"status": exc.code, "body": "", "error": str(exc)}
    except OSError as exc:
        return {"status": None, "body": "", "error": str(exc)}
