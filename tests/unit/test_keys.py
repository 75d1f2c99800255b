"""Key backups: the archive opens only with the right passphrase or enough shares,
any byte changed is refused, the custodians' shares refuse clearly, and a backup
lands in every region with no secret outside the archive. S3 and Secrets Manager
are moto's, in-process; the cryptography is the real thing (lighter Argon2id
parameters where the test does not measure them)."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from types import SimpleNamespace

import boto3
import pytest

from drkit.keys import archive, operations, settings, shares, store

moto = pytest.importorskip("moto")

KEYS = {"db-credentials": b'{"username": "app", "password": "pw-0123456789"}',
        "ssh": b"-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----\n"}
FAST = {"memory_kib": 1024, "iterations": 1, "lanes": 1}
PASSPHRASE = "correct horse battery staple"


@pytest.fixture(scope="module")
def sealed() -> archive.Sealed:
    return archive.seal(KEYS, passphrase=PASSPHRASE, kdf=FAST,
                        about={"label": "keys-20261203T060000Z", "created": "2026-12-03"})


def test_the_archive_opens_with_the_passphrase_or_the_recovery_secret(sealed):
    assert archive.open_archive(sealed.data, passphrase=PASSPHRASE) == KEYS
    assert archive.open_archive(sealed.data, recovery_secret=sealed.recovery_secret) == KEYS
    header = archive.read_header(sealed.data)
    assert header["kdf"]["name"] == "argon2id" and header["cipher"] == "AES-256-GCM"
    assert b"pw-0123456789" not in sealed.data and b"OPENSSH" not in sealed.data


def test_a_wrong_passphrase_is_refused(sealed):
    with pytest.raises(archive.ArchiveError, match="the passphrase is wrong"):
        archive.open_archive(sealed.data, passphrase="Tr0ub4dor&3")


@pytest.mark.parametrize("where", ["kdf parameter", "key name", "ciphertext"])
def test_any_byte_changed_is_refused(sealed, where):
    data = bytearray(sealed.data)
    line_end = data.index(b"\n")
    if where == "ciphertext":
        data[line_end + 5] ^= 0x01
    else:
        old = b'"iterations":1' if where == "kdf parameter" else b'"ssh"'
        new = b'"iterations":2' if where == "kdf parameter" else b'"ssi"'
        data = bytearray(bytes(data).replace(old, new, 1))
    with pytest.raises(archive.ArchiveError):
        archive.open_archive(bytes(data), passphrase=PASSPHRASE)


def _split(secret: bytes, label: str = "keys-20261203T060000Z") -> list[shares.ShareFile]:
    return shares.split(secret, count=5, threshold=3, label=label)


def _given(files: list[shares.ShareFile]) -> list[tuple[str, str]]:
    return [(f"share {f.index}", f.words) for f in files]


def _combine(files: list[shares.ShareFile], first: shares.ShareFile) -> bytes:
    return shares.combine(_given(files), identifier=first.identifier, threshold=3,
                          label=first.label)


def test_any_three_of_five_shares_recover_the_secret(sealed):
    files = _split(sealed.recovery_secret)
    for triple in itertools.combinations(files, 3):
        assert _combine(list(triple), files[0]) == sealed.recovery_secret
    assert _combine(files, files[0]) == sealed.recovery_secret


def test_too_few_damaged_repeated_or_foreign_shares_are_refused(sealed):
    files = _split(sealed.recovery_secret)
    with pytest.raises(shares.SharesError, match=r"2 share.*needs 3 different custodians"):
        _combine(files[:2], files[0])
    with pytest.raises(shares.SharesError, match="share 2 is the same share as share 2"):
        _combine([files[0], files[1], files[1]], files[0])
    words = files[2].words.split()
    words[7] = "academic" if words[7] != "academic" else "acid"
    damaged = shares.ShareFile(3, 5, 3, files[2].label, files[2].identifier, " ".join(words))
    with pytest.raises(shares.SharesError, match="share 3: not a valid share"):
        _combine([files[0], files[1], damaged], files[0])
    other = _split(sealed.recovery_secret, "keys-20261204T060000Z")
    if other[0].identifier != files[0].identifier:  # 1 in 32768 they collide
        with pytest.raises(shares.SharesError, match="is a share of another key backup"):
            _combine([files[0], files[1], other[2]], files[0])


def test_share_files_round_trip(tmp_path, sealed):
    files = _split(sealed.recovery_secret)
    paths = operations.write_shares(files, tmp_path / "custody")
    assert [p.stat().st_mode & 0o777 for p in paths] == [0o600] * 5
    assert (tmp_path / "custody").stat().st_mode & 0o777 == 0o700
    read = [shares.read(p) for p in paths[1:4]]
    assert shares.combine(read, identifier=files[0].identifier, threshold=3,
                          label=files[0].label) == sealed.recovery_secret
    with pytest.raises(FileExistsError):
        operations.write_shares(files, tmp_path / "custody")


REGIONS = {"us-east": {"cloud_region": "us-east-1", "role": "primary"},
           "eu-west": {"cloud_region": "eu-west-1", "role": "hot-standby"}}


@pytest.fixture
def estate(monkeypatch, tmp_path):
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(archive, "KDF_DEFAULTS", {"name": "argon2id", **FAST})
    monkeypatch.setenv("KEYS_TEST_DIR", str(tmp_path))
    (tmp_path / "id_ed25519").write_bytes(KEYS["ssh"])
    with moto.mock_aws():
        for name, conf in REGIONS.items():
            region = conf["cloud_region"]
            s3 = boto3.client("s3", region_name=region)
            s3.create_bucket(Bucket=f"lab-{name}-backups", **(
                {} if region == "us-east-1" else
                {"CreateBucketConfiguration": {"LocationConstraint": region}}))
            boto3.client("secretsmanager", region_name=region).create_secret(
                Name=f"drkit/lab/{name}/db-credentials",
                SecretString=KEYS["db-credentials"].decode())
        conf = {"estate": "lab", "regions": REGIONS, "keys": {
            "passphrase_secret": "drkit/lab/REGION/keys-backup-passphrase",
            "items": [{"name": "db-credentials", "secret": "drkit/lab/REGION/db-credentials",
                       "consumers": ["postgres", "app"]},
                      {"name": "ssh", "file": "${KEYS_TEST_DIR}/id_ed25519",
                       "consumers": ["ansible"]}]}}
        assert settings.problems(conf["keys"]) == []
        yield SimpleNamespace(settings=conf, regions=REGIONS,
                              regions_primary_first=lambda: ["us-east", "eu-west"],
                              client=lambda service, region=None: boto3.client(
                                  service, region_name=region))


def _objects(env) -> dict[str, bytes]:
    found = {}
    for name, conf in REGIONS.items():
        s3 = env.client("s3", conf["cloud_region"])
        bucket = f"lab-{name}-backups"
        for obj in s3.list_objects_v2(Bucket=bucket).get("Contents", []):
            found[f"{bucket}/{obj['Key']}"] = s3.get_object(Bucket=bucket,
                                                            Key=obj["Key"])["Body"].read()
    return found


def test_a_backup_lands_in_every_region_and_opens_from_either(estate, tmp_path):
    out = operations.take_backup(estate, tmp_path, share_count=5, threshold=3,
                                 shares_out=tmp_path / "custody")
    assert out["buckets"] == ["lab-us-east-backups", "lab-eu-west-backups"]
    assert out["passphrase_regions"] == ["us-east", "eu-west"]
    assert len(out["share_files"]) == 5 and out["shares"]["threshold"] == 3
    text = json.dumps(out) + "".join(v.decode(errors="replace") for v in
                                     _objects(estate).values())
    assert "pw-0123456789" not in text and "OPENSSH" not in text
    for region in REGIONS:
        backup = store.find(estate, "latest", region)
        assert operations.open_backup(estate, backup) == KEYS
    triple = [shares.read(Path(p)) for p in out["share_files"][2:]]
    backup = store.find(estate, out["label"])
    assert operations.open_backup(estate, backup, share_texts=triple) == KEYS
    assert operations.verify(estate, tmp_path)["ok"]


def test_verify_names_an_altered_copy_and_a_stale_backup(estate, tmp_path):
    out = operations.take_backup(estate, tmp_path)
    s3 = estate.client("s3", "eu-west-1")
    key = store.archive_key(out["label"])
    data = s3.get_object(Bucket="lab-eu-west-backups", Key=key)["Body"].read()
    s3.put_object(Bucket="lab-eu-west-backups", Key=key, Body=data[:-1] + b"\x00")
    result = operations.verify(estate, tmp_path)
    assert not result["ok"]
    assert f"eu-west: s3://lab-eu-west-backups/{key} was altered" in result["summary"]

    s3.put_object(Bucket="lab-eu-west-backups", Key=key, Body=data)
    (tmp_path / "id_ed25519").write_bytes(b"a rotated key")
    result = operations.verify(estate, tmp_path)
    assert result["stale"] == ["ssh"] and "is stale: ssh changed" in result["summary"]


def test_settings_problems_have_dotted_paths():
    found = settings.problems({"passphrase_secret": "fixed-name", "items": [
        {"name": "ssh", "file": "x", "secret": "y"}, {"name": "ssh", "file": "z"},
        {"name": "Bad Name", "secret": "s", "colour": "red"},
        {"name": "db", "file": "f", "rotation": "postgres"}]})
    assert found == [
        "drkit.keys.passphrase_secret: expected a Secrets Manager id with REGION in it "
        "(each region keeps a copy), e.g. drkit/lab/REGION/keys-passphrase",
        "drkit.keys.items[0]: give exactly one of secret (a Secrets Manager id) or file",
        "drkit.keys.items[1].name: ssh is listed twice",
        "drkit.keys.items[2].colour: unknown key; expected one of: consumers, file, name, "
        "rotation, secret",
        "drkit.keys.items[2].name: 'Bad Name' is not a key name (lowercase letters, digits "
        "and -)",
        "drkit.keys.items[3].rotation: 'postgres': expected postgres (a database credentials "
        "secret) or ssh (the key file Ansible uses)",
    ]


def test_a_rebuilt_region_gets_the_backups_secrets_back(estate, tmp_path):
    out = operations.take_backup(estate, tmp_path, share_count=5, threshold=3,
                                 shares_out=tmp_path / "custody")
    sm = estate.client("secretsmanager", "eu-west-1")
    # Terraform recreated the region's secret with a new generated value.
    sm.put_secret_value(SecretId="drkit/lab/eu-west/db-credentials",
                        SecretString='{"password": "made-by-terraform"}')
    triple = [shares.read(Path(p)) for p in out["share_files"][:3]]
    restored = operations.restore_secrets(estate, "eu-west", share_texts=triple)
    assert restored["written"] == ["drkit/lab/eu-west/db-credentials"]
    assert restored["opened_with"] == "shares" and restored["label"] == out["label"]
    assert "pw-0123456789" not in json.dumps(restored)
    value = sm.get_secret_value(SecretId="drkit/lab/eu-west/db-credentials")["SecretString"]
    assert value.encode() == KEYS["db-credentials"]
    # Again: nothing to write. A region whose secret is gone gets it created.
    assert operations.restore_secrets(estate, "eu-west")["unchanged"] == [
        "drkit/lab/eu-west/db-credentials"]
    estate.client("secretsmanager", "us-east-1").delete_secret(
        SecretId="drkit/lab/us-east/db-credentials", ForceDeleteWithoutRecovery=True)
    assert operations.restore_secrets(estate, "us-east")["created"] == [
        "drkit/lab/us-east/db-credentials"]
    with pytest.raises(shares.SharesError, match=r"2 share\(s\) given; .* needs 3"):
        operations.restore_secrets(estate, "eu-west", share_texts=triple[:2])
