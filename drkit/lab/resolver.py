"""The lab's DNS server: answers Route53 hosted zones from the control plane.

Route53's data plane answers a zone's records over DNS; this is that, for the
lab. It reads every hosted zone and its record sets from the endpoint (boto3,
nothing lab-specific but the URL) and keeps them at most ``max_age`` seconds,
so a Route53 UPSERT is answered within a second, with the record's own TTL.
Names under a known zone that do not exist are NXDOMAIN; names outside every
zone are REFUSED: the lab never forwards to the internet.

The cloud's own service names (the S3 endpoint pgBackRest reaches over TLS,
``s3.cloud.lab``) are answered from ``--static NAME=ADDRESS`` pairs, as a VPC
resolver answers a private endpoint's name: they are the cloud's, not a zone
of the estate's.

Run it with ``python -m drkit.lab.resolver`` (the controller starts it inside
the gateway namespace on 10.77.0.2:53, UDP and TCP).
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from dnslib import QTYPE, RCODE, RR
from dnslib.server import BaseResolver, DNSLogger, DNSServer

from drkit.lab import paths

log = logging.getLogger("drkit.lab.resolver")

#: How many CNAME hops are followed inside the lab zones before giving up.
MAX_CNAME_CHAIN = 8


def _fqdn(name: str) -> str:
    """Lower-case, dot-terminated, with Route53's octal escape for ``*`` undone."""
    name = name.replace("\\052", "*").lower()
    return name if name.endswith(".") else name + "."


@dataclass
class Zone:
    """One hosted zone: its name and record sets by owner name and type."""

    name: str
    private: bool
    # owner name -> type -> (ttl, [values])
    records: dict[str, dict[str, tuple[int, list[str]]]] = field(default_factory=dict)

    def soa(self) -> RR | None:
        entry = self.records.get(self.name, {}).get("SOA")
        if entry is None:
            return None
        return _rr(self.name, "SOA", entry[0], entry[1][0])


def _rr(name: str, rtype: str, ttl: int, value: str) -> RR:
    """One resource record from Route53's textual value (zone-file syntax)."""
    return RR.fromZone(f"{name} {ttl} IN {rtype} {value}")[0]


def _value(text: str) -> str:
    """A record value as Route53 should return it.

    moto 5.2 returns the zone's default SOA as the repr of a dict
    (``"{'Value': 'ns-2048... 86400'}"``); unwrap that, pass anything else through.
    """
    if text.startswith("{'Value': ") and text.endswith("}"):
        with contextlib.suppress(ValueError, SyntaxError):
            inner = ast.literal_eval(text)
            if isinstance(inner, dict) and isinstance(inner.get("Value"), str):
                return inner["Value"]
    return text


def load_zones(route53: Any) -> dict[str, Zone]:
    """Every hosted zone and its record sets, keyed by zone name.

    Where a private and a public zone share a name (split-horizon), the private
    one wins: the lab's clients sit inside the VPC.
    """
    zones: dict[str, Zone] = {}
    for page in route53.get_paginator("list_hosted_zones").paginate():
        for hz in page["HostedZones"]:
            private = bool(hz.get("Config", {}).get("PrivateZone"))
            zone = Zone(_fqdn(hz["Name"]), private)
            for rpage in route53.get_paginator("list_resource_record_sets").paginate(
                HostedZoneId=hz["Id"]
            ):
                for rrset in rpage["ResourceRecordSets"]:
                    values = [_value(r["Value"]) for r in rrset.get("ResourceRecords", [])]
                    if not values:
                        continue  # alias records: not used by the lab
                    zone.records.setdefault(_fqdn(rrset["Name"]), {})[rrset["Type"]] = (
                        int(rrset.get("TTL", 300)), values)
            if zone.name not in zones or (private and not zones[zone.name].private):
                zones[zone.name] = zone
    return zones


class ZoneCache:
    """Hosted zones read from the control plane, refreshed when older than
    ``max_age`` seconds. Answers never wait for the control plane: the first load
    is synchronous, later refreshes run in the background while the current copy
    is served (so staleness is max_age plus one control-plane round trip, however
    busy moto is). When the control plane does not answer, the last copy is served
    (like Route53's data plane surviving a control-plane outage) and the failure is
    logged."""

    def __init__(self, route53: Any, max_age: float = 0.5,
                 static: dict[str, Zone] | None = None) -> None:
        self._route53 = route53
        self._static = dict(static or {})
        self._max_age = max_age
        self._zones: dict[str, Zone] | None = None
        self._loaded_at = float("-inf")
        self._lock = threading.Lock()
        self._refreshing = False

    def zones(self) -> dict[str, Zone]:
        with self._lock:
            if self._zones is None:
                self._refresh()
                return self._zones or {}
            stale = time.monotonic() - self._loaded_at > self._max_age
            if stale and not self._refreshing:
                self._refreshing = True
                threading.Thread(target=self._refresh_in_background, daemon=True).start()
            return self._zones

    def _refresh_in_background(self) -> None:
        try:
            self._refresh()
        finally:
            self._refreshing = False

    def _refresh(self) -> None:
        started = time.monotonic()
        try:
            zones = load_zones(self._route53)
        except Exception as exc:  # any botocore/connection error: serve stale
            log.warning("control plane did not answer (%s); serving last zones", exc)
            if self._zones is None:
                self._zones = dict(self._static)
            return
        self._zones, self._loaded_at = {**zones, **self._static}, started

    def zone_for(self, qname: str) -> Zone | None:
        """The most specific zone that ``qname`` belongs to, if any."""
        best: Zone | None = None
        for name, zone in self.zones().items():
            if (qname == name or qname.endswith("." + name)) and (
                best is None or len(name) > len(best.name)
            ):
                best = zone
        return best


def static_zones(pairs: dict[str, str]) -> dict[str, Zone]:
    """A zone per name (``s3.cloud.lab`` -> ``10.77.0.2``), each holding its A record."""
    zones: dict[str, Zone] = {}
    for name, address in pairs.items():
        fqdn = _fqdn(name)
        zones[fqdn] = Zone(fqdn, True, {fqdn: {"A": (60, [address])}})
    return zones


class Route53Resolver(BaseResolver):
    """dnslib resolver over a ZoneCache (authoritative answers only)."""

    def __init__(self, cache: ZoneCache) -> None:
        self.cache = cache

    def resolve(self, request: Any, handler: Any) -> Any:
        try:
            return self._answer(request)
        except Exception:  # a record we cannot encode must not kill the server thread
            log.exception("cannot answer %s", request.q)
            reply = request.reply()
            reply.header.rcode = RCODE.SERVFAIL
            return reply

    def _answer(self, request: Any) -> Any:
        reply = request.reply()
        reply.header.ra = 0  # authoritative only: no recursion offered
        qname = _fqdn(str(request.q.qname))
        qtype = QTYPE[request.q.qtype]
        zone = self.cache.zone_for(qname)
        if zone is None:
            reply.header.rcode = RCODE.REFUSED
            return reply
        reply.header.aa = 1
        name = qname
        for hop in range(MAX_CNAME_CHAIN):
            rrsets = zone.records.get(name)
            if rrsets is None:
                if hop == 0:
                    reply.header.rcode = RCODE.NXDOMAIN
                break
            wanted = [t for t in rrsets if qtype in (t, "ANY")]
            if wanted:
                for rtype in wanted:
                    ttl, values = rrsets[rtype]
                    reply.add_answer(*[_rr(name, rtype, ttl, v) for v in values])
                return reply
            if "CNAME" not in rrsets:
                break  # the name exists, without this type: NOERROR, no data
            ttl, values = rrsets["CNAME"]
            reply.add_answer(_rr(name, "CNAME", ttl, values[0]))
            name = _fqdn(values[0])
            if not (name == zone.name or name.endswith("." + zone.name)):
                return reply  # the target is outside the zone: the client follows it
        soa = zone.soa()
        if soa is not None:
            reply.add_auth(soa)
        return reply


def serve(address: str, port: int, endpoint_url: str, max_age: float,
          static: dict[str, str] | None = None) -> None:
    """Answer on address:port over UDP and TCP until killed."""
    from drkit.lab.control_plane import client

    cache = ZoneCache(client("route53", "us-east-1", endpoint_url), max_age=max_age,
                      static=static_zones(static or {}))
    # Load the zones once before opening the ports, so the first answer is fast and
    # "the port answers" means "the resolver is ready".
    cache.zones()
    resolver = Route53Resolver(cache)
    quiet = DNSLogger("-request,-reply,-truncated,-recv,-send,-data")
    servers = [DNSServer(resolver, port=port, address=address, tcp=tcp, logger=quiet)
               for tcp in (False, True)]
    for server in servers:
        server.start_thread()
    log.info("answering Route53 zones from %s on %s:%d (udp+tcp, max age %.1f s)",
             endpoint_url, address, port, max_age)
    while all(s.isAlive() for s in servers):
        time.sleep(1)
    raise SystemExit("a DNS server thread died")


NAME = "resolver"


def start_resolver(lab: paths.LabPaths, *, timeout: float = 20.0) -> tuple[Any, float]:
    """Start this module inside the gateway namespace; return its pid record and
    the seconds until it answered over TCP (UDP is bound first, in the same process)."""
    import sys

    from drkit.lab.control_plane import child_env
    from drkit.lab.processes import start, wait_for_port

    argv = ["ip", "netns", "exec", paths.GATEWAY_NS, sys.executable, "-m", "drkit.lab.resolver",
            "--address", paths.GATEWAY_ADDR, "--port", str(paths.DNS_PORT),
            "--endpoint-url", paths.CONTROL_PLANE_URL,
            "--static", f"{paths.S3_TLS_NAME}={paths.GATEWAY_ADDR}"]
    record = start(NAME, argv, pid_file=lab.pid_file(NAME), log_file=lab.log_file(NAME),
                   env=child_env())
    return record, wait_for_port(paths.GATEWAY_ADDR, paths.DNS_PORT, timeout=timeout,
                                 record=record)


def stop_resolver(lab: paths.LabPaths) -> str:
    from drkit.lab.processes import stop

    return stop(lab.pid_file(NAME))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m drkit.lab.resolver", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--address", default=paths.GATEWAY_ADDR)
    parser.add_argument("--port", type=int, default=paths.DNS_PORT)
    parser.add_argument("--endpoint-url", default=paths.CONTROL_PLANE_URL)
    parser.add_argument("--max-age", type=float, default=0.5,
                        help="seconds a copy of the zones is served before re-reading")
    parser.add_argument("--static", action="append", default=[], metavar="NAME=ADDRESS",
                        help="a name of the cloud's own, answered with this A record")
    args = parser.parse_args(argv)
    static = {}
    for pair in args.static:
        name, sep, address = pair.partition("=")
        if not sep or not name or not address:
            parser.error(f"--static {pair!r}: expected NAME=ADDRESS")
        static[name] = address
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    serve(args.address, args.port, args.endpoint_url, args.max_age, static)


if __name__ == "__main__":
    main()
