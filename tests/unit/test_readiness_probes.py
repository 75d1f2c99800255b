"""Readiness probes that read the cloud: backup freshness from the repositories'
backup.info, and every region's S3 and Secrets Manager answering (moto, in-process)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import boto3
import pytest

from drkit.checks.readiness import freshness_probe, region_access_probe
from drkit.registry import StepContext

moto = pytest.importorskip("moto")

REGIONS = {"eu-west": {"cloud_region": "eu-west-1"}, "ap-south": {"cloud_region": "ap-south-1"}}
SETTINGS = {"estate": "lab", "regions": REGIONS,
            "backup": {"stanza": "lab", "max_age": "1d",
                       "repositories": [{"region": "eu-west"}, {"region": "ap-south"}]}}


def _info(stop: datetime) -> str:
    entry = json.dumps({"backup-type": "full", "backup-timestamp-start": int(stop.timestamp()) - 9,
                        "backup-timestamp-stop": int(stop.timestamp()),
                        "backup-lsn-start": "0/1", "backup-lsn-stop": "0/2",
                        "backup-info-size": 1, "backup-info-repo-size": 1})
    return f"[backup:current]\n20261203-060000F={entry}\n"


@pytest.fixture
def ctx(monkeypatch):
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(key, value)
    with moto.mock_aws():
        for name, conf in REGIONS.items():
            region = conf["cloud_region"]
            boto3.client("s3", region_name=region).create_bucket(
                Bucket=f"lab-{name}-backups",
                CreateBucketConfiguration={"LocationConstraint": region})
            boto3.client("secretsmanager", region_name=region).create_secret(
                Name=f"drkit/lab/{name}/db-credentials", SecretString="{}")
        env = SimpleNamespace(
            settings=SETTINGS, regions=REGIONS,
            client=lambda service, region=None, config=None: boto3.client(
                service, region_name=region, config=config))
        yield StepContext(env=env, project=None, run_dir=None)


def _put_info(region: str, stop: datetime) -> None:
    boto3.client("s3", region_name=REGIONS[region]["cloud_region"]).put_object(
        Bucket=f"lab-{region}-backups", Key="pgbackrest/backup/lab/backup.info",
        Body=_info(stop).encode())


def test_freshness_names_a_missing_and_a_stale_repository(ctx):
    now = datetime.now(UTC)
    _put_info("eu-west", now - timedelta(hours=2))
    result = freshness_probe(ctx)
    assert not result["ok"]
    assert result["problems"] == [
        "repo2 (ap-south, s3://lab-ap-south-backups): no backup.info: the stanza was never "
        "created in this repository"]
    _put_info("ap-south", now - timedelta(days=2))
    (problem,) = freshness_probe(ctx)["problems"]
    assert problem.startswith("repo2 (ap-south, s3://lab-ap-south-backups): the newest "
                              "backup 20261203-060000F is 2d")
    assert "take one with `invoke backup`" in problem
    assert freshness_probe(ctx, max_age="3d")["ok"]
    assert not freshness_probe(ctx, max_age="1h")["ok"]


def test_region_access_names_the_region_and_service_that_fail(ctx):
    assert region_access_probe(ctx, secret="drkit/lab/REGION/db-credentials")["ok"]
    boto3.client("secretsmanager", region_name="ap-south-1").delete_secret(
        SecretId="drkit/lab/ap-south/db-credentials", ForceDeleteWithoutRecovery=True)
    result = region_access_probe(ctx, secret="drkit/lab/REGION/db-credentials")
    assert result["regions"]["eu-west"] == {"s3": "ok", "secretsmanager": "ok"}
    assert result["regions"]["ap-south"]["s3"] == "ok"
    (problem,) = result["problems"]
    assert problem.startswith("ap-south: secretsmanager does not answer for secret "
                              "drkit/lab/ap-south/db-credentials (ResourceNotFoundException)")
