"""HTTP smoke probes that resolve names the way the estate's clients do (through
the environment's resolver), so a smoke test follows a DNS cutover."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from drkit.checks.dns import resolve
from drkit.registry import StepContext, probe


def request(url: str, *, resolver: str | None, method: str = "GET", body: Any = None,
            timeout: float = 5.0) -> dict[str, Any]:
    """One HTTP request to ``url`` with its host resolved through ``resolver``
    (the first A record). JSON bodies are decoded."""
    parts = urlsplit(url)
    answer = resolve(parts.hostname or "", resolver=resolver)
    if not answer["addresses"]:
        why = answer.get("error") or answer["rcode"]
        return {"url": url, "status": None, "address": None, "json": None, "body": "",
                "error": f"{parts.hostname} did not resolve: {why}"}
    address = answer["addresses"][0]
    netloc = address + (f":{parts.port}" if parts.port else "")
    target = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(target, data=data, method=method,
                                 headers={"Host": parts.netloc,
                                          "Content-Type": "application/json"})
    start = time.monotonic()
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, raw = resp.status, resp.read(65536).decode("utf-8", "replace")
            error = None
    except urllib.error.HTTPError as exc:
        status, raw, error = exc.code, exc.read(4096).decode("utf-8", "replace"), str(exc)
    except OSError as exc:
        status, raw, error = None, "", str(exc)
    try:
        decoded = json.loads(raw) if raw else None
    except ValueError:
        decoded = None
    return {"url": url, "address": address, "status": status, "json": decoded,
            "body": raw[:2048], "error": error,
            "seconds": round(time.monotonic() - start, 3)}


def _resolver(ctx: StepContext, resolver: str | None) -> str | None:
    return resolver or (ctx.env.settings.get("dns") or {}).get("resolver")


@probe("http.request")
def request_probe(ctx: StepContext, url: str, method: str = "GET", body: Any = None,
                  resolver: str | None = None, timeout: float = 5.0) -> dict[str, Any]:
    """An HTTP request through the environment's resolver: status, JSON body, address."""
    return request(url, resolver=_resolver(ctx, resolver), method=method, body=body,
                   timeout=timeout)


@probe("http.write_read")
def write_read_probe(ctx: StepContext, base_url: str, resolver: str | None = None,
                     attempts: int = 20, interval: float = 0.5) -> dict[str, Any]:
    """The smoke test of a service that writes: POST /write, then GET /read/<id>
    returns it. Retried while the service reconnects after a cutover (it is
    read-only from the outside: it only proves a write path works)."""
    res = _resolver(ctx, resolver)
    last: dict[str, Any] = {}
    for attempt in range(1, int(attempts) + 1):
        wrote = request(f"{base_url}/write", resolver=res, method="POST",
                        body={"source": "drkit-smoke"})
        ident = (wrote.get("json") or {}).get("id")
        if wrote["status"] in (200, 201) and ident is not None:
            read = request(f"{base_url}/read/{ident}", resolver=res)
            if read["status"] == 200:
                return {"ok": True, "attempts": attempt, "id": ident,
                        "address": wrote["address"], "write": wrote["json"],
                        "read": read["json"]}
            last = {"stage": "read", **read}
        else:
            last = {"stage": "write", **wrote}
        ctx.progress(f"smoke attempt {attempt}: {last.get('stage')} -> "
                     f"{last.get('status')} {last.get('error') or ''}")
        time.sleep(float(interval))
    return {"ok": False, "attempts": int(attempts), "last": last}
