"""Probes of the estate as a whole: which regions it has, where the database
primary really is, and how far each replica is behind.

The database topology is discovered, not assumed: the db instances of every
region come from the EC2 API (tags DrRegion, Role), each is asked over SQL
whether it is in recovery. Credentials come from the Secrets Manager secret of
a region that is up; the password never leaves this module.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from psycopg.conninfo import make_conninfo

from drkit import topology
from drkit.checks.aws import cloud_region, instances
from drkit.checks.dns import resolve
from drkit.checks.postgres import lag_bytes, replication_status
from drkit.redact import register_secret
from drkit.registry import StepContext, probe

#: The database credentials' secret, one per region (REGION: each region's name).
DB_SECRET = "drkit/{estate}/REGION/db-credentials"


def db_secret(env: Any) -> str:
    """The environment's database credentials secret (REGION still to fill)."""
    return DB_SECRET.format(estate=env.settings.get("estate", "lab"))


@probe("estate.region")
def region_probe(ctx: StepContext, region: str) -> dict[str, Any]:
    """Whether ``region`` is one of the environment's regions, and its settings."""
    regions = ctx.env.regions
    known = region in regions
    return {"region": region, "known": known, "known_regions": sorted(regions),
            "cloud_region": regions[region]["cloud_region"] if known else None,
            "planned_role": regions[region]["role"] if known else None}


def db_credentials(ctx: StepContext, secret: str, regions: list[str]) -> dict[str, Any]:
    """The database credentials from the first region whose Secrets Manager answers
    (the primary's region may be the one that is down)."""
    errors = []
    for region in regions:
        name = secret.replace("REGION", region)
        try:
            sm = ctx.env.client("secretsmanager", cloud_region(ctx, region))
            value = json.loads(sm.get_secret_value(SecretId=name)["SecretString"])
        except Exception as exc:  # try the next region; report all if none answers
            errors.append(f"{name}: {exc}")
            continue
        for key in ("password", "replication_password"):
            register_secret(value.get(key))
        return value
    raise RuntimeError("no region's Secrets Manager returned the database credentials: "
                       + "; ".join(errors))


def dsn(host: str, creds: dict[str, Any]) -> str:
    """libpq conninfo for ``host`` with the estate's credentials (never logged)."""
    return make_conninfo(host=host, port=str(creds.get("port", 5432)),
                         user=creds["username"], password=creds["password"],
                         dbname=creds.get("dbname", "postgres"))


def region_findings(topo: dict[str, Any], region: str) -> list[str]:
    """What rules out moving the database to ``region``, by failover or by rebuild: a
    region the estate does not have, a split brain."""
    nodes, found = topo["nodes"], []
    if region not in nodes:
        found.append(f"region {region} is not one of this environment's regions "
                     f"({', '.join(sorted(nodes))})")
    if len(topo["primaries"]) > 1:
        found.append(f"split brain: {', '.join(topo['primaries'])} all accept writes; "
                     "fence one by hand before anything else")
    return found


def db_instances_by_node(regions: dict[str, Any],
                         running: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Each database node of the estate (``drkit.topology``) with the running db
    instance that is it, or None. A region with one node: its first running db
    instance, whatever its zone. With several: the instance in the node's zone. An
    instance in no node's zone is a node of its own, ``unexpected``."""
    expected = topology.db_nodes(regions)
    out: dict[str, dict[str, Any]] = {}
    for region in sorted(regions):
        mine = [n for n in expected if n.region == region]
        dbs = running.get(region) or []
        for node in mine:
            inst = dbs[0] if len(mine) == 1 and dbs else \
                next((i for i in dbs if i.get("zone") == node.zone), None)
            out[node.key] = {**node.as_dict(), "instance": inst, "unexpected": False}
        claimed = {v["instance"]["id"] for v in out.values() if v["instance"] is not None}
        for inst in dbs:
            if inst["id"] in claimed:
                continue
            zone = inst.get("zone") or ""
            key = topology.stray_key(regions, region, zone)
            out[key] = {"key": key, "name": topology.pg_name(key), "region": region,
                        "zone": zone, "instance": inst, "unexpected": True}
    return out


@probe("postgres.topology")
def topology_probe(ctx: StepContext, secret: str, prefer_region: str | None = None,
                   timeout: float = 2.0) -> dict[str, Any]:
    """Every database node: reachable? primary or replica? streaming? lag?

    ``secret`` names the db credentials secret, REGION standing for the region
    (``drkit/lab/REGION/db-credentials``); ``prefer_region``'s copy is read first.
    Nodes are keyed by node key (``drkit.topology``: the region for a region's
    first node). Returns ``primary_node`` and ``primary_region`` (None when no
    reachable primary: the primary's region is down), ``primaries`` (node keys;
    more than one is split brain), ``nodes`` (key -> status with key, name, region,
    zone) and ``replicas`` (keys of the nodes in recovery)."""
    order = sorted(ctx.env.regions, key=lambda r: (r != prefer_region, r))
    running = {region: [i for i in instances(ctx, region, "db") if i["state"] == "running"]
               for region in sorted(ctx.env.regions)}
    # An estate with no database host at all (one to be built) needs no credentials.
    creds = db_credentials(ctx, secret, order) if any(running.values()) else {}
    by_node = db_instances_by_node(ctx.env.regions, running)
    # Every node at once: a dead one costs one timeout, not one per node after it.
    with ThreadPoolExecutor(max_workers=max(1, len(by_node))) as pool:
        asked = {key: pool.submit(replication_status, dsn(node["instance"]["ip"], creds),
                                  timeout=timeout)
                 for key, node in by_node.items() if node["instance"] is not None}
    nodes: dict[str, Any] = {}
    for key, node in by_node.items():
        inst = node.pop("instance")
        if inst is None:
            nodes[key] = {**node, "host": None, "reachable": False, "role": None,
                          "error": "no running db instance"}
            continue
        status = asked[key].result()
        status.update(node, host=inst["ip"], instance_id=inst["id"])
        nodes[key] = status
    primaries = [k for k, n in nodes.items() if n.get("role") == "primary"]
    primary = nodes[primaries[0]] if len(primaries) == 1 else None
    for n in nodes.values():
        if n.get("role") == "replica":
            n["lag_bytes"] = lag_bytes(primary.get("flush_lsn"), n.get("replay_lsn")) \
                if primary else None
            n["replay_delay_s"] = _age(n.get("last_replay_at"))
            sender = next((s for s in (primary or {}).get("senders", [])
                           if s["application_name"] == n["name"]), None)
            n["sync_state"] = sender["sync_state"] if sender else None
    dns = ctx.env.settings.get("dns") or {}
    dns_primary_node = None
    if dns.get("zone"):
        answer = resolve(f"db.{dns['zone']}", resolver=dns.get("resolver"))
        dns_primary_node = next((k for k, n in nodes.items()
                                 if n.get("host") and n["host"] in answer["addresses"]), None)
    return {
        "primary_node": primaries[0] if len(primaries) == 1 else None,
        "primary_region": primary["region"] if primary else None,
        # Where clients are sent: the primary's region when it cannot be asked.
        "dns_primary_node": dns_primary_node,
        "dns_primary_region": nodes[dns_primary_node]["region"] if dns_primary_node else None,
        "primary_host": primary["host"] if primary else None,
        "primaries": primaries,
        "replicas": sorted(k for k, n in nodes.items() if n.get("role") == "replica"),
        "unreachable": sorted(k for k, n in nodes.items() if not n.get("reachable")),
        "nodes": nodes,
    }


def _age(iso: str | None) -> float | None:
    if not iso:
        return None
    return round((datetime.now(UTC) - datetime.fromisoformat(iso)).total_seconds(), 3)
