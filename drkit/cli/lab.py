"""The lab's tasks: `invoke lab.up`, `drkit lab.status`, `drkit lab.chaos region-outage ...`."""

from __future__ import annotations

import json
import re
import sys

from invoke import Collection, task

from drkit.cli.common import maps_errors, parse_duration_flag, parse_positive
from drkit.env import load_environment
from drkit.errors import ConfigError
from drkit.project import find_project

#: Each kind of chaos and the options it takes (all but restore need theirs).
CHAOS_OPTIONS = {"zone-outage": ("zone",), "region-outage": ("region",), "node-kill": ("host",),
                 "app-kill": ("host",),
                 "corrupt": ("table", "how"), "damage-backup": ("region",),
                 "api-outage": ("region", "service"), "region-lost": ("region",),
                 "restore": ("zone", "region", "host")}
CHAOS_KINDS = tuple(CHAOS_OPTIONS)


def _say(line: str) -> None:
    print(line, flush=True)


def _controller():
    from drkit.lab import controller, database  # the lab needs root and Linux: import on use

    database.register()
    return controller


@task(help={"no_configure": "build hosts but skip the site playbook (no PostgreSQL, DNS, app)"})
@maps_errors
def up(c, no_configure=False):
    """Build the lab: gateway, moto, DNS, hosts from Terraform, PostgreSQL and the app."""
    _controller().up(find_project().root, progress=_say, configure=not no_configure)


@task
@maps_errors
def down(c):
    """Remove every namespace, link, process and directory the lab made."""
    _controller().down(find_project().root, progress=_say)


@task(help={"json": "print the status as JSON"})
@maps_errors
def status(c, json_=False):
    """Hosts (instance, IP, region, zone, role, state), database roles and lag, DNS."""
    st = _controller().status(find_project().root)
    if json_:
        print(json.dumps(st, indent=2, default=str))
        return
    print(f"lab {'up' if st['up'] else 'DOWN'} ({st['lab_dir']})")
    for name, proc in st["processes"].items():
        print(f"  {name:<14} {'running' if proc['running'] else 'stopped'}"
              + (f" (pid {proc['pid']})" if proc["pid"] else ""))
    dns = st["dns"]
    print(f"  dns            {'answering' if dns.get('answering') else 'not answering'}"
          + (f": db.lab.internal -> {', '.join(dns.get('addresses') or []) or dns.get('rcode')}"
             if dns.get("answering") else ""))
    print(f"\n{'INSTANCE':<21} {'IP':<12} {'REGION':<11} {'ZONE':<12} {'ROLE':<5} "
          f"{'STATE':<9} SSH")
    for row in sorted(st["instances"], key=lambda r: (r.get("region", ""), r.get("role", ""),
                                                     r.get("ip") or "")):
        print(f"{row['instance_id']:<21} {row.get('ip') or '-':<12} {row.get('region', ''):<11} "
              f"{row.get('zone', ''):<12} {row.get('role', ''):<5} {row.get('state', ''):<9} "
              f"{'yes' if row.get('ssh_ready') else 'no'}")
    pg = st["probes"].pop("postgres", None)
    if pg and "nodes" in pg:
        print(f"\n{'DB NODE':<11} {'ZONE':<12} {'ROLE':<11} {'HOST':<12} {'STREAMING':<10} "
              f"{'SYNC':<9} {'LAG':>8}  TIMELINE")
        for key, n in sorted(pg["nodes"].items()):
            lag = "" if n["lag_bytes"] is None else f"{n['lag_bytes']} B"
            streaming = "" if n["streaming"] is None else ("yes" if n["streaming"] else "NO")
            print(f"{key:<11} {n.get('zone') or '-':<12} {n['role']:<11} {n['host'] or '-':<12} "
                  f"{streaming:<10} {n['sync_state'] or '':<9} {lag:>8}  {n['timeline'] or ''}"
                  + (f"  ({n['error']})" if n["error"] else ""))
        print(f"db.lab.internal points at: {pg['dns_primary_node'] or 'nothing reachable'}")
    elif pg:
        print(f"\ndatabase: {pg.get('error')}")
    for name, probe in st["probes"].items():
        print(f"\n{name}:")
        print(json.dumps(probe, indent=2, default=str))
    chaos = st["chaos"]
    if any(chaos.values()):
        print(f"\nchaos in effect: {json.dumps(chaos)}")


@task
@maps_errors
def reset(c):
    """Return a used lab to the baseline (undo chaos, default capacities, primary in
    us-east-1, replicas streaming, DNS back) without rebuilding it."""
    _controller().reset(find_project().root, progress=_say)


CHAOS_HELP = {
    "kind": f"one of: {', '.join(CHAOS_KINDS)}",
    "zone": "availability zone, e.g. eu-west-1a (zone-outage, restore)",
    "region": "region, e.g. us-east or us-east-1 (region-outage, region-lost, restore); "
              "for damage-backup, the region of the repository to damage",
    "host": "instance id, name or IP (node-kill, app-kill, restore)",
    "service": "api-outage: one AWS service (e.g. secretsmanager, s3); default every one",
    "table": "table to damage on the primary (corrupt)",
    "how": "corrupt: drop (default: DROP TABLE) or update (overwrite a column in every "
           "row); the damaging transaction's XID is printed"}


@task(positional=["kind"], help=CHAOS_HELP)
@maps_errors
def chaos(c, kind, zone="", region="", host="", table="", service="", how=""):
    """Break the lab on purpose: zone/region outages, a region's API down, a region's
    hosts and secrets gone (region-lost: only a rebuild brings them back), a crashed
    node or app, a dropped table, a damaged backup; `restore` undoes outages and node
    kills (all, or the one named)."""
    from drkit.lab import chaos as lab_chaos
    from drkit.lab.controller import INVENTORY_DIR
    from drkit.lab.paths import LabPaths

    if kind not in CHAOS_OPTIONS:
        raise ConfigError(f"unknown chaos kind '{kind}'",
                          hint=f"use one of: {', '.join(CHAOS_KINDS)}")
    given = {"zone": zone, "region": region, "host": host, "table": table,
             "service": service, "how": how}
    if how and how not in ("drop", "update"):
        raise ConfigError(f"--how {how!r}: not a kind of damage", hint="use drop or update")
    if service and not re.fullmatch(r"[a-z0-9-]+", service):
        raise ConfigError(f"--service {service!r} is not an AWS service name",
                          hint="e.g. --service secretsmanager")
    takes = CHAOS_OPTIONS[kind]
    extra = [f"--{name}" for name, value in given.items() if value and name not in takes]
    if extra:
        raise ConfigError(f"{kind} does not take {', '.join(extra)}",
                          hint=f"drop {', '.join(extra)} ({kind} takes "
                               f"{' or '.join(f'--{t}' for t in takes)})")
    if kind != "restore" and not given[takes[0]]:
        raise ConfigError(f"{kind} needs --{takes[0]}",
                          hint=f"--{takes[0]}: {CHAOS_HELP[takes[0]]}")
    project = find_project()
    lab = LabPaths.for_project(project.root)
    environment = load_environment(project, str(project.root / INVENTORY_DIR))
    regions = environment.regions
    lab_chaos.check_target(lab, regions, zone=zone, region=region, host=host, table=table)
    if kind == "damage-backup":
        from drkit.lab.backup import damage_backup

        for line in damage_backup(environment.settings, region):
            print(line)
        return
    if kind == "region-lost":
        from drkit.lab.region_loss import lose_region

        for line in lose_region(environment.settings, region):
            print(line)
        return

    _controller()  # registers the database's chaos hook
    if kind == "zone-outage":
        lines = lab_chaos.zone_outage(lab, zone)
    elif kind == "region-outage":
        lines = lab_chaos.region_outage(lab, region)
    elif kind == "node-kill":
        lines = lab_chaos.node_kill(lab, host)
    elif kind == "app-kill":
        lines = lab_chaos.app_kill(lab, host)
    elif kind == "corrupt":
        lines = lab_chaos.corrupt(lab, table, how=how or "drop")
    elif kind == "api-outage":
        lines = lab_chaos.api_outage(lab, region, service)
    else:
        lines = lab_chaos.restore(lab, zone=zone or None, region=region or None,
                                  host=host or None)
    for line in lines:
        print(line)
    sys.stdout.flush()


@task(help={"rate": "writes per second, more than 0 (default 100)",
            "for": "how long (30s, 2m; default 60s); 0 = until Ctrl-C",
            "out": "directory for the acknowledgements and the report "
                   "(default .drkit/lab/canary/<time>)"})
@maps_errors
def canary(c, rate="100", for_="60s", out=""):
    """Write numbered rows through db.lab.internal, then report client-observed write
    downtime and acknowledged writes missing from the current primary."""
    import signal
    from datetime import UTC, datetime
    from pathlib import Path

    from drkit.lab import canary as lab_canary
    from drkit.lab import database

    writes_per_s = parse_positive(rate, "--rate", example="100")
    duration_s = parse_duration_flag(for_, "--for",
                                     hint="or --for 0 to write until Ctrl-C")
    if out and Path(out).exists() and not Path(out).is_dir():
        raise ConfigError(f"--out {out}: exists and is not a directory",
                          hint="name a directory (it is created if missing)")
    project = find_project()
    out_dir = Path(out) if out else (project.state_dir / "lab" / "canary"
                                     / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ"))
    config = database.canary_config(out_dir, rate=writes_per_s, duration_s=duration_s or None)
    run = lab_canary.Canary(config)
    signal.signal(signal.SIGTERM, lambda s, f: run.stop())
    signal.signal(signal.SIGINT, lambda s, f: run.stop())
    print(f"canary: {writes_per_s:g} writes/s to {config.name} for "
          f"{for_ if duration_s else 'until Ctrl-C'}; acks in {out_dir}", flush=True)
    run.run()
    result = database.canary_report(out_dir)
    print(json.dumps({k: v for k, v in result.items() if k != "lost_seqs"}, indent=2))


ns = Collection("lab")
for _t in (up, down, status, reset, chaos, canary):
    ns.add_task(_t)
