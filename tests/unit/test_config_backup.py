"""Configuration backups: what goes in (secrets masked), every region's bucket gets a
copy with its manifest, verification names an altered file, retention keeps the
newest. S3 is moto's, in-process."""

from __future__ import annotations

import io
import json
import tarfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import boto3
import pytest

from drkit import config_backup
from drkit.actions.backup import backup_config
from drkit.errors import StepFailed
from drkit.registry import StepContext

moto = pytest.importorskip("moto")

SECRET = "s3cr3t-value-42"
REGIONS = {"us-east": {"cloud_region": "us-east-1"}, "eu-west": {"cloud_region": "eu-west-1"}}
T0 = datetime(2026, 12, 3, 6, 0, tzinfo=UTC)


def test_yaml_secrets_are_masked_and_templates_comments_and_vault_kept():
    text = ("# the lab's keys\n"
            "aws:\n"
            "  env:\n"
            f"    AWS_SECRET_ACCESS_KEY: {SECRET}  \n"
            "    AWS_ACCESS_KEY_ID: AKIAEXAMPLE\n"
            "  db_password: \"{{ lookup('env', 'PW') }}\"\n"
            "  api_token: !vault |\n"
            "    $ANSIBLE_VAULT;1.1;AES256\n"
            "  - password: hunter22\n"
            "  secret_id: ''\n")
    masked, keys = config_backup.mask_yaml_secrets(text)
    assert SECRET not in masked and "hunter22" not in masked
    assert keys == ["AWS_SECRET_ACCESS_KEY", "password"]
    assert "# the lab's keys" in masked and "AKIAEXAMPLE" in masked
    assert "lookup('env', 'PW')" in masked and "!vault |" in masked
    assert masked.count("\n") == text.count("\n")


def test_json_secrets_are_masked_by_path():
    doc = {"bind": "10.0.0.5", "secret": SECRET, "db": {"password": SECRET, "user": "app"},
           "peers": [{"token": SECRET}]}
    masked, paths = config_backup.mask_json_secrets(doc)
    assert SECRET not in json.dumps(masked)
    assert paths == ["secret", "db.password", "peers[0].token"]
    assert masked["db"]["user"] == "app" and masked["bind"] == "10.0.0.5"


@pytest.fixture
def aws(monkeypatch):
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    with moto.mock_aws():
        for name, conf in REGIONS.items():
            _s3(conf["cloud_region"]).create_bucket(
                Bucket=f"lab-{name}-backups",
                **({} if conf["cloud_region"] == "us-east-1" else
                   {"CreateBucketConfiguration": {"LocationConstraint": conf["cloud_region"]}}))
        state = _s3("us-west-2")
        state.create_bucket(Bucket="lab-tfstate",
                            CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
        state.put_bucket_versioning(Bucket="lab-tfstate",
                                    VersioningConfiguration={"Status": "Enabled"})
        state.put_object(Bucket="lab-tfstate", Key="envs/lab/terraform.tfstate",
                         Body=json.dumps({"serial": 41, "lineage": "abc"}).encode())
        state.put_object(Bucket="lab-tfstate", Key="envs/lab/terraform.tfstate",
                         Body=json.dumps({"serial": 42, "lineage": "abc",
                                          "terraform_version": "1.9.8"}).encode())
        yield


def _s3(region: str):
    return boto3.client("s3", region_name=region)


def _ctx(tmp_path: Path, regions=REGIONS) -> StepContext:
    inventory = tmp_path / "inventory" / "lab"
    (inventory / "group_vars" / "all").mkdir(parents=True)
    (inventory / "aws_ec2.yml").write_text("plugin: amazon.aws.aws_ec2\n")
    (inventory / "group_vars" / "all" / "drkit.yml").write_text(
        f"drkit:\n  aws:\n    env:\n      AWS_SECRET_ACCESS_KEY: {SECRET}\n")
    settings = {"estate": "lab", "regions": regions, "control_region": "us-west-2",
                "backup": {"config_retention": "30d"},
                "terraform": {"backend_config": {"bucket": "lab-tfstate", "region": "us-west-2",
                                                 "key": "envs/lab/terraform.tfstate"}}}
    env = SimpleNamespace(name="lab", settings=settings, inventory=inventory,
                          client=lambda service, region=None: boto3.client(service,
                                                                           region_name=region))
    return StepContext(env=env, project=None, run_dir=tmp_path / "run")


APP = {"lab-app-1": {"app_config": {"/srv/app/config.json": {
    "port": 8080, "secret": "<redacted>", "db": {"host": "db.lab.internal",
                                                 "password": SECRET}}}}}


def _archive(bucket: str, label: str) -> dict[str, bytes]:
    body = _s3("us-east-1").get_object(Bucket=bucket, Key=config_backup.archive_key(label))
    with tarfile.open(fileobj=io.BytesIO(body["Body"].read()), mode="r:gz") as tar:
        return {m.name.split("/", 1)[1]: tar.extractfile(m).read() for m in tar.getmembers()}


def test_a_backup_lands_in_every_region_with_its_manifest_and_no_secret(aws, tmp_path):
    out = backup_config(_ctx(tmp_path), app_config=APP)
    assert out["buckets"] == ["lab-us-east-backups", "lab-eu-west-backups"]
    files = _archive("lab-eu-west-backups", out["label"])
    assert set(files) == {"inventory/lab/aws_ec2.yml", "inventory/lab/group_vars/all/drkit.yml",
                          "hosts/lab-app-1/srv/app/config.json",
                          "terraform/envs/lab/terraform.tfstate"}
    assert all(SECRET.encode() not in data for data in files.values())
    assert json.loads(files["terraform/envs/lab/terraform.tfstate"])["serial"] == 42
    assert out["terraform_state"]["serial"] == 42 and out["terraform_state"]["version_id"]
    assert "hosts/lab-app-1/srv/app/config.json: db.password" in out["masked"]

    listed = config_backup.list_backups(_s3("eu-west-1"), "lab-eu-west-backups")
    assert [b.label for b in listed] == [out["label"]]
    assert listed[0].archive_sha256 == out["sha256"]
    assert config_backup.verify(_s3("eu-west-1"), listed[0]) == []


def test_verify_names_an_altered_tarball_and_a_missing_one(aws, tmp_path):
    out = backup_config(_ctx(tmp_path), app_config=APP)
    s3 = _s3("us-east-1")
    key = config_backup.archive_key(out["label"])
    s3.put_object(Bucket="lab-us-east-backups", Key=key, Body=b"not a tarball")
    (backup,) = config_backup.list_backups(s3, "lab-us-east-backups")
    (problem,) = config_backup.verify(s3, backup)
    assert f"s3://lab-us-east-backups/{key}: SHA-256" in problem
    s3.delete_object(Bucket="lab-us-east-backups", Key=key)
    assert config_backup.verify(s3, backup) == [f"s3://lab-us-east-backups/{key} is missing"]


def test_retention_expires_old_backups_but_never_the_newest():
    def made(days_ago: int) -> config_backup.ConfigBackup:
        created = T0 - timedelta(days=days_ago)
        label = config_backup.label_for(created)
        return config_backup.ConfigBackup(label, "b", created, config_backup.archive_key(label),
                                          "x", 1)

    backups = [made(90), made(31), made(29), made(1)]
    gone = config_backup.expired(backups, now=T0, retention=timedelta(days=30))
    assert [b.created for b in gone] == [backups[0].created, backups[1].created]
    only_old = [made(90)]
    assert config_backup.expired(only_old, now=T0, retention=timedelta(days=30)) == []


def test_an_unreachable_region_fails_the_step_after_writing_the_others(aws, tmp_path):
    regions = {**REGIONS, "ap-south": {"cloud_region": "ap-south-1"}}  # no bucket there
    with pytest.raises(StepFailed) as caught:
        backup_config(_ctx(tmp_path, regions), app_config=APP)
    message = str(caught.value)
    assert "could not be written to ap-south (NoSuchBucket" in message
    assert "it was written to lab-us-east-backups, lab-eu-west-backups" in message
    assert config_backup.list_backups(_s3("eu-west-1"), "lab-eu-west-backups")


def test_the_configuration_in_use_is_compared_with_the_last_backup():
    from drkit.checks.config_backup import compare

    manifest = {"files": [{"name": "inventory/lab/aws_ec2.yml", "sha256": "a"},
                          {"name": "inventory/lab/group_vars/all/drkit.yml", "sha256": "b"},
                          {"name": "inventory/lab/old.yml", "sha256": "c"},
                          {"name": "hosts/h1/srv/app/config.json", "sha256": "d"}],
                "terraform_state": {"lineage": "L1", "serial": 40}}
    same = {"inventory/lab/aws_ec2.yml": "a", "inventory/lab/group_vars/all/drkit.yml": "b",
            "inventory/lab/old.yml": "c"}
    assert compare(manifest, same, {"lineage": "L1", "serial": 41}) == []
    changed = {"inventory/lab/aws_ec2.yml": "a", "inventory/lab/group_vars/all/drkit.yml": "X",
               "inventory/lab/new.yml": "e"}
    assert compare(manifest, changed, {"lineage": "L2", "serial": 1}) == [
        "group_vars/all/drkit.yml: changed since the backup",
        "new.yml: not in the backup",
        "old.yml: in the backup, not in use",
        "the Terraform state is another one (lineage L2, the backup's L1): restore the "
        "backup's from its terraform/ member if the estate's state was lost"]
    assert compare(manifest, same, {"lineage": "L1", "serial": 39}) == [
        "the Terraform state (serial 39) is older than the backup's (40)"]
