"""db-recovery's decision: which runbook answers a database failure, as a pure
function over the discovered topology (drkit.checks.estate), so every choice and
every refusal is a sentence a test can assert.

- primary-failure: the standby is promoted. A dead primary whose region runs a
  standby that answers (two database nodes in two zones) is taken over by it
  in the region: RB-DR-001, as `replace-node --host` the dead node (zero loss,
  nothing moves region, the dead node rebuilt as the new standby). Otherwise,
  or with --target-region, the standby is another region's replica: the
  synchronous one unless --target-region names another. RB-DR-003, unplanned
  when the primary does not answer.
- region-failure: the replica in --target-region is promoted (RB-DR-003). With no
  replica answering there, the database is restored onto that region's database
  host from the backups (RB-DR-003 --source backup: the region's own repository
  first), which loses what was not archived yet, so it needs --allow-data-loss.
- corruption: RB-DR-004's rewind (decided by drkit.cli.db, no topology needed).

A request that does not fit the estate raises ConfigError (exit 2, nothing changed).
A primary that answers has not failed: moving it anyway needs --force, and is a
planned (zero-loss) switchover.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from drkit.checks.failover import target_node
from drkit.errors import ConfigError

FAILOVER_RUNBOOK = "RB-DR-003"
NODE_RUNBOOK = "RB-DR-001"
CORRUPTION_RUNBOOK = "RB-DR-004"
SCENARIOS = ("primary-failure", "region-failure", "corruption")


@dataclass(frozen=True)
class Decision:
    """What db-recovery runs: the runbook, its parameters, and the decision line
    printed and journaled ("region-failure: ...")."""

    runbook: str
    params: dict[str, Any]
    line: str


def decide_failover(topo: dict[str, Any], *, scenario: str, target_region: str,
                    force: bool, allow_data_loss: bool,
                    synchronous_regions: list[str]) -> Decision:
    """primary-failure and region-failure: the region whose replica is promoted."""
    nodes = topo["nodes"]
    regions = sorted({n["region"] for n in nodes.values()})
    current = topo["primary_region"]  # answers as primary, else None
    failed = current or topo["dns_primary_region"] or "the primary's region"
    if len(topo.get("primaries", [])) > 1:
        raise ConfigError(f"{', '.join(topo['primaries'])} all accept writes (split brain)",
                          hint="fence one by hand first; nothing was changed")
    if target_region and target_region not in regions:
        raise ConfigError(f"--target-region {target_region!r} is not one of this "
                          "environment's regions",
                          hint=f"use one of: {', '.join(regions)}")
    if target_region and target_region == failed:
        raise ConfigError(f"{target_region} holds the primary: it is the region to recover "
                          "from", hint=f"name the region to recover into: "
                                       f"{', '.join(r for r in regions if r != failed)}")
    if current and not force:
        raise ConfigError(f"{scenario}: the primary in {current} ({topo.get('primary_host')})"
                          " answers and accepts writes: it has not failed",
                          hint=f"a planned move is drkit failover --region "
                               f"{target_region or 'REGION'}; --force moves it anyway (a "
                               "zero-loss switchover); nothing was changed")
    if scenario == "primary-failure" and not current and not target_region:
        in_region = _in_region_takeover(topo, failed)
        if in_region:
            return in_region
    target = target_region or _standby(nodes, failed, synchronous_regions)
    node = nodes.get(target_node(topo, target) or "") if target else {}
    node = node or {}
    if node.get("role") != "replica":
        why = node.get("error") or f"its node is {node.get('role') or 'unreachable'}"
        if scenario == "region-failure":
            return _from_backup(target, failed, why, current=current,
                                allow_data_loss=allow_data_loss, nodes=nodes)
        raise ConfigError(f"primary-failure: no standby to promote ({target or 'none'}: {why})",
                          hint=f"regions with a replica that answers: "
                               f"{_replicas(nodes, failed)}; nothing was changed")
    mode = "planned" if current else "unplanned"
    synchronous = target in synchronous_regions or node.get("sync_state") == "sync"
    kind = "synchronous" if synchronous else "asynchronous"
    if scenario == "primary-failure":
        why = (f"the primary in {failed} " + ("answers (--force): a planned switchover"
                                               if current else "does not answer")
               + f"; the standby promoted is {target}'s {kind} replica")
    else:
        why = (f"{failed} " + ("answers (--force): a planned switchover" if current
                               else "is lost")
               + f"; {target} has {'an' if kind[0] == 'a' else 'a'} {kind} replica that answers")
    line = (f"{scenario}: {why}: promoting it (RB-DR-003 {mode}, as drkit failover "
            f"--region {target} --mode {mode})")
    params = {"region": target, "mode": mode,
              "allow_data_loss": bool(allow_data_loss and mode == "unplanned")}
    return Decision(FAILOVER_RUNBOOK, params, line)


def _in_region_takeover(topo: dict[str, Any], failed: str) -> Decision | None:
    """A dead primary whose region has a standby that answers: RB-DR-001 replaces
    the dead node, its in-region standby taking over first; None otherwise."""
    from drkit.checks.nodes import in_region_standby, primary_of

    dead = primary_of(topo)
    standby = in_region_standby(topo, dead["id"]) if dead["id"] else None
    if standby is None:
        return None
    line = (f"primary-failure: the primary in {failed} ({dead['ip']}) does not answer; "
            f"{standby['key']}, its in-region standby, answers: promoting it and replacing "
            f"the dead node (RB-DR-001, as drkit replace-node --host {dead['id']})")
    return Decision(NODE_RUNBOOK, {"nodes": [dead["id"]], "force": False}, line)


def _from_backup(target: str, failed: str, why: str, *, current: str | None,
                 allow_data_loss: bool, nodes: dict[str, Any]) -> Decision:
    """region-failure with no replica to promote in ``target``: restore there."""
    if current:
        raise ConfigError(
            f"region-failure: {target} has no replica that answers ({why}) and the primary in "
            f"{current} still answers: restoring from the backups would throw its newest "
            "writes away", hint=f"recover into a region whose replica answers: "
                                f"{_replicas(nodes, failed)}; nothing was changed")
    if not allow_data_loss:
        raise ConfigError(
            f"region-failure: no replica answers in {target} ({why}); the database would be "
            "restored there from the backups, losing the commits not archived yet",
            hint=f"accept that with --allow-data-loss (an approval shows it), or recover into "
                 f"a region whose replica answers: {_replicas(nodes, failed)}; nothing was "
                 "changed")
    line = (f"region-failure: {failed} is lost; no streaming replica in {target} ({why}): "
            "restoring the database there from the backups (RB-DR-003 unplanned from "
            f"backup, as drkit failover --region {target} --mode unplanned --source backup)")
    params = {"region": target, "mode": "unplanned", "source": "backup",
              "allow_data_loss": True}
    return Decision(FAILOVER_RUNBOOK, params, line)


def _standby(nodes: dict[str, Any], failed: str, synchronous_regions: list[str]) -> str | None:
    """The region whose replica is promoted when none is named: the first synchronous
    region with a replica that answers, else the region of the least lagging replica.
    Only other regions: the failed region's own standby is RB-DR-001's to promote."""
    outside = {k: n for k, n in nodes.items()
               if n["region"] != failed and n.get("role") == "replica"}
    for region in synchronous_regions:
        if any(n["region"] == region for n in outside.values()):
            return region
    best = min(outside, key=lambda k: outside[k].get("lag_bytes") or 0, default=None)
    return outside[best]["region"] if best else None


def _replicas(nodes: dict[str, Any], failed: str) -> str:
    """The other regions with a replica that answers."""
    found = {n["region"] for n in nodes.values()
             if n["region"] != failed and n.get("role") == "replica"}
    return ", ".join(sorted(found)) or "none"
