"""The estate's database nodes for the playbooks, computed by drkit.topology so that
Python and Jinja can never name a node differently (Ansible runs in drkit's Python)."""

from __future__ import annotations

from typing import Any

from drkit import topology


def drkit_db_nodes(regions: dict[str, Any]) -> list[dict[str, str]]:
    """``drkit.regions | drkit_db_nodes``: every node as {key, name, region, zone}."""
    return [n.as_dict() for n in topology.db_nodes(regions)]


def drkit_db_node(regions: dict[str, Any], region: str, zone: str | None = None) -> dict[str, str]:
    """``drkit.regions | drkit_db_node(drkit_region, drkit_zone)``: the node a db host is."""
    node = topology.node_of(topology.db_nodes(regions), region, zone)
    if node is None:
        raise ValueError(f"no database node of region {region!r} is in zone {zone!r}; "
                         f"drkit.regions.{region}.db_zones lists them")
    return node.as_dict()


def drkit_sync_candidates(regions: dict[str, Any], primary_key: str,
                          synchronous_regions: list[str], in_region: bool = False) -> list[str]:
    """PG names a commit may wait for, in FIRST 1 priority order."""
    return topology.sync_candidates(topology.db_nodes(regions), primary_key,
                                    list(synchronous_regions), bool(in_region))


def drkit_node_host(hosts: list[Any], regions: dict[str, Any], key: str) -> str:
    """``groups['role_db'] | map('extract', hostvars) | drkit_node_host(drkit.regions,
    'us-east')``: the address of the db host that is node ``key`` (a region's name is
    its first node's key), '' when none runs."""
    nodes = topology.db_nodes(regions)
    for host in hosts:
        if "drkit_region" not in host:
            continue
        node = topology.node_of(nodes, host["drkit_region"], host.get("drkit_zone"))
        if node is not None and node.key == key:
            return str(host["ansible_host"])
    return ""


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"drkit_db_nodes": drkit_db_nodes, "drkit_db_node": drkit_db_node,
                "drkit_node_host": drkit_node_host,
                "drkit_sync_candidates": drkit_sync_candidates}
