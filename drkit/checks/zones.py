"""Probes of availability zones (RB-DR-002 zone failover): what shifting a zone
away, or bringing it back, involves, and whether the region's app capacity runs
where it should afterwards.

A zone shift is recorded in the zone's region, in Parameter Store under
``/drkit/<estate>/zone-shifts/<zone>``; the region's Terraform module reads it on
every apply (terraform/modules/region), so the shift holds whoever applies next,
and a region's shift never depends on another region answering. The app groups
are one per role and zone, their capacity spread as :func:`shares` says.
"""

from __future__ import annotations

from typing import Any

from drkit import topology
from drkit.checks.aws import cloud_region, instances
from drkit.checks.nodes import (
    app_record,
    estate_topology,
    groups,
    health_of,
    in_region_standby,
    primary_of,
    takeover,
)
from drkit.registry import StepContext, probe

MODES = ("planned", "unplanned")


def shift_path(ctx: StepContext) -> str:
    """Where the estate's zone shifts are recorded (one parameter per zone)."""
    return f"/drkit/{ctx.env.settings.get('estate', 'lab')}/zone-shifts"


def region_of(ctx: StepContext, zone: str) -> str | None:
    """The estate's logical region that has ``zone``, from the environment's settings."""
    for name, region in ctx.env.regions.items():
        if zone in (region.get("zones") or []):
            return name
    return None


def known_zones(ctx: StepContext) -> list[str]:
    return sorted(z for r in ctx.env.regions.values() for z in (r.get("zones") or []))


def shifted(ctx: StepContext, region: str) -> dict[str, str]:
    """The region's zones shifted away: zone -> what the record says (run, time)."""
    ssm = ctx.env.client("ssm", cloud_region(ctx, region))
    found: dict[str, str] = {}
    for page in ssm.get_paginator("get_parameters_by_path").paginate(
            Path=shift_path(ctx), Recursive=False):
        for param in page["Parameters"]:
            found[param["Name"].rsplit("/", 1)[-1]] = param["Value"]
    return found


def app_groups(ctx: StepContext, region: str) -> dict[str, dict[str, Any]]:
    """The region's app Auto Scaling groups by zone: name, desired, members in service
    (with scale-in protection)."""
    client = ctx.env.client("autoscaling", cloud_region(ctx, region))
    estate = ctx.env.settings.get("estate", "lab")
    found: dict[str, dict[str, Any]] = {}
    for page in client.get_paginator("describe_auto_scaling_groups").paginate(
            Filters=[{"Name": "tag:DrRegion", "Values": [region]},
                     {"Name": "tag:Role", "Values": ["app"]},
                     {"Name": "tag:Estate", "Values": [estate]}]):
        for group in page["AutoScalingGroups"]:
            for zone in group["AvailabilityZones"]:
                found[zone] = {
                    "name": group["AutoScalingGroupName"], "zone": zone,
                    "desired": group["DesiredCapacity"],
                    "members": sorted(i["InstanceId"] for i in group["Instances"]
                                      if i["LifecycleState"] == "InService"),
                    "protected": sorted(i["InstanceId"] for i in group["Instances"]
                                        if i.get("ProtectedFromScaleIn"))}
    return found


def shares(total: int, zones: list[str], zones_out: list[str]) -> dict[str, int]:
    """App capacity per zone, as the region module spreads it: ``total`` over the
    zones not shifted away, in order, the first ``total % n`` of them one more;
    a shifted zone gets none. Keep in step with terraform/modules/region/main.tf
    (the verify step compares the groups with it, so a drift shows)."""
    zones_in = [z for z in zones if z not in zones_out]
    return {z: (total // len(zones_in) + (zones_in.index(z) < total % len(zones_in))
                if z in zones_in else 0) for z in zones}


def split_surplus(groups: dict[str, dict[str, Any]], hosts: list[dict[str, Any]],
                  after: dict[str, int]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """For a restore, each group's members over its share ``after`` (by zone): the
    newest go (``surplus``), the others stay (``keep``, protected from the scale-in).
    A quarantined host (RB-DR-005 --isolate) is evidence: it always stays, and
    counts toward its group. Pure."""
    surplus: list[dict[str, Any]] = []
    keep: list[dict[str, Any]] = []
    for zone, group in sorted(groups.items()):
        members = [n for n in hosts if n["id"] in group["members"]]
        candidates = _newest_first([n for n in members if not n.get("quarantined")])
        over = max(0, len(members) - after.get(zone, 0))
        surplus += candidates[:over]
        keep += candidates[over:]
    return surplus, keep


def request_problems(zone: str, *, restore: bool, region: str | None,
                     region_zones: list[str], known: list[str], shifted_zones: list[str],
                     primary_zone: str | None, standby: str | None = None,
                     ) -> tuple[list[str], str]:
    """Why ``zone-failover --zone ZONE [--restore]`` cannot run, and the way out.
    Pure: the CLI's bad-input checks and their tests call it."""
    if region is None:
        return [f"zone {zone!r} is not one of the estate's zones"], \
            f"use one of: {', '.join(known)}"
    if restore:
        if zone not in shifted_zones:
            return [f"zone {zone} was never shifted away (no zone shift is recorded for it)"], \
                ("nothing to restore; the shifted zones are "
                 + (", ".join(shifted_zones) or "none"))
        return [], ""
    if zone in shifted_zones:
        return [f"zone {zone} is shifted away already"], \
            f"bring it back with: drkit zone-failover --zone {zone} --restore"
    left = [z for z in region_zones if z != zone and z not in shifted_zones]
    if not left:
        return [f"zone {zone} is the only zone of region {region} still in"], \
            (f"a region failover moves the service: drkit failover --region <another region> "
             f"(region {region} has zones {', '.join(region_zones)})")
    if primary_zone == zone and not standby:
        return [f"the database primary runs in zone {zone} and no standby of region {region} "
                "in another zone answers to take over"], \
            "a region failover moves it: drkit failover --region <another region>"
    return [], ""


def _to_rebuild(ctx: StepContext, topo: dict[str, Any],
                dbs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The zone's database nodes that do not answer as replicas (the old primary,
    fenced when the zone was shifted: its instance or its server stopped), as
    node-replace.yml takes them. A replica whose WAL receiver is still reconnecting
    after the zone came back needs nothing."""
    replicas = {n.get("instance_id") for n in topo["nodes"].values()
                if n.get("role") == "replica"}
    stale = [n for n in dbs if n["id"] not in replicas and n.get("asg")]
    asgs = groups(ctx, stale)
    return [{**_host(ctx, n), "role": "db", "in_dns": False,
             "group": asgs.get(n["asg"] or "", {})} for n in stale]


def _host(ctx: StepContext, node: dict[str, Any]) -> dict[str, Any]:
    return {"id": node["id"], "ip": node["ip"], "zone": node["zone"], "asg": node.get("asg"),
            "cloud_region": cloud_region(ctx, node["region"]), "name": node.get("name")}


def _newest_first(nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(nodes, key=lambda n: n.get("launched") or 0.0, reverse=True)


def _epoch(value: Any) -> float:
    """A time as given to a probe (epoch seconds, or ISO 8601) in epoch seconds."""
    if isinstance(value, (int, float)):
        return float(value)
    from datetime import UTC, datetime

    parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()


@probe("zones.plan")
def plan_probe(ctx: StepContext, zone: str, restore: bool = False, mode: str = "unplanned",
               secret: str = "") -> dict[str, Any]:
    """What shifting ``zone`` away (or, with ``restore``, bringing it back) involves.

    Shift: the zone's app hosts (out of app. first), its database replicas (the
    primary stops waiting for them), the primary if it runs there (``promote``:
    its in-region standby in another zone takes over, as RB-DR-001 does; planned,
    a switchover), and the refusals of :func:`request_problems`; ``planned`` (a
    practice run) also needs every node of the zone healthy.
    Restore: the zone's share of the region's app capacity comes back, and as many
    hosts of the other zones leave (the newest of each group over its share: out of
    app. first, then the Auto Scaling groups scale in with every other host
    protected); the zone's database nodes that do not stream (a fenced old
    primary) are replaced and rebuilt (``rebuild``). ``secret``: the db
    credentials, REGION standing for the region."""
    region = region_of(ctx, zone)
    out: dict[str, Any] = {"zone": zone, "region": region, "restore": restore, "mode": mode}
    if region is None:
        problems, hint = request_problems(zone, restore=restore, region=None, region_zones=[],
                                          known=known_zones(ctx), shifted_zones=[],
                                          primary_zone=None)
        return {**out, "ok": False, "problems": problems, "hint": hint}
    region_zones = list(ctx.env.region(region).get("zones") or [])
    nodes = instances(ctx, region)  # every state but terminated
    in_zone = [n for n in nodes if n["zone"] == zone]
    dbs = [n for n in in_zone if n.get("role") == "db"]
    topo = estate_topology(ctx, secret) if dbs else None
    primary = primary_of(topo) if topo else {}
    old = next((n for n in dbs if n["id"] == primary.get("id")), None)
    primary_zone = zone if old else None
    standby = in_region_standby(topo, old["id"]) if topo and old and not restore else None
    zones_shifted = sorted(shifted(ctx, region))
    problems, hint = request_problems(zone, restore=restore, region=region,
                                      region_zones=region_zones, known=known_zones(ctx),
                                      shifted_zones=zones_shifted, primary_zone=primary_zone,
                                      standby=standby and standby["key"])
    promote = {**takeover(topo, old, standby), "mode": mode} if topo and old and standby \
        else None
    if promote:  # the rest of the run follows the new primary
        primary = {"id": promote["target_id"], "ip": promote["target_host"], "answers": True}
    if not problems and mode == "planned" and not restore:
        sick = [n for n in health_of(in_zone) if not n["healthy"]]
        if sick:
            problems = [f"a practice run needs a healthy zone: {n['name']} ({n['ip']}): "
                        + ", ".join(n["problems"]) for n in sick]
            hint = "the zone is failing: run it unplanned (--mode unplanned)"
    answer = set(app_record(ctx)["addresses"])
    all_apps = [n for n in nodes if n.get("role") == "app"]
    apps = [n for n in all_apps if not n.get("quarantined")]
    groups = app_groups(ctx, region)
    total = sum(g["desired"] for g in groups.values())
    after_out = [z for z in zones_shifted if z != zone] if restore else [*zones_shifted, zone]
    after = shares(total, region_zones, after_out) if any(
        z not in after_out for z in region_zones) else {}
    surplus, keep = split_surplus(groups, all_apps, after) if restore else ([], [])
    # Every address of the zone leaves app. on a shift, a quarantined host's too.
    leaving = surplus if restore else [n for n in in_zone if n in all_apps]
    return {**out, "ok": not problems, "problems": problems, "hint": hint,
            "cloud_region": cloud_region(ctx, region),
            "region_zones": region_zones, "shifted": zones_shifted,
            "serving": any(n["ip"] in answer for n in apps),
            "app_hosts": [_host(ctx, n) for n in in_zone if n.get("role") == "app"],
            "db_nodes": [_host(ctx, n) for n in dbs], "primary": primary, "promote": promote,
            "sync_gone": [] if restore else sorted({topology.name_of_instance(ctx.env.regions, n)
                                                    for n in dbs if n is not old}),
            "rebuild": _to_rebuild(ctx, topo, dbs) if restore and topo else [],
            "dns_remove": sorted(n["ip"] for n in leaving if n["ip"] in answer),
            "capacity": total, "shares_after": after,
            "surplus": [_host(ctx, n) for n in surplus],
            "keep": [_host(ctx, n) for n in keep],
            # Quarantined hosts are evidence: protected from every scale-in, never lifted.
            "evidence": [_host(ctx, n) for n in all_apps if n.get("quarantined")],
            "names": ", ".join(f"{n.get('name')} ({n['id']}, {n['ip']})" for n in leaving)
            or "none"}


@probe("zones.placed")
def placed_probe(ctx: StepContext, region: str, zones_out: list[str],
                 since: Any = 0.0) -> dict[str, Any]:
    """The region's running app hosts outside ``zones_out``: their addresses (what
    app. answers with once they run the app) and the ids of those launched since
    ``since`` (the run's start: the hosts Auto Scaling added, which the run
    configures; a resumed run finds the same ones)."""
    nodes = [n for n in instances(ctx, region, role="app", states=("pending", "running"))
             if not n.get("quarantined") and n["zone"] not in zones_out]
    return {"serving": sorted(n["ip"] for n in nodes if n["ip"]),
            "new_ids": sorted(n["id"] for n in nodes if n["launched"] >= _epoch(since))}


@probe("zones.capacity")
def capacity_probe(ctx: StepContext, zone: str, restore: bool, shares_after: dict[str, int],
                   serving: bool, since: Any = "", timeout: float = 3.0) -> dict[str, Any]:
    """After a shift (or its restore): each app group of the zone's region holds the
    share :func:`shares` gives it, every member healthy; after a shift no app host
    runs in the zone (and none was launched there since ``since``, an ISO time),
    after a restore the zone's share runs there; when the region serves, app.
    answers with exactly the region's healthy app hosts."""
    region = region_of(ctx, zone)
    if region is None:
        return {"ok": False, "findings": [f"zone {zone} is not the estate's"]}
    groups = app_groups(ctx, region)
    nodes = {n["id"]: n for n in instances(ctx, region, role="app", states=(
        "pending", "running", "stopping", "stopped", "shutting-down", "terminated"))}
    findings, rows = [], []
    healthy_ips: set[str] = set()
    for z, group in sorted(groups.items()):
        members = [nodes[i] for i in group["members"] if i in nodes]
        # A quarantined host is evidence, kept (and protected) on purpose: it is
        # neither a shortfall nor leftover protection.
        evidence = {n["id"] for n in members if n.get("quarantined")}
        checked = health_of([n for n in members if n["id"] not in evidence], timeout)
        healthy = [n for n in checked if n["healthy"]]
        healthy_ips |= {n["ip"] for n in healthy}
        want = shares_after.get(z, group["desired"])
        rows.append({"zone": z, "group": group["name"], "desired": group["desired"],
                     "share": want, "healthy": len(healthy), "quarantined": len(evidence)})
        if group["desired"] != want:
            findings.append(f"{group['name']}: desired {group['desired']}, the zone's share is "
                            f"{want} (Terraform and drkit.checks.zones.shares disagree?)")
        if len(healthy) + len(evidence) < group["desired"]:
            findings.append(f"{group['name']}: {len(healthy)} healthy of {group['desired']} ("
                            + "; ".join(f"{n['id']}: {', '.join(n['problems'])}"
                                        for n in checked if not n["healthy"]) + ")")
        if left := [i for i in group["protected"] if i not in evidence]:
            findings.append(f"{group['name']}: scale-in protection left on {', '.join(left)}")
    in_zone = [n for n in nodes.values() if n["zone"] == zone and not n.get("quarantined")
               and n["state"] in ("pending", "running")]
    if not restore and in_zone:
        findings.append(f"app hosts still run in {zone}: "
                        + ", ".join(n["id"] for n in in_zone))
    launched_in_zone = sorted(n["id"] for n in nodes.values() if n["zone"] == zone
                              and since and n["launched"] >= _epoch(since))
    if not restore and launched_in_zone:
        findings.append(f"instances launched into the shifted zone {zone}: "
                        + ", ".join(launched_in_zone))
    answer = set(app_record(ctx)["addresses"])
    if serving and answer != healthy_ips:
        findings.append(f"app. answers {', '.join(sorted(answer)) or 'nothing'}, the region's "
                        f"healthy app hosts are {', '.join(sorted(healthy_ips)) or 'none'}")
    return {"groups": rows, "app_addresses": sorted(answer), "findings": findings,
            "ok": not findings, "launched_in_zone": launched_in_zone,
            # App hosts hold no data; the database did not move.
            "rpo": {"seconds": 0.0, "lost_writes": 0,
                    "detail": {"why": "a zone shift moves app hosts, which hold no data; the "
                                      "database primary stays where it is"}}}
