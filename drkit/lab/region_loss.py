"""The lab's worst fault short of losing the backups: a region's hosts and secrets
gone (``lab.chaos region-lost``), as when its capacity is wiped or its account
emptied. What RB-DR-007 (the complete rebuild) brings back from nothing.

Every Auto Scaling group of the region is scaled to zero (the reconciler removes
the hosts and their disks as EC2 terminates them) and the region's Secrets Manager
entries that Terraform made for the estate (tagged Estate) are deleted without a
recovery window. The buckets stay: they hold the backups a rebuild restores from.
So does the region's copy of the key-backup passphrase, which is drkit's, not
Terraform's (keys.backup writes a missing copy again). Undone only by a rebuild, or by
Terraform and the key backup: ``lab.chaos restore`` does not bring a host back.
"""

from __future__ import annotations

import time
from typing import Any

from drkit.errors import ConfigError
from drkit.lab import control_plane

#: The states of an instance that has not finished terminating.
ALIVE = ["pending", "running", "stopping", "stopped", "shutting-down"]


def lose_region(settings: dict[str, Any], region: str, *, wait_s: float = 60.0) -> list[str]:
    """Scale ``region``'s groups to zero, delete its secrets, wait until its instances
    are terminated; the lines saying what went."""
    regions = settings.get("regions") or {}
    if region not in regions:
        raise ConfigError(f"unknown region {region!r}", hint=f"use one of: {', '.join(regions)}")
    estate, cloud = settings["estate"], regions[region]["cloud_region"]
    lines = []
    asg = control_plane.client("autoscaling", cloud)
    for group in asg.describe_auto_scaling_groups()["AutoScalingGroups"]:
        name = group["AutoScalingGroupName"]
        if name.startswith(f"{estate}-{region}-"):
            asg.update_auto_scaling_group(AutoScalingGroupName=name, MinSize=0, MaxSize=0,
                                          DesiredCapacity=0)
            lines.append(f"group {name}: scaled to 0 ({len(group['Instances'])} instances)")
    sm = control_plane.client("secretsmanager", cloud)
    for page in sm.get_paginator("list_secrets").paginate():
        for secret in page["SecretList"]:
            if {"Key": "Estate", "Value": estate} in secret.get("Tags", []):
                sm.delete_secret(SecretId=secret["ARN"], ForceDeleteWithoutRecovery=True)
                lines.append(f"secret {secret['Name']}: deleted")
    ec2 = control_plane.client("ec2", cloud)
    deadline = time.monotonic() + wait_s
    while alive := [i["InstanceId"] for r in ec2.describe_instances(Filters=[
            {"Name": "tag:Estate", "Values": [estate]},
            {"Name": "tag:DrRegion", "Values": [region]},
            {"Name": "instance-state-name", "Values": ALIVE}])["Reservations"]
            for i in r["Instances"]]:
        if time.monotonic() > deadline:
            raise ConfigError(f"{region}'s instances {', '.join(alive)} are still there after "
                              f"{wait_s:.0f} s", hint="see `drkit lab.status`")
        time.sleep(0.5)
    return [*lines, f"region {region}: no instance left; its buckets are kept"]
