"""A ``postgres.topology`` answer built from node statuses, for unit tests of the
decisions made over it (failover, rebuild, restore, db-recovery...).

The tests say what each node answered; the derived fields (primaries, replicas,
primary_node, primary_host, dns_primary_node, the node's key, name, region and
zone) are filled in the way drkit.checks.estate.topology_probe fills them, so a
decision never sees a topology the probe could not produce.
"""

from __future__ import annotations

from typing import Any

from drkit import topology

#: The lab's regions, one database node each unless a test adds zones.
REGIONS = {
    "us-east": {"cloud_region": "us-east-1", "role": "primary",
                "zones": ["us-east-1a", "us-east-1b"]},
    "eu-west": {"cloud_region": "eu-west-1", "role": "standby",
                "zones": ["eu-west-1a", "eu-west-1b"]},
    "ap-south": {"cloud_region": "ap-south-1", "role": "standby", "zones": ["ap-south-1a"]},
}


def probe_result(nodes: dict[str, dict[str, Any]], *, dns: str | None = "us-east",
                 regions: dict[str, Any] | None = None) -> dict[str, Any]:
    """``nodes``: node key (``us-east``; ``us_east`` is accepted) -> what it answered.
    ``dns``: the node key db. points at."""
    known = {n.key: n for n in topology.db_nodes(regions or REGIONS)}
    full: dict[str, dict[str, Any]] = {}
    for raw, status in nodes.items():
        key = raw.replace("_", "-")
        node = known.get(key)
        ident = node.as_dict() if node else {"key": key, "name": topology.pg_name(key),
                                             "region": key, "zone": ""}
        full[key] = {"reachable": status.get("role") is not None, **ident, **status}
    primaries = [k for k, n in full.items() if n.get("role") == "primary"]
    primary = full[primaries[0]] if len(primaries) == 1 else None
    dns_node = dns if dns in full else None
    return {
        "nodes": full,
        "primaries": primaries,
        "primary_node": primaries[0] if primary else None,
        "primary_region": primary["region"] if primary else None,
        "primary_host": primary.get("host") if primary else None,
        "dns_primary_node": dns_node,
        "dns_primary_region": full[dns_node]["region"] if dns_node else None,
        "replicas": sorted(k for k, n in full.items() if n.get("role") == "replica"),
        "unreachable": sorted(k for k, n in full.items() if not n.get("reachable")),
    }
