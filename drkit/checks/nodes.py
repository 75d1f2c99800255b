"""Probes of single nodes (RB-DR-001): which of the estate's instances are
unhealthy, what replacing one involves, and whether capacity is back.

A node is unhealthy when EC2 says it is not running, when nothing answers ssh on
it, or when its service fails its own health check (the app's GET /health,
PostgreSQL's port). Every node is asked at once, each check with a short
timeout: a dead node costs one timeout, not one per node.

Nodes are found by instance id, private IP, or inventory name
(``<Name tag>_<instance id>``, as Ansible lists them); a Name tag alone is shared
by a role's hosts in a region and matches only when it names one running node.
"""

from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from drkit import topology
from drkit.checks.aws import cloud_region, instances
from drkit.checks.dns import resolve
from drkit.registry import StepContext, probe

SSH_PORT = 22
#: Each role's service: the port it listens on and, for HTTP, its health path.
SERVICES = {"app": {"port": 8080, "health": "/health"}, "db": {"port": 5432}}
#: Roles RB-DR-001 replaces: app hosts and db nodes (a primary only where its
#: region has an in-region standby to take over).
REPLACEABLE_ROLES = ("app", "db")
PRIMARY_WAY_OUT = ("a database primary whose region has no in-region standby that answers is "
                   "a region failover: drkit failover --region REGION --mode unplanned")


def estate_nodes(ctx: StepContext) -> list[dict[str, Any]]:
    """Every instance of the estate that is not terminated, all regions."""
    found: list[dict[str, Any]] = []
    for region in sorted(ctx.env.regions):
        found += instances(ctx, region)
    return found


def inventory_name(node: dict[str, Any]) -> str:
    """The node's name in the aws_ec2 inventory (inventory/lab/aws_ec2.yml)."""
    return f"{node['name']}_{node['id']}" if node.get("name") else node["id"]


def find(nodes: list[dict[str, Any]], ref: str) -> list[dict[str, Any]]:
    """The nodes ``ref`` names: an instance id, IP or inventory name exactly, else a
    Name tag (which several nodes may share)."""
    exact = [n for n in nodes if ref in (n["id"], n["ip"], inventory_name(n))]
    return exact or [n for n in nodes if n["name"] == ref]


def _tcp(ip: str, port: int, timeout: float) -> str | None:
    """None when ``ip:port`` accepts a connection, else why not."""
    try:
        with socket.create_connection((ip, port), timeout=timeout):
            return None
    except OSError as exc:
        return f"no answer on port {port} ({exc.strerror or exc})"


def _http_health(ip: str, port: int, path: str, timeout: float) -> str | None:
    try:
        with urllib.request.urlopen(f"http://{ip}:{port}{path}", timeout=timeout) as resp:
            return None if resp.status == 200 else f"{path} answered {resp.status}"
    except urllib.error.HTTPError as exc:
        return f"{path} answered {exc.code}"
    except OSError as exc:
        return f"{path}: no answer ({getattr(exc, 'reason', None) or exc})"


def health(node: dict[str, Any], timeout: float = 2.0) -> dict[str, Any]:
    """``node`` with ``healthy`` and the ``problems`` found (EC2, ssh, service)."""
    problems = []
    if node["state"] != "running":
        problems.append(f"EC2 state {node['state']}")
    elif not node.get("ip"):
        problems.append("no private IP")
    else:
        if why := _tcp(node["ip"], SSH_PORT, timeout):
            problems.append(f"ssh: {why}")
        service = SERVICES.get(node.get("role") or "")
        if service and "health" in service:
            why = _http_health(node["ip"], service["port"], service["health"], timeout)
        elif service:
            why = _tcp(node["ip"], service["port"], timeout)
        if service and why:
            problems.append(f"{node['role']}: {why}")
    return {**node, "healthy": not problems, "problems": problems}


def health_of(nodes: list[dict[str, Any]], timeout: float = 2.0) -> list[dict[str, Any]]:
    """:func:`health` of every node, asked at once."""
    if not nodes:
        return []
    with ThreadPoolExecutor(max_workers=min(32, len(nodes))) as pool:
        return list(pool.map(lambda n: health(n, timeout), nodes))


def app_record(ctx: StepContext) -> dict[str, Any]:
    """What ``app.<zone>`` resolves to through the estate's resolver."""
    dns = ctx.env.settings.get("dns") or {}
    if not dns.get("zone"):
        return {"name": None, "addresses": []}
    return resolve(f"app.{dns['zone']}", resolver=dns.get("resolver"))


def groups(ctx: StepContext, nodes: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The Auto Scaling groups of ``nodes``: name -> {desired, members (in service)}."""
    by_region: dict[str, set[str]] = {}
    for n in nodes:
        if n.get("asg"):
            by_region.setdefault(n["region"], set()).add(n["asg"])
    found = {}
    for region, names in by_region.items():
        client = ctx.env.client("autoscaling", cloud_region(ctx, region))
        for group in client.describe_auto_scaling_groups(
                AutoScalingGroupNames=sorted(names))["AutoScalingGroups"]:
            found[group["AutoScalingGroupName"]] = {
                "region": region, "desired": group["DesiredCapacity"],
                "members": sorted(i["InstanceId"] for i in group["Instances"]
                                  if i["LifecycleState"] == "InService")}
    return found


def estate_topology(ctx: StepContext, secret: str) -> dict[str, Any]:
    """postgres.topology with a short timeout (a dead node costs 2 s)."""
    from drkit.checks.estate import topology_probe

    return topology_probe(ctx, secret, timeout=2.0)


def primary_of(topology: dict[str, Any]) -> dict[str, Any]:
    """Where the database primary is: ``{"id", "ip"}`` of the node that answers as
    primary, else of the node db. points at (None when neither is known)."""
    node = topology["nodes"].get(topology["primary_node"] or "")
    if node:
        return {"id": node["instance_id"], "ip": node["host"], "answers": True}
    node = topology["nodes"].get(topology["dns_primary_node"] or "")
    if node and node.get("host"):
        return {"id": node.get("instance_id"), "ip": node["host"], "answers": False}
    return {"id": None, "ip": None, "answers": False}


def in_region_standby(topology: dict[str, Any], instance_id: str) -> dict[str, Any] | None:
    """The node that takes over from the primary on ``instance_id``: a replica of
    the same region that answers (the one that received the most WAL when there
    are several), or None (not the primary, or no such replica)."""
    from drkit.checks.failover import received_lsn

    if instance_id != primary_of(topology)["id"]:
        return None
    dead = next(n for n in topology["nodes"].values() if n.get("instance_id") == instance_id)
    peers = [n for n in topology["nodes"].values()
             if n.get("region") == dead.get("region") and n is not dead
             and n.get("role") == "replica" and n.get("reachable")]
    return max(peers, key=received_lsn, default=None)


def takeovers(topology: dict[str, Any], ids: frozenset[str]) -> frozenset[str]:
    """Which of the (possible) primaries ``ids`` an in-region standby can take over."""
    return frozenset(i for i in ids if in_region_standby(topology, i) is not None)


def possible_primaries(nodes: list[dict[str, Any]], primary: dict[str, Any]) -> frozenset[str]:
    """The db nodes that are, or may be, the primary: the one found, and, when no
    node answers as primary, every db node that is not healthy (it may be the
    primary that died; replacing it as a replica would lose the database)."""
    found = {primary["id"]} if primary.get("id") else set()
    if not primary.get("answers"):
        found |= {n["id"] for n in nodes if n.get("role") == "db" and not n.get("healthy", True)}
    return frozenset(found)


@probe("nodes.health")
def health_probe(ctx: StepContext, nodes: list[str] | None = None,
                 timeout: float = 2.0) -> dict[str, Any]:
    """The health of the named nodes (instance ids), or of every node: EC2 state,
    ssh and the service's own check. ``unhealthy`` lists the failing ids."""
    found = estate_nodes(ctx)
    picked = [n for n in found if not nodes or n["id"] in nodes]
    checked = health_of(picked, timeout)
    return {"nodes": checked, "unhealthy": [n["id"] for n in checked if not n["healthy"]],
            "missing": sorted(set(nodes or []) - {n["id"] for n in found})}


@probe("nodes.plan")
def plan_probe(ctx: StepContext, nodes: list[str], secret: str) -> dict[str, Any]:
    """What replacing ``nodes`` (instance ids) involves: each node's role, region,
    zone and Auto Scaling group, whether app. answers with it, and the group's
    members now (the replacement is the member that was not there); for db nodes,
    the primary (``primary``: id, ip) and the replicas' application names
    (``sync_gone``). ``problems`` lists what makes a node irreplaceable here.
    ``secret``: the db credentials secret, REGION standing for the region."""
    found = {n["id"]: n for n in estate_nodes(ctx)}
    picked_roles = {found[i].get("role") for i in nodes if i in found}
    topo = estate_topology(ctx, secret) if "db" in picked_roles else None
    primary = primary_of(topo) if topo else {}
    problems, promote = [], None
    for node_id in nodes:
        node = found.get(node_id)
        if node is None:
            problems.append(f"{node_id}: no such instance (terminated, or not the estate's)")
        elif node.get("role") not in REPLACEABLE_ROLES:
            problems.append(f"{node_id}: a {node.get('role')} node; replace-node replaces "
                            f"{', '.join(REPLACEABLE_ROLES)} nodes")
        elif not node.get("asg"):
            problems.append(f"{node_id}: in no Auto Scaling group, so nothing would replace it")
        elif node["role"] == "db" and node_id == primary.get("id") and topo and \
                (standby := in_region_standby(topo, node_id)):
            promote = takeover(topo, node, standby)
        elif node["role"] == "db" and (node_id == primary.get("id") or not primary.get("answers")):
            problems.append(f"{node_id}: " + ("the database primary" if node_id == primary.get("id")
                                              else "no node answers as the database primary")
                            + f"; {PRIMARY_WAY_OUT}")
    picked = [found[i] for i in nodes if i in found]
    asgs = groups(ctx, picked)
    in_dns = set(app_record(ctx)["addresses"])
    # app. holds the serving region's app hosts: a replacement there joins it, even
    # when the node it replaces was out already (taken out by hand, or quarantined).
    serving = {n["region"] for n in found.values() if n.get("role") == "app"
               and n["ip"] in in_dns}
    planned = [{**n, "in_dns": (n["ip"] in in_dns
                                or (n.get("role") == "app" and n["region"] in serving)),
                "cloud_region": cloud_region(ctx, n["region"]),
                "group": asgs.get(n["asg"] or "", {})} for n in picked]
    if promote:  # the rest of the run follows the new primary
        primary = {"id": promote["target_id"], "ip": promote["target_host"], "answers": True}
    return {"nodes": planned, "problems": problems, "ok": not problems,
            "roles": sorted({n["role"] for n in planned}), "primary": primary,
            "promote": promote,
            # The primary stops waiting for the replicas replaced (not for itself).
            "sync_gone": sorted(topology.name_of_instance(ctx.env.regions, n) for n in planned
                                if n["role"] == "db"
                                and n["id"] != (promote or {}).get("old_id")),
            "dns_remove": sorted(n["ip"] for n in planned if n["ip"] in in_dns),
            "names": ", ".join(f"{n['name']} ({n['id']}, {n['ip']}, {n['zone']})"
                               for n in planned)}


def takeover(topo: dict[str, Any], dead: dict[str, Any],
             standby: dict[str, Any]) -> dict[str, Any]:
    """What a promote step (RB-DR-001, RB-DR-002) needs to hand the primary's role
    on instance ``dead`` ({id, ip}) to its in-region ``standby``."""
    return {"region": standby["region"], "old_id": dead["id"], "old_host": dead["ip"],
            "old_node": next(k for k, n in topo["nodes"].items()
                             if n.get("instance_id") == dead["id"]),
            "target_node": standby["key"], "target_host": standby["host"],
            "target_id": standby["instance_id"],
            "repoint_nodes": [k for k in topo["replicas"] if k != standby["key"]]}


@probe("nodes.capacity")
def capacity_probe(ctx: StepContext, replaced: list[dict[str, Any]],
                   replacements: list[dict[str, Any]], secret: str = "",
                   primary_ip: str = "", promoted: bool = False,
                   timeout: float = 3.0) -> dict[str, Any]:
    """Capacity after a replacement: every group of the ``replaced`` nodes runs its
    desired count of healthy instances, none of them a replaced node; each
    replacement answers its health check; app. answers with the replacements of
    nodes it answered with before, and without the replaced ones; a db
    replacement streams from ``primary_ip`` (credentials from ``secret``).
    ``promoted``: a standby took over from the replaced primary; its promotion
    reported the RPO, not this check."""
    now = {n["id"]: n for n in estate_nodes(ctx)}
    asgs = groups(ctx, [now.get(n["id"], n) for n in replaced])
    findings = []
    rows = []
    for name, group in sorted(asgs.items()):
        members = [now[i] for i in group["members"] if i in now]
        checked = health_of(members, timeout)
        healthy = [n["id"] for n in checked if n["healthy"]]
        rows.append({"group": name, "desired": group["desired"], "healthy": len(healthy)})
        if len(healthy) < group["desired"]:
            findings.append(f"{name}: {len(healthy)} healthy of {group['desired']} desired ("
                            + "; ".join(f"{n['id']}: {', '.join(n['problems'])}"
                                        for n in checked if not n["healthy"]) + ")")
    gone = {n["id"] for n in replaced}
    for node_id in sorted(gone):
        if now.get(node_id, {}).get("state") in ("pending", "running"):
            findings.append(f"{node_id}: the replaced node still runs")
    db_new = [r for r in replacements if r.get("role") == "db"]
    if db_new:
        from drkit.checks.estate import db_credentials, dsn
        from drkit.checks.postgres import replication_status

        creds = db_credentials(ctx, secret, ctx.env.regions_primary_first())
        for r in db_new:
            status = replication_status(dsn(r["ip"], creds), timeout=timeout)
            sender = (status.get("receiver") or {}).get("sender_host")
            if not status["streaming"] or sender != primary_ip:
                findings.append(f"{r['id']}: not streaming from the primary {primary_ip} "
                                f"(streaming {status['streaming']}, from {sender}; "
                                f"{status.get('error') or 'no error'})")
    answer = set(app_record(ctx)["addresses"])
    wanted = {r["ip"] for r in replacements if r.get("in_dns")}
    if missing := sorted(wanted - answer):
        findings.append(f"app. does not answer with the replacements {', '.join(missing)}")
    # An address a replacement took over (a subnet may hand it out again) is not stale.
    if stale := sorted(({n["ip"] for n in replaced} - {r["ip"] for r in replacements})
                       & answer):
        findings.append(f"app. still answers with the replaced {', '.join(stale)}")
    out = {"groups": rows, "app_addresses": sorted(answer), "findings": findings,
           "ok": not findings}
    if not promoted:
        # App hosts hold no data, and a replica's is the primary's: every
        # acknowledged write is on the primary.
        out["rpo"] = {"seconds": 0.0, "lost_writes": 0,
                      "detail": {"why": "the replaced nodes held no data of their own (app "
                                        "hosts, replicas)"}}
    return out


def _listing(nodes: list[dict[str, Any]]) -> str:
    return ", ".join(f"{inventory_name(n)} ({n['ip'] or n['state']})" for n in nodes)


def select(nodes: list[dict[str, Any]], *, host: str = "", auto: bool = False,
           force: bool = False, primaries: frozenset[str] = frozenset(),
           takeovers: frozenset[str] = frozenset(),
           ) -> tuple[list[dict[str, Any]], list[str], str]:
    """The nodes ``replace-node`` acts on, from nodes with their :func:`health`:
    ``(chosen, problems, hint)``; chosen is empty when problems are not.

    ``host`` names one node (a healthy one only with ``force``); ``auto`` takes
    every unhealthy node of a replaceable role. ``primaries``: the db nodes that
    are, or may be, the database primary (:func:`possible_primaries`); they are
    refused unless in ``takeovers``, the primaries an in-region standby can take
    over from (:func:`takeovers`). Pure: the CLI and its tests call it."""
    live = [n for n in nodes if n["state"] != "terminated"]
    refused = primaries - takeovers
    if host:
        matches = find(live, host)
        if not matches:
            return [], [f"no node of the estate matches {host!r}"], \
                f"give an instance id, IP or inventory name: {_listing(live)}"
        if len(matches) > 1:
            return [], [f"{host!r} names {len(matches)} nodes"], \
                f"give one of them by id: {_listing(matches)}"
        node = matches[0]
        if node.get("role") not in REPLACEABLE_ROLES:
            return [], [f"{inventory_name(node)} is a {node.get('role')} node: replace-node "
                        f"replaces {' and '.join(REPLACEABLE_ROLES)} nodes"], \
                "name an app host or a database replica"
        if node["id"] in refused:
            return [], [f"{inventory_name(node)} is (or may be) the database primary"], \
                PRIMARY_WAY_OUT
        if node.get("quarantined") and not force:
            return [], [f"{inventory_name(node)} is quarantined for forensics (RB-DR-005 "
                        "--isolate): replacing it terminates it, and its memory and disk with "
                        "it"], "add --force once the investigation is done (its snapshots stay)"
        if node["healthy"] and not force:
            return [], [f"{inventory_name(node)} is healthy (EC2 running, ssh and its service "
                        "answer)"], "add --force to replace it anyway"
        return [node], [], ""
    # A quarantined host answers nothing on purpose: it is evidence, not a failure.
    sick = [n for n in live if not n["healthy"] and not n.get("quarantined")]
    chosen = [n for n in sick if n.get("role") in REPLACEABLE_ROLES and n["id"] not in refused]
    if chosen:
        return chosen, [], ""
    if sick:
        return [], ["no unhealthy node is an app host or a database replica: "
                    + "; ".join(f"{inventory_name(n)}"
                                + (" (the database primary)" if n["id"] in refused else "")
                                + f": {', '.join(n['problems'])}" for n in sick)], \
            PRIMARY_WAY_OUT
    return [], ["every node is healthy: nothing to replace"], \
        "--host ID --force replaces a healthy node"


@probe("nodes.isolation_plan")
def isolation_plan_probe(ctx: StepContext, nodes: list[str]) -> dict[str, Any]:
    """What isolating ``nodes`` (instance ids, RB-DR-005 --isolate) involves: each
    must be a running app host; whether app. answers with it (it leaves first, so
    the others serve)."""
    found = {n["id"]: n for n in estate_nodes(ctx)}
    problems = []
    for node_id in nodes:
        node = found.get(node_id)
        if node is None or node["state"] != "running":
            problems.append(f"{node_id}: no running instance of the estate")
        elif node.get("role") != "app":
            problems.append(f"{node_id}: a {node.get('role')} node; isolating a database node "
                            "stops the service or its replication: fail over or replace it "
                            "first (drkit failover / replace-node), then isolate the old node")
    in_dns = set(app_record(ctx)["addresses"])
    picked = [{**found[i], "in_dns": found[i]["ip"] in in_dns,
               "cloud_region": cloud_region(ctx, found[i]["region"])}
              for i in nodes if i in found]
    return {"nodes": picked, "problems": problems, "ok": not problems,
            "dns_remove": sorted(n["ip"] for n in picked if n["in_dns"])}


@probe("nodes.isolated")
def isolated_probe(ctx: StepContext, nodes: list[str], wait_s: float = 30.0,
                   timeout: float = 1.0) -> dict[str, Any]:
    """Each node in its region's quarantine group alone, and cut off as that group
    says, seen from here (the bastion): ssh answers, the app's port does not, and
    app. no longer answers with it. Polls up to ``wait_s`` for the filter to take
    effect (a cloud applies a group change within seconds)."""
    deadline = time.monotonic() + wait_s
    while True:
        found = {n["id"]: n for n in estate_nodes(ctx)}
        answer = set(app_record(ctx)["addresses"])
        rows, findings = [], []
        for node_id in nodes:
            node = found.get(node_id)
            if node is None:
                findings.append(f"{node_id}: gone")
                continue
            names = node["groups"]
            ssh = _tcp(node["ip"], SSH_PORT, timeout) is None
            app = _tcp(node["ip"], SERVICES["app"]["port"], timeout) is None
            rows.append({"id": node_id, "ip": node["ip"], "groups": names, "ssh_from_bastion": ssh,
                         "app_port_answers": app, "in_dns": node["ip"] in answer})
            if len(names) != 1 or not names[0].endswith("-quarantine"):
                findings.append(f"{node_id}: in groups {', '.join(names)}, not the quarantine "
                                "group alone")
            if not ssh:
                findings.append(f"{node_id}: ssh from the bastion does not answer")
            if app:
                findings.append(f"{node_id}: the app's port still answers")
            if node["ip"] in answer:
                findings.append(f"{node_id}: app. still answers with {node['ip']}")
        if not findings or time.monotonic() > deadline:
            return {"nodes": rows, "findings": findings, "ok": not findings}
        time.sleep(0.5)
