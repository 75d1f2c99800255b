"""RB-DR-005's secret side on moto (in-process): the new value staged as AWSPENDING
in every region under one version id, reused by a resumed run, promoted to
AWSCURRENT with the old version unlabelled after a compromise; which keys a
rotation covers; and the command lines refused before anything runs (exit 2)."""

from __future__ import annotations

import json
import subprocess
from types import SimpleNamespace

import boto3
import pytest

from drkit.errors import ExitCode
from drkit.keys import rotation
from tests.unit.test_cli_bad_input import LAB, _files, drkit, project  # noqa: F401

moto = pytest.importorskip("moto")

REGIONS = {"us-east": {"cloud_region": "us-east-1", "role": "primary"},
           "eu-west": {"cloud_region": "eu-west-1", "role": "hot-standby"}}
SECRET = "drkit/lab/REGION/db-credentials"
OLD = {"engine": "postgres", "username": "drkit", "password": "old-password-1", "dbname": "app"}
SETTINGS = {"regions": REGIONS, "keys": {"passphrase_secret": "x/REGION/p", "items": [
    {"name": "db-credentials", "secret": SECRET, "rotation": "postgres", "consumers": []},
    {"name": "app-secret", "secret": "drkit/lab/REGION/app-secret", "consumers": []},
    {"name": "ssh", "file": "/nonexistent", "rotation": "ssh", "consumers": []}]}}


@pytest.fixture
def estate(monkeypatch):
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    from drkit.lab import moto_fixes

    moto_fixes.apply()
    with moto.mock_aws():
        for name, conf in REGIONS.items():
            boto3.client("secretsmanager", region_name=conf["cloud_region"]).create_secret(
                Name=SECRET.replace("REGION", name), SecretString=json.dumps(OLD))
        yield SimpleNamespace(settings=SETTINGS, regions=REGIONS,
                              regions_primary_first=lambda: ["us-east", "eu-west"],
                              client=lambda service, region=None, config=None: boto3.client(
                                  service, region_name=region, config=config))


def _read(env, region: str, **how) -> dict:
    sm = env.client("secretsmanager", REGIONS[region]["cloud_region"])
    return json.loads(sm.get_secret_value(SecretId=SECRET.replace("REGION", region),
                                          **how)["SecretString"])


def test_staged_everywhere_under_one_version_reused_on_resume_then_promoted(estate):
    token = rotation.version_id("20261203T130000Z-RB-DR-005", "db-credentials")
    made = []

    def make(current: str) -> str:
        made.append(1)
        return rotation.next_postgres_value(current)

    staged = rotation.stage(estate, SECRET, token, make, lambda v: None, list(REGIONS))
    assert len(made) == 1 and set(staged["old_versions"]) == set(REGIONS)
    new = _read(estate, "us-east", VersionStage="AWSPENDING")
    assert new["password"] != OLD["password"] and new["username"] == "drkit"
    assert _read(estate, "eu-west", VersionId=token) == new
    assert _read(estate, "eu-west") == OLD  # nothing uses it yet

    again = rotation.stage(estate, SECRET, token, make, lambda v: None, list(REGIONS))
    assert len(made) == 1 and again["old_versions"] == staged["old_versions"]

    for _ in range(2):  # idempotent: a resumed run promotes again
        rotation.promote(estate, SECRET, token, list(REGIONS), drop_previous=True)
    for region in REGIONS:
        assert _read(estate, region) == new
        state = rotation.current_versions(estate, SECRET)[region]
        assert state == {"current": [token], "pending": []}
        stages = rotation.stages(estate, SECRET.replace("REGION", region), region)
        assert stages[staged["old_versions"][region]] == []  # the old one: no label at all
    assert rotation.read_version(estate, SECRET, staged["old_versions"]["us-east"],
                                 list(REGIONS)) == json.dumps(OLD)


def test_a_planned_promotion_keeps_the_old_version_as_previous(estate):
    token = rotation.version_id("run", "db-credentials")
    staged = rotation.stage(estate, SECRET, token, rotation.next_postgres_value,
                            lambda v: None, list(REGIONS))
    done = rotation.promote(estate, SECRET, token, list(REGIONS), drop_previous=False)
    assert done["eu-west"]["previous"] == staged["old_versions"]["eu-west"]


def test_the_keys_a_rotation_covers():
    assert rotation.select(SETTINGS, [], True) == ["db-credentials", "ssh"]
    assert rotation.select(SETTINGS, ["db-credentials"], False) == ["db-credentials"]
    with pytest.raises(ValueError, match="unknown key nope"):
        rotation.select(SETTINGS, ["nope"], False)
    with pytest.raises(ValueError, match="cannot rotate app-secret"):
        rotation.select(SETTINGS, ["app-secret"], False)
    value = json.loads(rotation.next_postgres_value(json.dumps(
        {**OLD, "replication_password": "r"})))
    assert value["password"] != OLD["password"] and value["replication_password"] != "r"
    assert value["password"].isalnum() and len(value["password"]) == 32


BAD = [
    (["key-compromise", *LAB], "which key? give --key NAME[,NAME] or --all"),
    (["key-compromise", "--key", "nope", *LAB], "unknown key nope"),
    (["key-compromise", "--key", "app-secret", *LAB], "drkit cannot rotate app-secret"),
    (["key-compromise", "--key", "ssh", "--all", *LAB], "--key ssh and --all together"),
    (["key-compromise", "--all", *LAB], "--all needs an approval and there is no terminal"),
    (["rotate-keys", "--key", "db-credentials", "--allow-partial", *LAB],
     "--allow-partial needs an approval"),
    (["key-compromise", "--resume", "20261122T030112Z-RB-DR-005", "--key", "ssh"],
     "--key cannot change them"),
    (["rotate-keys", "--resume", "20261122T030112Z-RB-DR-003"], "not a run of RB-DR-005"),
]


@pytest.mark.parametrize(("argv", "says"), BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_key_compromise_input_exits_2_and_changes_nothing(project, monkeypatch,  # noqa: F811
                                                               capsys, argv, says):
    def must_not_run(*_args, **_kwargs):
        raise AssertionError(f"drkit {' '.join(argv)} went past its checks")

    monkeypatch.setattr("drkit.engine.Engine._locked", must_not_run)
    before = _files(project)
    code = drkit(*argv)
    out, err = capsys.readouterr()
    assert code == ExitCode.BAD_INPUT, (code, out, err)
    assert says in err and len(err.strip().splitlines()) == 1, err
    assert _files(project) == before


def test_the_ssh_key_file_is_switched_once_and_a_resumed_run_finds_it_switched(tmp_path):
    from drkit.keys import ssh

    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    old_private, old_public = key.read_bytes(), ssh.public_key(key)
    first = ssh.prepare(key, comment="drkit run")
    assert first["old"] == old_public and first["new"] != old_public
    assert ssh.prepare(key, comment="drkit run") == first  # made once
    assert (tmp_path / "id_ed25519.next").stat().st_mode & 0o777 == 0o600

    switched = ssh.switch(key)
    assert switched == first and ssh.public_key(key) == first["new"]
    assert ssh.revoked_key(key).read_bytes() == old_private
    assert ssh.switch(key) == first  # a resumed run: already done
    assert ssh.prepare(key, comment="drkit run") == first
    assert ssh.forget(key) and not ssh.revoked_key(key).exists()
    assert not ssh.forget(key)
    with pytest.raises(ssh.SshKeyError, match="nothing to switch"):
        ssh.switch(key)
