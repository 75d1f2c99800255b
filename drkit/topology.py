"""The estate's database nodes, named one way for Python and for the playbooks.

Which nodes exist comes from configuration, not from the instances running: a
failover must name the nodes of a region that is down. ``drkit.regions.<r>.db_zones``
lists the zones that hold a database node (default: the region's first zone), one
node per zone, each zone with its own Auto Scaling group, so a replacement keeps its
zone and its name.

A node's *key* is its region for the node in the region's first database zone
(``us-east``), else the region and the zone's letter (``us-east-b``). Its *PG name*
(replication slot, application_name, cluster_name) is the key with ``_`` for ``-``
(``us_east``, ``us_east_b``). With one node per region every key and name is what it
has always been: the region's.

Which standbys a commit waits for (docs/design/two-zone-topology.md, D3):
``FIRST 1 (cross-region synchronous standbys, then the primary's in-region peers)``.
The cross-region standby acknowledges every commit, so a region's loss loses none;
an in-region peer takes over acknowledging when it is gone. ``ANY 1`` over both would
let the in-region peer acknowledge alone, and a region's loss could then lose
acknowledged commits.

``playbooks/filter_plugins/drkit_topology.py`` gives the playbooks these functions.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class DbNode:
    key: str
    name: str
    region: str
    zone: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def pg_name(key: str) -> str:
    """A node key as PostgreSQL names it (slot, application_name, cluster_name)."""
    return key.replace("-", "_")


def db_zones(region: dict[str, Any]) -> list[str]:
    """The zones of a region's settings that hold a database node."""
    zones = list(region.get("zones") or [])
    return list(region.get("db_zones") or zones[:1])


def zone_letter(zone: str, cloud_region: str) -> str:
    """``us-east-1b`` in ``us-east-1`` -> ``b``; a zone named otherwise keeps its name."""
    rest = zone[len(cloud_region):] if zone.startswith(cloud_region) else zone
    return rest.strip("-") or zone


def db_nodes(regions: dict[str, dict[str, Any]]) -> list[DbNode]:
    """Every database node of the estate, region by region, first zone first. A region
    whose settings list no zone still has its one node (zone ``''``): a failover must
    be able to name it, and say it has no host."""
    nodes = []
    for region in sorted(regions):
        settings = regions[region]
        for i, zone in enumerate(db_zones(settings) or [""]):
            key = region if i == 0 else \
                f"{region}-{zone_letter(zone, settings.get('cloud_region', ''))}"
            nodes.append(DbNode(key=key, name=pg_name(key), region=region, zone=zone))
    return nodes


def node_of(nodes: list[DbNode], region: str, zone: str | None = None) -> DbNode | None:
    """The node a db instance in ``region`` and ``zone`` is: a region's only node
    whatever the zone (one database host per region, wherever it runs), else the
    node of that zone; the region's first node when the zone is unknown."""
    in_region = [n for n in nodes if n.region == region]
    if len(in_region) == 1 or (in_region and not zone):
        return in_region[0]
    return next((n for n in in_region if n.zone == zone), None)


def stray_key(regions: dict[str, dict[str, Any]], region: str, zone: str) -> str:
    """The key of a db instance in a zone that holds no node of the region: a node of
    its own, named like any other region-and-zone node."""
    cloud = (regions.get(region) or {}).get("cloud_region", "")
    return f"{region}-{zone_letter(zone, cloud)}"


def name_of_instance(regions: dict[str, dict[str, Any]], instance: dict[str, Any]) -> str:
    """The PG name of the node a db instance (region, zone) is; a stray instance's
    own, as ``postgres.topology`` names it."""
    node = node_of(db_nodes(regions), instance["region"], instance.get("zone"))
    if node is not None:
        return node.name
    return pg_name(stray_key(regions, instance["region"], instance.get("zone") or ""))


def sync_candidates(nodes: list[DbNode], primary_key: str, synchronous_regions: list[str],
                    in_region: bool = False) -> list[str]:
    """PG names of the standbys a commit may wait for, in priority order (``FIRST 1``):
    every node of the synchronous regions other than the primary's region, then, with
    ``in_region``, the primary's in-region peers."""
    primary = next((n for n in nodes if n.key == primary_key), None)
    if primary is None:
        raise ValueError(f"{primary_key!r} is not one of the database nodes "
                         f"({', '.join(n.key for n in nodes)})")
    cross = [n.name for n in nodes
             if n.region != primary.region and n.region in synchronous_regions]
    peers = [n.name for n in nodes if n.region == primary.region and n.key != primary.key]
    return cross + (peers if in_region else [])


def problems(regions: dict[str, Any]) -> list[str]:
    """What is wrong with the regions' ``db_zones`` (dotted paths)."""
    found = []
    for name, region in regions.items():
        if not isinstance(region, dict) or "db_zones" not in region:
            continue
        path = f"drkit.regions.{name}.db_zones"
        chosen, zones = region["db_zones"], region.get("zones") or []
        if not isinstance(chosen, list) or not chosen or \
                not all(isinstance(z, str) for z in chosen):
            found.append(f"{path}: expected a non-empty list of zone names")
            continue
        if len(set(chosen)) != len(chosen):
            found.append(f"{path}: a zone is listed twice; one database node per zone")
        for zone in chosen:
            if zone not in zones:
                found.append(f"{path}: {zone!r} is not one of the region's zones "
                             f"({', '.join(zones) or 'none listed'})")
    return found
