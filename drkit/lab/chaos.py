"""Break the lab on purpose: zone and region outages, killed nodes, corruption.

An outage takes the zone's bridge down in the gateway: a down bridge forwards no
frame, so its hosts can reach nothing and nothing can reach them (measured: TCP
from another region times out, from inside the zone too), exactly as when a
zone's network fails. A killed node loses every process and its link while its
EC2 instance still says "running", as a crashed machine does.

What is broken is recorded in ``chaos.json`` (written atomically), which the
reconciler honours: it creates bridges of cut zones down and never restarts
sshd on a killed node until ``restore``. Every function returns the lines it
acted on, for the CLI to print.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from drkit.errors import ConfigError, LabError
from drkit.fsutil import atomic_write_json
from drkit.lab import netns, paths
from drkit.lab.hosts import kill_host_processes
from drkit.lab.processes import kill_pids
from drkit.lab.reconciler import read_chaos, read_view

#: ``corrupt --table T`` is implemented by whoever owns the database roles; they
#: register it here: fn(lab, table, **options) -> list of lines.
CORRUPT_HOOKS: dict[str, Callable[..., list[str]]] = {}


def register_corrupt_hook(name: str, fn: Callable[..., list[str]]) -> None:
    CORRUPT_HOOKS[name] = fn


def _save(lab: paths.LabPaths, chaos: dict[str, list[str]]) -> None:
    lab.root.mkdir(parents=True, exist_ok=True)
    atomic_write_json(lab.chaos_json, {k: sorted(set(v)) for k, v in chaos.items()})


def cloud_region(lab: paths.LabPaths, region: str) -> str:
    """``us-east`` -> ``us-east-1`` (from the hosts' DrRegion tags, else the lab's
    default estate); a cloud region passes through."""
    if re.fullmatch(r"[a-z]+-[a-z]+-\d+", region):
        return region
    for row in read_view(lab)["instances"]:
        if row.get("dr_region") == region:
            return row["region"]
    if region in paths.DEFAULT_REGIONS:
        return paths.DEFAULT_REGIONS[region]
    raise LabError(f"unknown region {region!r}",
                   hint=f"use one of {sorted(paths.DEFAULT_REGIONS)} or a cloud region name")


def zones_of(lab: paths.LabPaths, region: str) -> list[str]:
    """The availability zones of a region that have a segment (bridge) in the lab."""
    cloud = cloud_region(lab, region)
    found = {b[3:] for b in netns.bridges() if re.fullmatch(rf"br-{re.escape(cloud)}[a-z]", b)}
    found |= {r["zone"] for r in read_view(lab)["instances"]
              if r.get("region") == cloud and r.get("zone")}
    if not found:
        raise LabError(f"region {region} ({cloud}) has no zone in the lab")
    return sorted(found)


def zone_outage(lab: paths.LabPaths, zone: str) -> list[str]:
    """Cut one availability zone off: its bridge goes down."""
    bridge = paths.bridge_name(zone)
    if not netns.link_exists(bridge, paths.GATEWAY_NS):
        raise LabError(f"zone {zone} has no segment in the lab (no {bridge})",
                       hint="see `lab status` for the zones in use")
    chaos = read_chaos(lab)
    chaos["zones_down"].append(zone)
    _save(lab, chaos)  # first, so a bridge the reconciler creates meanwhile starts down
    netns.set_link(bridge, up=False, ns=paths.GATEWAY_NS)
    return [f"zone {zone}: {bridge} down"]


def region_outage(lab: paths.LabPaths, region: str) -> list[str]:
    """Cut every zone of a region (``us-east`` or ``us-east-1``)."""
    lines = []
    for zone in zones_of(lab, region):
        lines += zone_outage(lab, zone)
    return lines


def api_outage(lab: paths.LabPaths, region: str, service: str = "") -> list[str]:
    """The control plane stops answering one region's API (one service, or every
    one): each request signed for it gets 503 ServiceUnavailable, as a cloud's
    regional outage looks to a client, while the other regions answer."""
    cloud = cloud_region(lab, region)
    chaos = read_chaos(lab)
    chaos["api_down"].append(f"{cloud}/{service or '*'}")
    _save(lab, chaos)
    return [f"api {service or 'every service'} in {cloud}: down (503 ServiceUnavailable)"]


#: The states of an instance that still exists (a killed host a fence stopped
#: since is restored all the same).
EXISTING = ("pending", "running", "stopping", "stopped")


def find_host(lab: paths.LabPaths, host: str, *,
              states: tuple[str, ...] = ("running",)) -> dict[str, Any]:
    """The hosts.json row for an instance id, Name tag, IP or namespace, among
    instances in ``states`` (a ConfigError when none, or more than one, matches)."""
    rows = read_view(lab)["instances"]
    matches = [r for r in rows if host in (r["instance_id"], r["name"], r["ip"], r["ns"])
               and r["state"] in states]
    if len(matches) != 1:
        names = ", ".join(f"{r['name']} ({r['ip']})" for r in rows if r["state"] == "running")
        raise ConfigError(f"{'no' if not matches else 'more than one'} "
                          f"{'running' if states == ('running',) else 'existing'} host matches "
                          f"{host!r}", hint=f"running hosts: {names}" if names else
                          "the lab has no running host (is it up? see `drkit lab.status`)")
    return matches[0]


_TABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


def check_target(lab: paths.LabPaths, regions: dict[str, dict[str, Any]], *, zone: str = "",
                 region: str = "", host: str = "", table: str = "") -> None:
    """Refuse, before anything is touched, a zone, region, host or table the lab
    cannot have: regions and zones by the lab environment's settings (``regions``,
    as in inventory/lab), hosts by the reconciler's view. Raises ConfigError."""
    names = sorted(regions)
    clouds = [str(regions[n].get("cloud_region")) for n in names]
    if region and region not in names and region not in clouds:
        raise ConfigError(f"unknown region {region!r}",
                          hint=f"the lab's regions: {', '.join(names)} "
                               f"(or by cloud name: {', '.join(clouds)})")
    zones = sorted(z for r in regions.values() for z in r.get("zones") or [])
    if zone and zone not in zones:
        raise ConfigError(f"unknown zone {zone!r}", hint=f"the lab's zones: {', '.join(zones)}")
    if table and not _TABLE.fullmatch(table):
        raise ConfigError(f"--table {table!r}: not a plain table name",
                          hint="use letters, digits and _ (at most 63), e.g. --table orders")
    if host:
        find_host(lab, host)


def node_kill(lab: paths.LabPaths, host: str) -> list[str]:
    """Crash a host: kill everything in it and unplug it; the instance stays running."""
    row = find_host(lab, host)
    iid = row["instance_id"]
    chaos = read_chaos(lab)
    chaos["killed"].append(iid)
    _save(lab, chaos)  # first, so the reconciler does not restart sshd under us
    port = paths.host_port_name(iid)
    if netns.link_exists(port, paths.GATEWAY_NS):
        netns.set_link(port, up=False, ns=paths.GATEWAY_NS)
    count = kill_host_processes(iid)
    return [f"host {row['name']} ({iid}, {row['ip']}): killed {count} processes, link down"]


def app_kill(lab: paths.LabPaths, host: str) -> list[str]:
    """Crash the app on a host (SIGKILL of its process); the host stays up, ssh
    answers: a service failure, not a node failure. Nothing to undo: restarting
    the app is the recovery (app-recovery --type service-failure)."""
    row = find_host(lab, host)
    pids = [pid for pid in netns.ns_pids(row["ns"]) if _is_app(pid)]
    if not pids:
        raise ConfigError(f"no app process runs on {row['name']} ({row['ip']})",
                       hint="app-kill takes an app host whose app runs (drkit lab.status)")
    kill_pids(pids)
    return [f"host {row['name']} ({row['instance_id']}, {row['ip']}): app killed "
            f"(pid {', '.join(map(str, pids))}); the host is up"]


def _is_app(pid: int) -> bool:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return any(a.endswith(b"/app.py") for a in argv)


def corrupt(lab: paths.LabPaths, table: str, **options: Any) -> list[str]:
    """Damage a table on the primary (drop it, or overwrite a column in every row),
    through the hook the database roles register."""
    if "postgres" not in CORRUPT_HOOKS:
        raise LabError("corrupt: no database hook registered",
                       hint="the PostgreSQL lab support (drkit.lab) registers "
                            "chaos.register_corrupt_hook('postgres', fn)")
    return CORRUPT_HOOKS["postgres"](lab, table, **options)


def restore(lab: paths.LabPaths, *, zone: str | None = None, region: str | None = None,
            host: str | None = None, wait_s: float = 10.0) -> list[str]:
    """Undo outages, API outages and node kills: everything, or one zone, region
    or host.

    Links come back up and neighbour caches are flushed (gateway and every host)
    so traffic resumes at once; killed nodes get sshd back from the reconciler,
    which this waits for (up to ``wait_s``).
    """
    chaos = read_chaos(lab)
    everything = zone is None and region is None and host is None
    zones = set(chaos["zones_down"]) if everything else set()
    if zone:
        zones.add(zone)
    if region:
        zones |= set(zones_of(lab, region))
    hosts = set(chaos["killed"]) if everything else set()
    if host:
        hosts.add(find_host(lab, host, states=EXISTING)["instance_id"])
    cloud = cloud_region(lab, region) if region else None
    apis = [a for a in chaos["api_down"] if everything or a.split("/")[0] == cloud]
    lines = [f"api {a.split('/')[1].replace('*', 'every service')} in {a.split('/')[0]}: up"
             for a in apis]
    for z in sorted(zones):
        bridge = paths.bridge_name(z)
        if netns.link_exists(bridge, paths.GATEWAY_NS):
            netns.set_link(bridge, up=True, ns=paths.GATEWAY_NS)
        lines.append(f"zone {z}: {bridge} up")
    for iid in sorted(hosts):
        port = paths.host_port_name(iid)
        if netns.link_exists(port, paths.GATEWAY_NS):
            netns.set_link(port, up=True, ns=paths.GATEWAY_NS)
        lines.append(f"host {iid}: link up, sshd restarted by the reconciler")
    chaos["zones_down"] = [z for z in chaos["zones_down"] if z not in zones]
    chaos["killed"] = [h for h in chaos["killed"] if h not in hosts]
    chaos["api_down"] = [a for a in chaos["api_down"] if a not in apis]
    _save(lab, chaos)
    netns.neigh_flush(paths.GATEWAY_NS)
    for ns in netns.list_namespaces(paths.HOST_NS_PREFIX):
        netns.neigh_flush(ns)
    if hosts:
        _wait_ssh_ready(lab, hosts, wait_s, since=time.time())
    return lines or ["nothing to restore"]


def _wait_ssh_ready(lab: paths.LabPaths, instance_ids: set[str], wait_s: float, *,
                    since: float) -> None:
    """Wait for a view written after ``since`` that shows the hosts answering ssh."""
    deadline = time.monotonic() + wait_s
    while True:
        view = read_view(lab)
        rows = {r["instance_id"]: r for r in view["instances"]}
        fresh = view.get("written_at", 0) > since
        pending = [i for i in instance_ids
                   if rows.get(i, {}).get("state") == "running"
                   and not (fresh and rows[i]["ssh_ready"] and i not in view["killed"])]
        if not pending:
            return
        if time.monotonic() > deadline:
            raise LabError(f"hosts {pending} did not answer ssh within {wait_s:.0f} s of restore",
                           hint=f"is the reconciler running? see {lab.log_file('reconciler')}")
        time.sleep(0.1)


def describe(lab: paths.LabPaths) -> dict[str, Any]:
    """What is broken right now (for status)."""
    return json.loads(json.dumps(read_chaos(lab)))
