"""A rebuild rehearsal's scratch estate: a second estate beside the live one, with its
own name, Terraform state and DNS zone, that RB-DR-007 rebuilds from the live
estate's backups, and that is destroyed afterwards (``drkit rehearse rebuild``).

The live environment's ``drkit.rehearsals.scratch`` names it (docs/internals.md,
"Rebuild rehearsals")::

    scratch:
      estate: lab-rehearsal                # never the live estate's name
      zone: rehearsal.lab.internal         # never the live zone
      state_key: envs/lab-rehearsal/terraform.tfstate
      region: ap-south                     # the region rebuilt
      terraform_vars: {vpc_cidrs: {...}}   # networks apart from the live estate's

The scratch environment is generated from the live one (``write_environment``):
the same settings with those names, the backups and the key backup read from the
live estate's buckets (``drkit.backup.estate``), secrets written under the scratch
estate's names, nothing archived (``drkit.postgres.archive: false``: the copy's
WAL must never reach the live repositories). Its inventory finds only hosts
tagged with the scratch estate.

``confinement_problems`` is the guard: every name the scratch estate changes must
differ from the live estate's; it runs before the environment is written, before
the run (the runbook's preflight, ``rehearsal.confined``) and before the teardown.
``teardown`` destroys everything in the scratch's Terraform state, its DNS zone,
the state itself and the generated environment; ``leftovers`` says what of the
scratch estate still exists (empty after a teardown). A ledger file names the
scratch estate while it may exist, so that the next rehearsal or ``--cleanup``
tears down what a killed one left.
"""

from __future__ import annotations

import copy
import ipaddress
import shutil
import socket
import time
from pathlib import Path
from typing import Any

import yaml

from drkit.env import SETTINGS_FILE, Environment, load_environment
from drkit.errors import ConfigError
from drkit.fsutil import atomic_write_json, atomic_write_text
from drkit.lock import make_lock, pid_alive
from drkit.project import Project
from drkit.rehearsals import load_settings

#: What a scratch section may say.
KEYS = {"estate", "zone", "state_key", "region", "terraform_vars"}
INVENTORY_FILE = "aws_ec2.yml"


def scratch_settings(live: dict[str, Any]) -> dict[str, Any]:
    """The scratch section of the live settings with its defaults filled in."""
    given = dict((live.get("rehearsals") or {}).get("scratch") or {})
    estate = given.get("estate") or f"{live.get('estate', 'lab')}-rehearsal"
    return {
        "estate": estate,
        "zone": given.get("zone") or f"rehearsal.{(live.get('dns') or {}).get('zone', '')}",
        "state_key": given.get("state_key") or f"envs/{estate}/terraform.tfstate",
        "region": given.get("region") or "",
        "terraform_vars": dict(given.get("terraform_vars") or {}),
    }


def confinement_problems(live: dict[str, Any], scratch: dict[str, Any]) -> list[str]:
    """Why the scratch estate could touch the live one (empty when it cannot): its
    name, zone, Terraform state and secrets must all be its own."""
    found = []
    live_tf = (live.get("terraform") or {}).get("backend_config") or {}
    scratch_tf = (scratch.get("terraform") or {}).get("backend_config") or {}
    if scratch.get("estate") == live.get("estate"):
        found.append(f"the rehearsal's estate name equals the live one ({live.get('estate')}): "
                     "every resource it creates or destroys would be the live estate's; set "
                     "drkit.rehearsals.scratch.estate to another name")
    if (scratch.get("dns") or {}).get("zone") == (live.get("dns") or {}).get("zone"):
        found.append(f"the rehearsal's DNS zone equals the live one "
                     f"({(live.get('dns') or {}).get('zone')}): set "
                     "drkit.rehearsals.scratch.zone to another zone")
    if (scratch_tf.get("bucket"), scratch_tf.get("key")) == (live_tf.get("bucket"),
                                                            live_tf.get("key")):
        found.append(f"the rehearsal's Terraform state is the live one ({live_tf.get('key')}): "
                     "set drkit.rehearsals.scratch.state_key to another key")
    live_prefix = f"drkit/{live.get('estate')}/"
    for item in (scratch.get("keys") or {}).get("items") or []:
        if str(item.get("secret", "")).startswith(live_prefix):
            found.append(f"the rehearsal would write the live secret {item['secret']}")
    if (scratch.get("postgres") or {}).get("archive", True):
        found.append("the rehearsal's database would archive into the live estate's "
                     "repositories (drkit.postgres.archive must be false)")
    return found


def derive(live: dict[str, Any], live_env_name: str) -> dict[str, Any]:
    """The scratch environment's drkit settings, from the live environment's."""
    s = scratch_settings(live)
    out = copy.deepcopy(live)
    live_estate = live.get("estate", "lab")
    out["estate"] = s["estate"]
    out["dns"] = {**(live.get("dns") or {}), "zone": s["zone"]}
    tf = out.setdefault("terraform", {})
    tf["backend_config"] = {**(tf.get("backend_config") or {}), "key": s["state_key"]}
    tf["vars"] = {**s["terraform_vars"], "estate": s["estate"], "scratch": True}
    out.setdefault("backup", {})["estate"] = live_estate
    out["postgres"] = {**(live.get("postgres") or {}), "archive": False}
    keys = out.get("keys") or {}
    for item in keys.get("items") or []:
        if item.get("secret"):
            item["secret"] = item["secret"].replace(f"drkit/{live_estate}/",
                                                    f"drkit/{s['estate']}/", 1)
    # keys.passphrase_secret stays the live one: read only, to open the key backup.
    out["rehearsals"] = {"live": {"env": live_env_name, "estate": live_estate,
                                  "zone": (live.get("dns") or {}).get("zone"),
                                  "state_key": ((live.get("terraform") or {})
                                                .get("backend_config") or {}).get("key")}}
    return out


def environment_dir(project: Project, live: Environment) -> Path:
    """Where the scratch environment is generated: two levels under the project, like
    inventory/<env>, so the inventory's relative paths hold."""
    return project.state_dir / f"scratch-{scratch_settings(live.settings)['estate']}"


def ledger_path(project: Project, live: Environment) -> Path:
    return project.state_dir / f"scratch-{live.name}.json"


def write_environment(project: Project, live: Environment) -> Environment:
    """Generate the scratch environment (inventory and settings) after the guard,
    record it in the ledger first, and load it."""
    settings = derive(live.settings, live.name)
    problems = confinement_problems(live.settings, settings)
    if problems:
        raise ConfigError("the rebuild rehearsal could touch the live estate; nothing was "
                          "changed", problems=problems)
    target = environment_dir(project, live)
    project.state_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(ledger_path(project, live), {"env_dir": str(target),
                                                   "estate": settings["estate"],
                                                   "zone": settings["dns"]["zone"],
                                                   "state_key": settings["terraform"]
                                                   ["backend_config"]["key"]})
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(live.path / "group_vars", target / "group_vars")
    atomic_write_text(target / SETTINGS_FILE,
                      "# Generated by drkit rehearse rebuild from the live environment "
                      f"{live.name}; removed by its teardown.\n"
                      + yaml.safe_dump({"drkit": settings}, sort_keys=False))
    inventory = yaml.safe_load((live.path / INVENTORY_FILE).read_text())
    inventory.setdefault("filters", {})["tag:Estate"] = settings["estate"]
    atomic_write_text(target / INVENTORY_FILE, yaml.safe_dump(inventory, sort_keys=False))
    return load_environment(project, str(target))


def networks_problems(live: Environment, scratch: Environment) -> list[str]:
    """The scratch estate's VPC networks must not overlap the live estate's (read
    from EC2): two hosts with one address would disturb the live one."""
    wanted = (scratch.settings["terraform"]["vars"].get("vpc_cidrs") or {})
    if not wanted:
        return ["drkit.rehearsals.scratch.terraform_vars.vpc_cidrs: missing; the scratch "
                "estate's networks would be the live estate's"]
    found = []
    for region, conf in live.regions.items():
        vpcs = live.client("ec2", conf["cloud_region"]).describe_vpcs(Filters=[
            {"Name": "tag:Estate", "Values": [live.settings.get("estate", "lab")]}])["Vpcs"]
        for vpc in vpcs:
            for name, cidr in wanted.items():
                if ipaddress.ip_network(cidr).overlaps(ipaddress.ip_network(vpc["CidrBlock"])):
                    found.append(f"drkit.rehearsals.scratch.terraform_vars.vpc_cidrs.{name}: "
                                 f"{cidr} overlaps the live estate's {region} VPC "
                                 f"{vpc['CidrBlock']}")
    return found


def leftovers(live: Environment) -> dict[str, list[str]]:
    """What of the scratch estate exists in the cloud: instances, buckets, secrets, the
    DNS zone, the Terraform state (every list empty: nothing)."""
    s = scratch_settings(live.settings)
    estate, tag = s["estate"], [{"Name": "tag:Estate", "Values": [s["estate"]]}]
    out: dict[str, list[str]] = {"instances": [], "buckets": [], "secrets": [], "zones": [],
                                 "state": []}
    for conf in live.regions.values():
        cloud = conf["cloud_region"]
        for r in live.client("ec2", cloud).describe_instances(Filters=tag)["Reservations"]:
            out["instances"] += [i["InstanceId"] for i in r["Instances"]
                                 if i["State"]["Name"] != "terminated"]
        for page in live.client("secretsmanager", cloud).get_paginator(
                "list_secrets").paginate():
            out["secrets"] += [x["Name"] for x in page["SecretList"]
                               if x["Name"].startswith(f"drkit/{estate}/")]
    s3 = live.client("s3", live.settings.get("control_region"))
    out["buckets"] = [b["Name"] for b in s3.list_buckets().get("Buckets", [])
                      if b["Name"].startswith(f"{estate}-")]
    r53 = live.client("route53", live.settings.get("control_region"))
    out["zones"] = [z["Id"] for z in r53.list_hosted_zones()["HostedZones"]
                    if z["Name"].rstrip(".") == s["zone"]]
    backend = (live.settings.get("terraform") or {}).get("backend_config") or {}
    if backend.get("bucket"):
        listed = s3.list_objects_v2(Bucket=backend["bucket"], Prefix=s["state_key"])
        out["state"] = [o["Key"] for o in listed.get("Contents", [])]
    return out


def delete_zone(live: Environment, zone: str) -> list[str]:
    """Delete every hosted zone named ``zone`` with its records (never the live one:
    the guard compared the names)."""
    r53 = live.client("route53", live.settings.get("control_region"))
    gone = []
    for hz in r53.list_hosted_zones()["HostedZones"]:
        if hz["Name"].rstrip(".") != zone:
            continue
        records = r53.list_resource_record_sets(HostedZoneId=hz["Id"])["ResourceRecordSets"]
        changes = [{"Action": "DELETE", "ResourceRecordSet": r} for r in records
                   if r["Type"] not in ("SOA", "NS")]
        if changes:
            r53.change_resource_record_sets(HostedZoneId=hz["Id"],
                                            ChangeBatch={"Changes": changes})
        r53.delete_hosted_zone(Id=hz["Id"])
        gone.append(f"zone {zone} ({hz['Id']})")
    return gone


def wait_gone(live: Environment, what: str, timeout_s: float = 120.0) -> None:
    """Wait until ``leftovers`` lists nothing of ``what`` (instances terminate a
    moment after their groups are deleted)."""
    deadline = time.monotonic() + timeout_s
    while (left := leftovers(live)[what]) and time.monotonic() < deadline:
        time.sleep(1.0)
    if left:
        raise ConfigError(f"the scratch estate's {what} are still there after "
                          f"{timeout_s:.0f} s: {', '.join(left)}",
                          hint="run drkit rehearse rebuild --cleanup again")


def teardown(project: Project, live: Environment, say: Any = print) -> dict[str, Any]:
    """Destroy the scratch estate: everything in its Terraform state (instances,
    groups, networks, buckets, keys, secrets), its DNS zone, the state itself, the
    generated environment and the ledger, after the guard. Safe to repeat, and what a
    killed rehearsal left is found from the settings: the names are fixed.
    Returns {ok, duration_s, detail} (a rehearsal's baseline)."""
    from drkit.steps import open_root

    started = time.monotonic()
    scratch = write_environment(project, live)  # the guard; the environment Terraform needs
    _drop_stale_lock(project, scratch, say)
    s = scratch_settings(live.settings)
    tf_dir = scratch.settings["terraform"]["dir"]
    say(f"teardown: terraform destroy of {s['estate']} (state {s['state_key']})")
    tf, backend, env_vars = open_root(project, scratch, tf_dir,
                                      project.state_dir / "teardown" / s["estate"])
    result = tf.init(backend_config=backend, timeout=900)
    if result.ok:
        result = tf.ensure_init(lambda: tf.apply_now(vars=env_vars, destroy=True, timeout=900),
                                backend, timeout=900)
    if not result.ok:
        raise ConfigError(f"terraform destroy of the scratch estate {s['estate']} failed: "
                          f"{result.summary}", hint="fix it and run drkit rehearse rebuild "
                                                    "--cleanup again")
    say(f"teardown: {result.summary}")
    wait_gone(live, "instances")
    lines = delete_zone(live, s["zone"])
    backend = backend or {}
    if backend.get("bucket"):
        live.client("s3", backend.get("region")).delete_object(Bucket=backend["bucket"],
                                                              Key=s["state_key"])
        lines.append(f"state s3://{backend['bucket']}/{s['state_key']}")
        if backend.get("dynamodb_table"):
            live.client("dynamodb", backend.get("region")).delete_item(
                TableName=backend["dynamodb_table"],
                Key={"LockID": {"S": f"{backend['bucket']}/{s['state_key']}-md5"}})
    shutil.rmtree(project.state_dir / "terraform" / scratch.name, ignore_errors=True)
    shutil.rmtree(environment_dir(project, live), ignore_errors=True)
    ledger_path(project, live).unlink(missing_ok=True)
    for line in lines:
        say(f"teardown: deleted {line}")
    left = {k: v for k, v in leftovers(live).items() if v}
    duration = round(time.monotonic() - started, 3)
    if left:
        return {"ok": False, "duration_s": duration,
                "detail": "left behind: " + "; ".join(f"{k}: {', '.join(v)}"
                                                      for k, v in left.items())}
    return {"ok": True, "duration_s": duration,
            "detail": f"scratch estate {s['estate']} destroyed: {result.summary}; "
                      + (", ".join(lines) or "no zone")}


def _drop_stale_lock(project: Project, scratch: Environment, say: Any) -> None:
    """A rehearsal killed mid-run left the scratch environment's lock: remove it when
    its holder is gone (this host, no such process); refuse while a run holds it."""
    lock = make_lock(scratch.settings.get("lock"), env_name=scratch.name,
                     state_dir=project.state_dir)
    holder = lock.read()
    if holder is None:
        return
    if holder.host != socket.gethostname() or pid_alive(holder.pid):
        raise ConfigError(f"a rehearsal runs in the scratch estate: {holder.describe()}",
                          hint="let it finish (it tears the estate down), or stop it first; "
                               "nothing was changed")
    say(f"teardown: {lock.release(holder)} (its holder is gone)")


def pending(project: Project, live: Environment) -> bool:
    """Whether a rehearsal's scratch estate may still exist (its ledger is there)."""
    return ledger_path(project, live).exists()


def rehearse_rebuild(project: Project, live: Environment, params: dict[str, Any], *,
                     keep: bool = False, json_mode: bool = False, say: Any = print) -> Any:
    """``drkit rehearse rebuild`` (with the parameters of the schedule's ``rebuild``
    entry, if any, under ``params``): tear down what an earlier rehearsal left, generate
    the scratch environment (after the guard and the network check), rehearse
    RB-DR-007 there (``rehearsal: true``) and tear the scratch estate down: after the
    run, and on any failure or Ctrl-C (not with ``keep``). Returns the rehearsal's
    Outcome (drkit.rehearse)."""
    from drkit.rehearse import rehearse

    if pending(project, live):
        say("a previous rehearsal's scratch estate may remain: tearing it down first")
        left = teardown(project, live, say)
        if not left["ok"]:
            raise ConfigError(f"the previous rehearsal's scratch estate is not gone: "
                              f"{left['detail']}", hint="drkit rehearse rebuild --cleanup")
    entry = load_settings(live.settings).find("rebuild")  # the schedule's, -p overrides
    params = {**(entry.params if entry else {}), **params}
    region = str(params.pop("region", "") or scratch_settings(live.settings)["region"])
    if not region:
        raise ConfigError("rehearse rebuild needs the region to rebuild",
                          hint="--param region=ap-south, or drkit.rehearsals.scratch.region")
    live.region(region)
    scratch = write_environment(project, live)
    torn = False

    def restore() -> dict[str, Any]:
        nonlocal torn
        torn = True
        if keep:
            return {"ok": True, "duration_s": 0.0,
                    "detail": "kept (--keep): drkit rehearse rebuild --cleanup destroys it"}
        return teardown(project, live, say)

    try:
        problems = networks_problems(live, scratch)
        if problems:
            raise ConfigError("the scratch estate's networks would meet the live estate's; "
                              "nothing was created", problems=problems)
        return rehearse(project, scratch, "RB-DR-007",
                        {**params, "region": region, "rehearsal": True},
                        json_mode=json_mode, say=say, restore=restore)
    finally:
        if not torn and not keep:
            teardown(project, live, say)
