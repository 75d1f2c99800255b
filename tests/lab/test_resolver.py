"""The lab resolver answers the Route53 private zone over DNS and follows changes."""

from __future__ import annotations

import subprocess
import time

import pytest

from drkit.lab import control_plane, netns, paths

pytestmark = pytest.mark.lab

ZONE = "lab.internal"


def dig(*args: str) -> str:
    proc = subprocess.run(["dig", f"@{paths.GATEWAY_ADDR}", "+time=1", "+tries=1", *args],
                          capture_output=True, text=True, timeout=10)
    return proc.stdout


def _upsert(r53, zone_id: str, name: str, address: str, ttl: int = 5) -> None:
    r53.change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch={"Changes": [{
        "Action": "UPSERT", "ResourceRecordSet": {
            "Name": name, "Type": "A", "TTL": ttl, "ResourceRecords": [{"Value": address}]}}]})


@pytest.fixture
def private_zone(lab_core, make_vpc):
    """A private hosted zone lab.internal with db -> 10.10.1.10 (TTL 5), removed after."""
    vpc = make_vpc("us-east-1", ["us-east-1a"])
    r53 = control_plane.client("route53", "us-east-1")
    zone_id = r53.create_hosted_zone(
        Name=ZONE, CallerReference=str(time.time()),
        HostedZoneConfig={"PrivateZone": True, "Comment": "test"},
        VPC={"VPCRegion": "us-east-1", "VPCId": vpc["vpc_id"]})["HostedZone"]["Id"]
    _upsert(r53, zone_id, f"db.{ZONE}", "10.10.1.10")
    yield r53, zone_id
    for rrset in r53.list_resource_record_sets(HostedZoneId=zone_id)["ResourceRecordSets"]:
        if rrset["Type"] not in ("SOA", "NS"):
            r53.change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch={
                "Changes": [{"Action": "DELETE", "ResourceRecordSet": rrset}]})
    r53.delete_hosted_zone(Id=zone_id)


def test_answers_the_zone_with_the_records_ttl(private_zone):
    deadline = time.monotonic() + 2
    while dig("+short", f"db.{ZONE}").strip() != "10.10.1.10":
        assert time.monotonic() < deadline, "the new zone was not answered within 2 s"
        time.sleep(0.05)
    answer = dig("+noall", "+answer", f"db.{ZONE}")
    assert "\t5\tIN\tA\t10.10.1.10" in answer
    assert "10.10.1.10" in dig("+tcp", "+short", f"db.{ZONE}")
    assert "status: NXDOMAIN" in dig(f"nope.{ZONE}")
    assert "status: REFUSED" in dig("example.com")  # nothing outside the lab zones
    assert "SOA" in dig("+noall", "+answer", ZONE, "SOA")


def test_follows_an_upsert_within_one_second(private_zone):
    r53, zone_id = private_zone
    _upsert(r53, zone_id, f"db.{ZONE}", "10.20.1.10")
    changed_at = time.monotonic()
    while dig("+short", f"db.{ZONE}").strip() != "10.20.1.10":
        assert time.monotonic() - changed_at < 1.0, "UPSERT not answered within 1 s"
        time.sleep(0.02)


def test_hosts_resolve_through_their_resolv_conf(private_zone, lab_core, make_vpc):
    lab = lab_core
    vpc = make_vpc("us-east-1", ["us-east-1a"])
    iid = vpc["ec2"].run_instances(ImageId="ami-785db401", MinCount=1, MaxCount=1,
                                   SubnetId=vpc["subnets"]["us-east-1a"])["Instances"][0][
        "InstanceId"]
    lab.wait_for("the host", lambda: netns.ns_exists(paths.host_ns(iid)))
    lab.wait_for("db.lab.internal from inside the host", lambda: "10.10.1.10" in netns.in_ns(
        paths.host_ns(iid), ["getent", "hosts", f"db.{ZONE}"], check=False).stdout, timeout=5)
    vpc["ec2"].terminate_instances(InstanceIds=[iid])
