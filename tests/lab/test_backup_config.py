"""Configuration backups on the real lab: `invoke backup --what config` puts the
inventory, the app's configuration read on its hosts and the Terraform state's
current version in every region's bucket with a SHA-256 manifest, no secret in
it; `backup.verify` names a configuration backup that was altered.

Leaves the lab as it found it: the altered object is put back afterwards.
"""

from __future__ import annotations

import io
import json
import tarfile

import pytest

from drkit import config_backup
from drkit.errors import ExitCode
from drkit.lab import control_plane
from tests.lab.runs import drkit, journal, result_of
from tests.lab.test_secrets_on_disk import _secret_values

pytestmark = [pytest.mark.lab, pytest.mark.slow]


@pytest.fixture(scope="module")
def settings(lab_environment):
    return lab_environment.settings


@pytest.fixture(scope="module")
def taken(settings):
    """The outputs of one `invoke backup --what config` run."""
    proc = drkit("backup", "--what", "config", "--yes", "--json")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    run_id = result_of(proc)["run_id"]
    outputs = [e["outputs"] for e in journal(run_id)
               if e["event"] == "step_output" and e["step"] == "config"]
    assert outputs, "the config step reported nothing"
    skipped = {e["step"] for e in journal(run_id)
               if e["event"] == "step_finished" and e["status"] == "skipped"}
    assert {"backup", "listed"} <= skipped, "--what config took a database backup too"
    return outputs[-1]


def _s3(settings, region: str):
    return control_plane.client("s3", settings["regions"][region]["cloud_region"])


def _files(settings, region: str, label: str) -> dict[str, bytes]:
    bucket, _ = config_backup.buckets(settings)[region]
    body = _s3(settings, region).get_object(Bucket=bucket, Key=config_backup.archive_key(label))
    with tarfile.open(fileobj=io.BytesIO(body["Body"].read()), mode="r:gz") as tar:
        return {m.name.split("/", 1)[1]: tar.extractfile(m).read() for m in tar.getmembers()}


def test_every_region_holds_the_configuration_with_no_secret_in_it(settings, taken):
    assert sorted(taken["buckets"]) == sorted(b for b, _ in
                                              config_backup.buckets(settings).values())
    secrets = _secret_values(settings)
    assert secrets, "expected the estate's secrets in Secrets Manager"
    for region in settings["regions"]:
        files = _files(settings, region, taken["label"])
        names = set(files)
        assert "inventory/lab/group_vars/all/drkit.yml" in names
        app = [n for n in names if n.startswith("hosts/") and n.endswith("/srv/app/config.json")]
        assert len(app) >= 2, names  # every app host answered
        assert json.loads(files[app[0]])["db"]["host"] == "db.lab.internal"
        leaked = [what for what, value in secrets.items()
                  for data in files.values() if value in data]
        assert leaked == [], f"secrets in the configuration backup in {region}: {leaked}"

    state_info = taken["terraform_state"]
    backend = settings["terraform"]["backend_config"]
    current = control_plane.client("s3", backend["region"]).get_object(
        Bucket=backend["bucket"], Key=backend["key"])
    assert state_info["version_id"] == current.get("VersionId")
    state = json.loads(files[f"terraform/{backend['key']}"])
    assert state["serial"] == state_info["serial"] and state["resources"]

    listing = json.loads(drkit("backup.list", "--json", "--config").stdout)
    assert all(c["backups"][-1]["label"] == taken["label"] for c in listing["config"])


def test_verify_names_an_altered_configuration_backup(settings, taken):
    bucket, _ = config_backup.buckets(settings)["eu-west"]
    s3 = _s3(settings, "eu-west")
    key = config_backup.archive_key(taken["label"])
    original = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    s3.put_object(Bucket=bucket, Key=key, Body=original[:-10] + b"0123456789")
    try:
        bad = drkit("backup.verify", "--only", "config-intact", "--yes")
        assert bad.returncode == ExitCode.STEP_FAILED, bad.stdout[-2000:] + bad.stderr[-2000:]
        assert f"s3://{bucket}/{key}" in bad.stderr + bad.stdout, bad.stderr[-2000:]
    finally:
        s3.put_object(Bucket=bucket, Key=key, Body=original)
    ok = drkit("backup.verify", "--only", "config-intact", "--yes")
    assert ok.returncode == 0, ok.stdout[-2000:] + ok.stderr[-2000:]
