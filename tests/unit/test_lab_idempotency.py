"""The lab's control plane answers an EC2 request retried with the same ClientToken
as AWS does: with the first answer, not a second resource or "already in use"
(the AWS provider's retry of a CreateLaunchTemplate whose answer it lost), and a
resent create without a token that it would refuse as a duplicate with the first
answer too (deletes excepted: a repeated delete is refused as AWS refuses it)."""

from __future__ import annotations

import botocore.exceptions
import pytest

from tests.support.moto import aws_client, running_moto_server


@pytest.fixture(scope="module")
def ec2():
    with running_moto_server(lab=True) as url:
        client = aws_client("ec2", url, "eu-west-1")
        yield client, client.describe_images()["Images"][0]["ImageId"]


def create(ec2, name: str, token: str) -> str:
    client, image = ec2
    return client.create_launch_template(
        LaunchTemplateName=name, ClientToken=token,
        LaunchTemplateData={"ImageId": image, "InstanceType": "t3.micro"},
    )["LaunchTemplate"]["LaunchTemplateId"]


def test_a_retry_with_the_same_token_gets_the_first_answer(ec2):
    first = create(ec2, "lab-eu-west-restore-a", "token-1")
    assert create(ec2, "lab-eu-west-restore-a", "token-1") == first
    names = [t["LaunchTemplateName"] for t in ec2[0].describe_launch_templates()
             ["LaunchTemplates"]]
    assert names.count("lab-eu-west-restore-a") == 1


def test_the_same_token_with_other_parameters_is_refused(ec2):
    create(ec2, "lab-eu-west-restore-b", "token-2")
    with pytest.raises(botocore.exceptions.ClientError) as refused:
        create(ec2, "lab-eu-west-restore-c", "token-2")
    assert refused.value.response["Error"]["Code"] == "IdempotentParameterMismatch"


def test_a_new_token_for_an_existing_name_is_refused_as_aws_does(ec2):
    create(ec2, "lab-eu-west-restore-d", "token-3")
    with pytest.raises(botocore.exceptions.ClientError) as refused:
        create(ec2, "lab-eu-west-restore-d", "token-4")
    assert "AlreadyExists" in refused.value.response["Error"]["Code"]


def test_a_repeated_delete_by_id_answers_as_aws_does(ec2):
    """The AWS provider takes InvalidLaunchTemplateId.NotFound as "deleted already";
    moto answered InvalidLaunchTemplateName.NotFoundException, so a retried delete
    failed the destroy."""
    template = create(ec2, "lab-eu-west-restore-e", "token-5")
    ec2[0].delete_launch_template(LaunchTemplateId=template)
    with pytest.raises(botocore.exceptions.ClientError) as gone:
        ec2[0].delete_launch_template(LaunchTemplateId=template)
    assert gone.value.response["Error"]["Code"] == "InvalidLaunchTemplateId.NotFound"


def test_a_resent_create_without_a_token_gets_the_first_answer(ec2):
    """The AWS provider resent a CreateSecurityGroup whose answer was lost and got
    InvalidGroup.Duplicate for the group its first request had made: the same body
    again within a minute gets the first answer."""
    client, _ = ec2
    vpc = client.create_vpc(CidrBlock="10.200.0.0/16")["Vpc"]["VpcId"]
    ask = {"GroupName": "lab-eu-west-resent", "Description": "hosts", "VpcId": vpc}
    first = client.create_security_group(**ask)["GroupId"]
    assert client.create_security_group(**ask)["GroupId"] == first
    groups = client.describe_security_groups(
        Filters=[{"Name": "group-name", "Values": ["lab-eu-west-resent"]}])["SecurityGroups"]
    assert [g["GroupId"] for g in groups] == [first]


def test_a_resent_create_subnet_gets_the_first_subnet_not_a_cidr_conflict(ec2):
    client, _ = ec2
    vpc = client.create_vpc(CidrBlock="10.202.0.0/16")["Vpc"]["VpcId"]
    ask = {"VpcId": vpc, "CidrBlock": "10.202.1.0/24", "AvailabilityZone": "eu-west-1a"}
    first = client.create_subnet(**ask)["Subnet"]["SubnetId"]
    assert client.create_subnet(**ask)["Subnet"]["SubnetId"] == first


def test_another_create_of_an_existing_name_is_refused_as_aws_does(ec2):
    client, _ = ec2
    vpc = client.create_vpc(CidrBlock="10.201.0.0/16")["Vpc"]["VpcId"]
    client.create_security_group(GroupName="lab-eu-west-taken", Description="a", VpcId=vpc)
    with pytest.raises(botocore.exceptions.ClientError) as refused:
        client.create_security_group(GroupName="lab-eu-west-taken", Description="b", VpcId=vpc)
    assert refused.value.response["Error"]["Code"] == "InvalidGroup.Duplicate"
