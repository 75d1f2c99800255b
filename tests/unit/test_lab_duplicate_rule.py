"""lab.up recovers from an ingress rule the emulator created for a request whose
answer was lost: the orphan is revoked so a second apply can create it (a real
moto server)."""

from __future__ import annotations

from types import SimpleNamespace

from drkit.lab import controller
from tests.support.moto import aws_client, running_moto_server

TAIL = ['module.ap-south.aws_vpc_security_group_ingress_rule.hosts["app-10.20.0.0/16"]: '
        "Creation errored after 0s", "api error InvalidPermission.Duplicate: The specified "
        "rule already exists"]


def test_the_orphaned_rule_is_revoked_and_the_others_are_kept(monkeypatch):
    with running_moto_server() as url:
        ec2 = aws_client("ec2", url, "ap-south-1")
        vpc = ec2.create_vpc(CidrBlock="10.30.0.0/16")["Vpc"]["VpcId"]
        group = ec2.create_security_group(GroupName="lab-ap-south-hosts", Description="x",
                                          VpcId=vpc)["GroupId"]
        for name, port, cidr in (("app", 8080, "10.20.0.0/16"), ("app", 8080, "10.10.0.0/16")):
            ec2.authorize_security_group_ingress(GroupId=group, IpPermissions=[{
                "IpProtocol": "tcp", "FromPort": port, "ToPort": port,
                "IpRanges": [{"CidrIp": cidr, "Description": f"{name} from {cidr}"}]}])
        monkeypatch.setattr(controller.control_plane, "client",
                            lambda service, region: aws_client(service, url, region))
        said = []
        assert controller._orphaned_rules_revoked(SimpleNamespace(tail=TAIL), said.append)
        left = [r["CidrIp"] for p in ec2.describe_security_groups(GroupIds=[group])
                ["SecurityGroups"][0]["IpPermissions"] for r in p["IpRanges"]]
        assert left == ["10.10.0.0/16"]
        assert "revoked app from 10.20.0.0/16" in said[0]


def test_other_failures_are_not_retried():
    result = SimpleNamespace(tail=["Error: creating EC2 VPC: InvalidParameterValue"])
    assert not controller._orphaned_rules_revoked(result, print)


def test_a_lost_answer_to_the_default_egress_revocation_is_applied_again():
    tail = ["module.eu-west.aws_security_group.hosts: Creation errored after 0s",
            "Error: revoking default IPv4 egress rule for Security Group (sg-268b): operation "
            "error EC2: RevokeSecurityGroupEgress, https response error StatusCode: 400, api "
            "error InvalidPermission.NotFound: The specified rule does not exist"]
    said: list[str] = []
    assert controller._lost_revoke_answer(SimpleNamespace(tail=tail), said.append)
    assert "applying again" in said[0]
    assert not controller._lost_revoke_answer(SimpleNamespace(tail=tail[:1]), said.append)
