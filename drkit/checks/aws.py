"""Probes of the estate through the AWS APIs: instances, secrets, the Terraform
state backend. They use the environment's endpoint and credentials, exactly as
they would against AWS."""

from __future__ import annotations

from typing import Any

from drkit.registry import StepContext, probe


def cloud_region(ctx: StepContext, region: str) -> str:
    """The cloud region of a logical region name (``eu-west`` -> ``eu-west-1``)."""
    return ctx.env.region(region)["cloud_region"]


def instances(ctx: StepContext, region: str, role: str | None = None,
              states: tuple[str, ...] = ("pending", "running", "stopping", "stopped"),
              ) -> list[dict[str, Any]]:
    """The estate's instances in a logical region (optionally of one Role tag). Only
    this estate's (tag Estate): another estate may share the account, e.g. a rebuild
    rehearsal's scratch estate."""
    ec2 = ctx.env.client("ec2", cloud_region(ctx, region))
    filters = [{"Name": "tag:DrRegion", "Values": [region]},
               {"Name": "instance-state-name", "Values": list(states)}]
    if ctx.env.settings.get("estate"):
        filters.append({"Name": "tag:Estate", "Values": [ctx.env.settings["estate"]]})
    if role:
        filters.append({"Name": "tag:Role", "Values": [role]})
    out = []
    for page in ec2.get_paginator("describe_instances").paginate(Filters=filters):
        for res in page["Reservations"]:
            for inst in res["Instances"]:
                tags = {t["Key"]: t["Value"] for t in inst.get("Tags", [])}
                groups = [g.get("GroupName", "") for g in inst.get("SecurityGroups", [])]
                out.append({"id": inst["InstanceId"], "ip": inst.get("PrivateIpAddress"),
                            "state": inst["State"]["Name"],
                            "zone": inst["Placement"]["AvailabilityZone"],
                            "role": tags.get("Role"), "name": tags.get("Name"),
                            "region": region,
                            "launched": (inst["LaunchTime"].timestamp()
                                         if inst.get("LaunchTime") else 0.0),
                            "asg": tags.get("aws:autoscaling:groupName"),
                            "groups": groups,
                            # RB-DR-005 --isolate moves a host into <estate>-<region>-quarantine:
                            # out of the estate's service, kept for forensics.
                            "quarantined": any(g.endswith("-quarantine") for g in groups)})
    return sorted(out, key=lambda i: (i["role"] or "", i["zone"], i["ip"] or ""))


@probe("aws.instances")
def instances_probe(ctx: StepContext, region: str, role: str | None = None) -> dict[str, Any]:
    """Instances of a region (and role): ids, IPs, states, zones."""
    found = instances(ctx, region, role)
    running = [i for i in found if i["state"] == "running"]
    return {"region": region, "role": role, "instances": found, "running": len(running),
            "ips": [i["ip"] for i in running]}


@probe("aws.secrets")
def secrets_probe(ctx: StepContext, region: str, names: list[str]) -> dict[str, Any]:
    """Whether each named secret exists in the region's Secrets Manager. Never reads
    a secret's value."""
    sm = ctx.env.client("secretsmanager", cloud_region(ctx, region))
    found, missing = [], []
    for name in names:
        try:
            sm.describe_secret(SecretId=name)
            found.append(name)
        except sm.exceptions.ResourceNotFoundException:
            missing.append(name)
    return {"region": region, "found": found, "missing": missing, "all_present": not missing}


@probe("terraform.backend")
def backend_probe(ctx: StepContext, avoid_region: str | None = None) -> dict[str, Any]:
    """Whether the environment's Terraform S3 state backend is reachable, and that
    it does not live in ``avoid_region`` (the failed region would block the failover)."""
    tf = ctx.env.settings.get("terraform") or {}
    backend = tf.get("backend_config") or {}
    bucket, region = backend.get("bucket"), backend.get("region")
    if not bucket:
        return {"configured": False, "reachable": None, "region": None, "bucket": None,
                "outside_avoided_region": True}
    avoid_cloud = cloud_region(ctx, avoid_region) if avoid_region else None
    s3 = ctx.env.client("s3", region)
    try:
        s3.head_bucket(Bucket=bucket)
        reachable, error = True, None
    except Exception as exc:  # any failure to reach it is the finding
        reachable, error = False, str(exc)
    return {"configured": True, "bucket": bucket, "region": region, "reachable": reachable,
            "error": error, "outside_avoided_region": region != avoid_cloud}
