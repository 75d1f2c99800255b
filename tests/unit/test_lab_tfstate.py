"""The Terraform state backend bootstrap, against a real moto server."""

from __future__ import annotations

import uuid

import boto3
import pytest

from drkit.lab.tfstate import ensure_state_backend
from tests.support.moto import CREDENTIALS, running_moto_server


@pytest.fixture(scope="module")
def moto_url():
    with running_moto_server() as url:
        yield url


@pytest.fixture
def session() -> boto3.session.Session:
    return boto3.session.Session(**CREDENTIALS)


def test_creates_a_versioned_bucket_and_a_lock_table_once(moto_url, session) -> None:
    bucket, table = f"tfstate-{uuid.uuid4().hex[:8]}", f"tflock-{uuid.uuid4().hex[:8]}"

    first = ensure_state_backend(moto_url, "us-west-2", bucket, table, session=session)
    again = ensure_state_backend(moto_url, "us-west-2", bucket, table, session=session)

    assert first.actions == [
        f"created bucket {bucket}",
        f"enabled versioning on {bucket}",
        f"created lock table {table}",
    ]
    assert again.actions == []
    assert again.decision == f"state backend s3://{bucket} + {table} in us-west-2: present"
    s3 = session.client("s3", region_name="us-west-2", endpoint_url=moto_url)
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    assert s3.get_bucket_location(Bucket=bucket)["LocationConstraint"] == "us-west-2"
    ddb = session.client("dynamodb", region_name="us-west-2", endpoint_url=moto_url)
    key = ddb.describe_table(TableName=table)["Table"]["KeySchema"]
    assert key == [{"AttributeName": "LockID", "KeyType": "HASH"}]


def test_switches_versioning_on_for_an_existing_bucket(moto_url, session) -> None:
    bucket, table = f"tfstate-{uuid.uuid4().hex[:8]}", f"tflock-{uuid.uuid4().hex[:8]}"
    s3 = session.client("s3", region_name="us-east-1", endpoint_url=moto_url)
    s3.create_bucket(Bucket=bucket)

    result = ensure_state_backend(moto_url, "us-east-1", bucket, table, session=session)

    assert result.actions == [f"enabled versioning on {bucket}", f"created lock table {table}"]
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
