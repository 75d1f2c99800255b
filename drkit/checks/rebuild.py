"""May a region be rebuilt from the backups (RB-DR-007), and what does the rebuild
start from? A pure function over the discovered topology (drkit.checks.estate),
so every refusal is a sentence a test can assert.

A rebuild is the last resort: the primary is lost and no replica can take over,
so the region's hosts are provisioned afresh and the database comes from the
backups. It refuses while the estate still has a way out that loses less: a
primary that answers (use a planned failover), or a replica in the region that
answers (promote it). ``force`` overrides the first only.
"""

from __future__ import annotations

from typing import Any

from drkit.checks.estate import region_findings, topology_probe
from drkit.checks.failover import replica_regions
from drkit.registry import StepContext, probe


def assess(topo: dict[str, Any], *, region: str, force: bool) -> dict[str, Any]:
    """Findings (empty when the rebuild may proceed) and the facts its steps use."""
    findings: list[str] = []
    nodes = topo["nodes"]
    current = topo["primary_region"]  # answers as primary, else None
    old = current or topo["dns_primary_region"]
    findings += region_findings(topo, region)
    if current == region:
        findings.append(f"{region} holds the primary, which answers: there is nothing to "
                        "rebuild there")
    elif current and not force:
        findings.append(f"the primary in {current} ({topo['primary_host']}) answers and "
                        "accepts writes: the estate is not lost. A planned move is drkit "
                        f"failover --region {region}; --force rebuilds anyway (the primary "
                        "is fenced and what it wrote after the last archived WAL is lost)")
    if any(n.get("role") == "replica" for n in _in_region(nodes, region)):
        findings.append(f"{region}'s database answers as a replica: the region is not lost; "
                        f"promote it instead (drkit failover --region {region}"
                        f"{'' if current else ' --mode unplanned'}), which loses less")
    answering = [n for n in nodes.values() if n.get("role") in ("primary", "replica")]
    return {
        "findings": findings,
        "old_primary_region": old,
        "old_primary_reachable": current is not None,
        # The region's old instances are gone or are rebuilt over: nothing to fence.
        "fence_region": old if old and old != region else "",
        "remaining_replicas": replica_regions(topo, exclude=(region, old)),
        # Regions none of whose nodes answers.
        "lost_regions": sorted({n["region"] for n in nodes.values()}
                               - {n["region"] for n in nodes.values()
                                  if n.get("role") in ("primary", "replica")}),
        # The history to follow: the newest timeline a node that answers is on
        # ('' with none: the newest the archive holds).
        "timeline_hint": max((int(n["timeline"]) for n in answering if n.get("timeline")),
                             default=""),
    }


def _in_region(nodes: dict[str, Any], region: str) -> list[dict[str, Any]]:
    return [n for n in nodes.values() if n["region"] == region]


@probe("rebuild.readiness")
def readiness_probe(ctx: StepContext, region: str, secret: str,
                    force: bool = False) -> dict[str, Any]:
    """postgres.topology, then ``assess``: findings, the old primary's region (the
    one fenced), the replicas that still answer, the lost regions."""
    topo = topology_probe(ctx, secret, prefer_region=region)
    result = assess(topo, region=region, force=bool(force))
    result["topology"] = {r: {k: n.get(k) for k in ("role", "host", "timeline", "error")}
                          for r, n in topo["nodes"].items()}
    return result
