"""What a restore onto the live estate would overwrite and lose (RB-DR-006
``--into db``), worked out before anything changes so an approval can name it.

The topology is discovered (``postgres.topology``): the primary's host, its data
directory, the replicas that will be rebuilt from the restored primary, where
db. points, and how much committed data the restore throws away from the
service (every commit after the target time; it stays in the kept data
directory). The decision is a pure function over that topology, so each
refusal is a sentence a test can assert.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import psycopg

from drkit.checks.estate import db_credentials, dsn, topology_probe
from drkit.durations import format_duration
from drkit.registry import StepContext, probe

#: What ``--into`` may name: the estate's services a backup restores onto.
SERVICES = ("db",)


def assess(topo: dict[str, Any], *, service: str, target_time: datetime | None,
           now: datetime, data_dir: str | None) -> dict[str, Any]:
    """Problems (empty when the restore may proceed) and what it would overwrite."""
    problems: list[str] = []
    nodes = topo["nodes"]
    if service not in SERVICES:
        problems.append(f"unknown service {service!r}; a backup restores onto: "
                        f"{', '.join(SERVICES)}")
    if len(topo["primaries"]) > 1:
        problems.append(f"split brain: {', '.join(topo['primaries'])} all accept writes; "
                        "fence one by hand before restoring over either")
    key = topo["primary_node"] or topo["dns_primary_node"]
    primary = (nodes.get(key) or {}) if key else {}
    region = primary.get("region")
    if not key or not primary.get("host"):
        problems.append("no database primary found (none answers, and db. points at no "
                        "running db host): nothing to restore onto; rebuild the estate instead")
    elif topo["dns_primary_node"] not in (None, key):
        problems.append(f"db. points at {topo['dns_primary_node']}'s node but the primary "
                        f"is {key}: finish or undo that failover first")
    answering = bool(primary.get("reachable")) and primary.get("role") == "primary"
    replicas = sorted(k for k in nodes if k != key)
    for r in replicas:
        node = nodes[r]
        if not node.get("host"):
            problems.append(f"{r} has no running db instance to rebuild as a replica; "
                            "bring it back (or fail it out) first")
        elif not node.get("reachable"):
            problems.append(f"{r}'s db node ({node['host']}) does not answer "
                            f"({node.get('error') or 'unreachable'}); it could not be rebuilt")
    loss = estimate_loss(primary if answering else {}, target_time=target_time, now=now)
    return {
        "ok": not problems,
        "problems": problems,
        "service": service,
        "primary_region": region,
        "primary_node": key,
        "primary_host": primary.get("host"),
        "primary_answers": answering,
        "data_dir": data_dir,
        "timeline": primary.get("timeline"),
        "current_lsn": primary.get("current_lsn"),
        "replicas": replicas,
        "replica_hosts": {r: nodes[r].get("host") for r in replicas},
        "estimated_loss": loss,
    }


def estimate_loss(primary: dict[str, Any], *, target_time: datetime | None,
                  now: datetime) -> dict[str, Any]:
    """What the service loses: every commit after the target time (gone from the
    service, kept in the old data directory); to the end of the archive, nothing
    the primary archives before it stops."""
    where = (f" (its WAL is at {primary['current_lsn']} on timeline {primary.get('timeline')})"
             if primary.get("current_lsn") else "")
    if target_time is not None:
        seconds = max(0.0, (now - target_time).total_seconds())
        return {"seconds": round(seconds, 3), "since": target_time.isoformat(),
                "summary": f"every commit after {target_time:%Y-%m-%d %H:%M:%S}Z, the last "
                           f"{format_duration(seconds)} of writes{where}"}
    if primary:
        return {"seconds": 0.0, "since": None,
                "summary": "none: writes stop and the primary's last WAL is archived "
                           f"before it stops{where}"}
    return {"seconds": None, "since": None,
            "summary": "whatever the primary, which does not answer, did not archive "
                       "before it stopped"}


def _data_directory(ctx: StepContext, host: str, secret: str, prefer: str) -> str | None:
    """The primary's data directory as PostgreSQL reports it (pg_monitor may read it)."""
    creds = db_credentials(ctx, secret, sorted(ctx.env.regions, key=lambda r: r != prefer))
    try:
        with psycopg.connect(dsn(host, creds), connect_timeout=3, autocommit=True) as conn:
            row = conn.execute("SELECT current_setting('data_directory')").fetchone()
    except psycopg.Error:
        return None
    return str(row[0]) if row else None


@probe("restore.service")
def service_probe(ctx: StepContext, service: str, secret: str,
                  target_time: str = "") -> dict[str, Any]:
    """postgres.topology, then ``assess``: problems, the primary's host and data
    directory, the replicas to rebuild and the estimated loss, for the approval."""
    when = datetime.fromisoformat(target_time.replace("Z", "+00:00")) if target_time else None
    if when and when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    topo = topology_probe(ctx, secret)
    region = topo["primary_region"]
    host = topo["primary_host"]
    data_dir = _data_directory(ctx, host, secret, region) if host else None
    result = assess(topo, service=service, target_time=when, now=datetime.now(UTC),
                    data_dir=data_dir)
    if result["primary_region"]:
        ctx.decide(f"restoring onto the primary {result['primary_node']} "
                   f"{result['primary_host']}; rebuilding "
                   f"{', '.join(result['replicas']) or 'no replica'} from it")
    return result
