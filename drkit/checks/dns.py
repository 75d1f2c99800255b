"""DNS probes: ask a resolver over the DNS protocol what clients will be told."""

from __future__ import annotations

import socket
from typing import Any

from dnslib import QTYPE, RCODE, DNSRecord

from drkit.registry import StepContext, probe


def resolve(name: str, *, resolver: str | None, qtype: str = "A",
            timeout: float = 2.0) -> dict[str, Any]:
    """Resolve ``name`` through ``resolver`` (an address; port 53), or through the
    system resolver when None. Returns {answering, rcode, addresses, ttl}."""
    if not resolver:
        try:
            infos = socket.getaddrinfo(name, None, family=socket.AF_INET)
        except socket.gaierror as exc:
            return {"name": name, "answering": False, "rcode": None, "addresses": [],
                    "ttl": None, "error": str(exc)}
        return {"name": name, "answering": True, "rcode": "NOERROR",
                "addresses": sorted({i[4][0] for i in infos}), "ttl": None, "error": None}
    host, _, port = resolver.partition(":")
    try:
        raw = DNSRecord.question(name, qtype).send(host, int(port or 53), timeout=timeout)
    except OSError as exc:
        return {"name": name, "answering": False, "rcode": None, "addresses": [],
                "ttl": None, "error": f"resolver {resolver}: {exc}"}
    reply = DNSRecord.parse(raw)
    rrs = [rr for rr in reply.rr if rr.rtype == getattr(QTYPE, qtype)]
    return {"name": name, "answering": True, "rcode": RCODE[reply.header.rcode],
            "addresses": sorted(str(rr.rdata) for rr in rrs),
            "ttl": min((rr.ttl for rr in rrs), default=None), "error": None}


@probe("dns.resolve")
def resolve_probe(ctx: StepContext, name: str, resolver: str | None = None,
                  qtype: str = "A") -> dict[str, Any]:
    """What ``name`` resolves to through the environment's resolver
    (``drkit.dns.resolver``) unless another is given."""
    resolver = resolver or (ctx.env.settings.get("dns") or {}).get("resolver")
    return resolve(name, resolver=resolver, qtype=qtype)
