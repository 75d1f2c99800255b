"""Can this region take over the database, and what would it cost? The decision
behind RB-DR-003's preflight, as a pure function over a discovered topology, so
every refusal is a sentence a test can assert.

The database comes either from the region's replica (``source`` replica, which
must answer) or, when no replica there can be promoted, from the backups
(``source`` backup: restored onto the region's database host from the
repositories; unplanned only, and what was not archived yet is lost).
"""

from __future__ import annotations

from typing import Any

from drkit.checks.estate import region_findings, topology_probe
from drkit.checks.postgres import parse_lsn
from drkit.durations import format_duration
from drkit.registry import StepContext, probe


def assess(topo: dict[str, Any], *, region: str, mode: str, allow_data_loss: bool,
           rpo_s: float, synchronous_regions: list[str], failback: bool = False,
           source: str = "replica") -> dict[str, Any]:
    """Findings (empty when the failover may proceed) and the facts later steps use."""
    findings: list[str] = []
    from_backup = source == "backup"
    nodes = topo["nodes"]
    target_key = target_node(topo, region, first=failback)
    target = nodes.get(target_key or "") or {}
    current = topo["primary_region"]
    old = current or topo["dns_primary_region"]
    old_node = topo.get("primary_node") or topo.get("dns_primary_node")
    findings += region_findings(topo, region)
    if current == region:
        findings.append(f"{region} already holds the primary: there is nothing to fail over")
    if failback:
        if current is None:
            findings.append("no reachable primary to fail back from; fail over first")
    elif from_backup:
        if mode != "unplanned":
            findings.append("--source backup restores the database from the backups, for a "
                            "lost primary only: use --mode unplanned")
        if target.get("role") == "replica":
            findings.append(f"{region}'s replica answers: promote it instead (drop --source "
                            "backup); it holds more than the archive")
        elif target_key and not target.get("host"):
            findings.append(f"{region} has no running database host to restore onto "
                            f"({target.get('error') or 'none found'}); bring one up first "
                            "(drkit replace-node)")
    elif target_key and target.get("role") != "replica":
        why = target.get("error") or f"its node is {target.get('role') or 'unreachable'}"
        findings.append(f"{region} has no reachable database replica to promote ({why})")
    synchronous = region in synchronous_regions or target.get("sync_state") == "sync"
    estimate = (_BACKUP_LOSS if from_backup else
                _estimate(topo, target, mode=mode, synchronous=synchronous, failback=failback))
    if mode == "planned" and not failback and not from_backup:
        if current is None:
            findings.append(f"the primary ({old or 'unknown'}) does not answer: a planned "
                            "failover needs it; use --mode unplanned")
        elif target.get("role") == "replica" and not target.get("streaming"):
            findings.append(f"{region}'s replica is not streaming from the primary; it could "
                            "not catch up before the switch")
    if mode == "unplanned" and estimate["possible"] and not allow_data_loss \
            and (estimate["seconds"] is None or estimate["seconds"] > rpo_s):
        findings.append(
            f"{region} may lose data ({estimate['summary']}), more than the RPO target of "
            f"{format_duration(rpo_s)}; re-run with --allow-data-loss to accept it "
            "(an approval then shows the estimate)")
    return {
        "findings": findings,
        "old_primary_region": old,
        "old_primary_reachable": current is not None,
        "old_primary_node": old_node,
        "old_primary_host": (nodes.get(old_node or "") or {}).get("host"),
        "target_region": region,
        "target_node": target_key,
        "target_host": target.get("host"),
        "remaining_replicas": replica_regions(topo, exclude=(region, old)),
        # Every replica that answers, other than the one promoted: the old primary's
        # in-region standby too, which a region-keyed list would leave behind
        # (planned; unplanned, the fence stops the old region's instances).
        "repoint_nodes": [k for k in topo["replicas"] if k != target_key
                          and (mode == "planned" or failback
                               or nodes[k]["region"] != old)],
        "synchronous": synchronous,
        "estimated_loss": estimate,
        "unreachable": topo["unreachable"],
    }


def target_node(topo: dict[str, Any], region: str, first: bool = False) -> str | None:
    """The node of ``region`` a failover promotes: the region's first node while it
    streams (always with ``first``: a failback, whose rejoin makes it a replica
    again after this check), else the region's streaming replica that has received
    the most WAL, else the first node (whose state the findings then explain). None
    for a region the estate does not have."""
    mine = [k for k, n in topo["nodes"].items()
            if n["region"] == region and not n.get("unexpected")]
    if not mine:
        return None
    if first or (topo["nodes"][mine[0]].get("role") == "replica"
                 and topo["nodes"][mine[0]].get("streaming") is not False):
        return mine[0]
    streaming = [k for k in mine if topo["nodes"][k].get("role") == "replica"]
    return max(streaming, key=lambda k: received_lsn(topo["nodes"][k]), default=mine[0])


def replica_regions(topo: dict[str, Any], exclude: tuple[str | None, ...] = ()) -> list[str]:
    """The regions with a replica that answers, other than ``exclude``."""
    regions = {topo["nodes"][k]["region"] for k in topo["replicas"]}
    return sorted(r for r in regions if r not in exclude)


def received_lsn(node: dict[str, Any]) -> int:
    """How much WAL a replica has received (its replay position when it does not
    say), as a byte position; 0 when unknown."""
    return parse_lsn(node.get("receive_lsn") or node.get("replay_lsn")) or 0


_BACKUP_LOSS = {"possible": True, "seconds": None, "bytes": None,
                "summary": "restored from the backups: commits after the newest WAL segment "
                           "the archive holds are lost (up to archive_timeout's worth)"}


def _estimate(topo: dict[str, Any], target: dict[str, Any], *, mode: str, synchronous: bool,
              failback: bool) -> dict[str, Any]:
    """What an unplanned promotion of ``target`` may lose, and why we think so."""
    if mode == "planned" or failback:
        return {"possible": False, "seconds": 0.0, "bytes": 0,
                "summary": "none: writes stop and the target catches up before the switch"}
    if synchronous:
        return {"possible": False, "seconds": 0.0, "bytes": 0,
                "summary": "none: the target is a synchronous standby (every acknowledged "
                           "commit was flushed there)"}
    if topo["primary_region"] and target.get("lag_bytes") == 0:
        return {"possible": False, "seconds": 0.0, "bytes": 0,
                "summary": "none: the target has replayed everything the primary flushed"}
    delay = target.get("replay_delay_s")
    return {"possible": True, "seconds": delay, "bytes": target.get("lag_bytes"),
            "last_replay_at": target.get("last_replay_at"),
            "summary": ("asynchronous replica; commits after its last replayed one ("
                        + (f"{format_duration(delay)} ago" if delay is not None else "unknown")
                        + ") may be lost")}


@probe("failover.readiness")
def readiness_probe(ctx: StepContext, region: str, secret: str, mode: str = "planned",
                    allow_data_loss: bool = False, rpo_s: float = 0.0,
                    failback: bool = False, source: str = "replica") -> dict[str, Any]:
    """postgres.topology, then ``assess``: findings plus old primary, target host,
    remaining replicas and the estimated data loss."""
    topo = topology_probe(ctx, secret, prefer_region=region)
    sync = ((ctx.env.settings.get("postgres") or {}).get("synchronous_regions")
            or [])
    result = assess(topo, region=region, mode=mode, allow_data_loss=allow_data_loss,
                    rpo_s=float(rpo_s), synchronous_regions=list(sync), failback=failback,
                    source=source)
    result["topology"] = {key: {k: n.get(k) for k in (
        "region", "zone", "role", "host", "streaming", "sync_state", "lag_bytes", "replay_lsn",
        "flush_lsn", "last_replay_at", "timeline", "error")} for key, n in topo["nodes"].items()}
    return result
