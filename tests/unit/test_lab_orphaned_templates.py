"""lab.reset deletes the launch templates no Auto Scaling group uses (a scratch
restore host's template left behind would fail the next one's create)."""

from __future__ import annotations

import boto3
import pytest

from drkit.lab import control_plane, controller

moto = pytest.importorskip("moto")


def test_only_templates_without_a_group_are_deleted(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setattr(control_plane, "client",
                        lambda service, region, **_: boto3.client(service, region_name=region))
    with moto.mock_aws():
        ec2 = boto3.client("ec2", region_name="eu-west-1")
        image = ec2.describe_images()["Images"][0]["ImageId"]
        for name in ("lab-eu-west-app", "lab-eu-west-restore"):
            ec2.create_launch_template(LaunchTemplateName=name, LaunchTemplateData={
                "ImageId": image, "InstanceType": "t3.micro"})
        boto3.client("autoscaling", region_name="eu-west-1").create_auto_scaling_group(
            AutoScalingGroupName="lab-eu-west-app", MinSize=0, MaxSize=1, DesiredCapacity=0,
            LaunchTemplate={"LaunchTemplateName": "lab-eu-west-app", "Version": "$Latest"},
            AvailabilityZones=["eu-west-1a"])

        lines = controller.delete_orphaned_launch_templates(["eu-west-1", "us-east-1"])

        left = [t["LaunchTemplateName"] for t in ec2.describe_launch_templates()["LaunchTemplates"]]
        assert left == ["lab-eu-west-app"]
        assert lines == ["deleted launch template lab-eu-west-restore in eu-west-1: "
                         "no Auto Scaling group uses it"]
        assert controller.delete_orphaned_launch_templates(["eu-west-1"]) == []
