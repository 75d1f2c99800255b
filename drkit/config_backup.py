"""Configuration backups: what rebuilding the estate needs besides its data.

One backup is a gzipped tarball of the environment's inventory (aws_ec2.yml,
group_vars), the application's configuration as it is on its hosts, and the
Terraform state's current version, with a SHA-256 manifest: one line per file
in the tarball and the tarball's own digest. Both go into every region's
backup bucket (``<estate>-<region>-backups``, under ``config/``), so losing any
one region leaves a complete copy; the manifest is written last, so a listed
backup is a complete one.

Secrets are not configuration: they are restored from Secrets Manager (the
failover's secret restore), so a value under a secret-looking key (password,
secret, token, ...) is masked in the copy and the manifest names each one. A
value that is a template (``{{ lookup(...) }}``) or vault-encrypted is kept:
it is not the secret itself.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from drkit.backups import backup_estate
from drkit.redact import MASK, is_secret_key

PREFIX = "config/"
FORMAT = 1

# `  key: value` in YAML, optionally a list item; the value on the same line.
_YAML_PAIR = re.compile(r"^(?P<lead>\s*(?:-\s+)?)(?P<key>[\w.-]+)(?P<sep>\s*:\s+)(?P<value>\S.*)$")


@dataclass(frozen=True)
class Member:
    """One file in a configuration backup."""

    name: str
    data: bytes
    redacted: tuple[str, ...] = ()

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass
class ConfigBackup:
    """One configuration backup in one bucket, from its manifest."""

    label: str
    bucket: str
    created: datetime
    archive_key: str
    archive_sha256: str
    size_bytes: int
    manifest: dict[str, Any] = field(repr=False, default_factory=dict)

    @property
    def manifest_key(self) -> str:
        return manifest_key(self.label)

    def as_dict(self, now: datetime | None = None) -> dict[str, Any]:
        now = now or datetime.now(UTC)
        return {"label": self.label, "bucket": self.bucket, "created": self.created.isoformat(),
                "age_s": round((now - self.created).total_seconds(), 1),
                "archive": self.archive_key, "sha256": self.archive_sha256,
                "size_bytes": self.size_bytes, "files": len(self.manifest.get("files", []))}


def label_for(when: datetime) -> str:
    return "config-" + when.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def archive_key(label: str) -> str:
    return f"{PREFIX}{label}.tar.gz"


def manifest_key(label: str) -> str:
    return f"{PREFIX}{label}.manifest.json"


def buckets(settings: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """{region: (bucket, cloud_region)} for every region of the estate (of the estate
    whose buckets hold the backups: ``drkit.backup.estate``)."""
    estate = backup_estate(settings)
    return {name: (f"{estate}-{name}-backups", conf["cloud_region"])
            for name, conf in (settings.get("regions") or {}).items()}


def mask_yaml_secrets(text: str) -> tuple[str, list[str]]:
    """``text`` with the value of every secret-looking ``key: value`` masked, and
    the keys masked (in order). Templates and vault-encrypted values are kept."""
    masked: list[str] = []
    lines = []
    for line in text.splitlines(keepends=True):
        body = line.rstrip("\r\n")
        m = _YAML_PAIR.match(body)
        if m and is_secret_key(m["key"]) and _is_literal(m["value"]):
            masked.append(m["key"])
            line = f"{m['lead']}{m['key']}{m['sep']}\"{MASK}\"{line[len(body):]}"
        lines.append(line)
    return "".join(lines), masked


def _is_literal(value: str) -> bool:
    value = value.strip().strip("'\"")
    return bool(value) and "{{" not in value and not value.startswith(("!vault", "|", ">", "#"))


def mask_json_secrets(value: Any, path: str = "") -> tuple[Any, list[str]]:
    """A copy of a parsed JSON document with secret-looking keys' values masked,
    and the dotted paths masked."""
    masked: list[str] = []
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if is_secret_key(str(key)) and item not in (None, ""):
                out[key] = MASK
                masked.append(where)
            else:
                out[key], inner = mask_json_secrets(item, where)
                masked += inner
        return out, masked
    if isinstance(value, list):
        items = [mask_json_secrets(item, f"{path}[{i}]") for i, item in enumerate(value)]
        return [v for v, _ in items], [p for _, inner in items for p in inner]
    return value, masked


def inventory_members(inventory: Path) -> list[Member]:
    """Every file of the environment's inventory, secrets in YAML masked."""
    members = []
    for path in sorted(p for p in inventory.rglob("*") if p.is_file()):
        name = f"inventory/{inventory.name}/{path.relative_to(inventory).as_posix()}"
        data = path.read_bytes()
        masked: list[str] = []
        if path.suffix in (".yml", ".yaml"):
            text, masked = mask_yaml_secrets(data.decode())
            data = text.encode()
        members.append(Member(name, data, tuple(masked)))
    return members


def host_members(host_files: dict[str, dict[str, Any]]) -> list[Member]:
    """The application's configuration files as read on each host (``{host: {path:
    parsed JSON}}``), secrets masked again here whatever the host did."""
    members = []
    for host in sorted(host_files):
        for path in sorted(host_files[host]):
            content, masked = mask_json_secrets(host_files[host][path])
            data = (json.dumps(content, indent=2, sort_keys=True) + "\n").encode()
            members.append(Member(f"hosts/{host}/{path.lstrip('/')}", data, tuple(masked)))
    return members


def terraform_state_member(s3: Any, bucket: str, key: str) -> tuple[Member, dict[str, Any]]:
    """The state object's current version, and where it came from (bucket, key,
    version id, serial, lineage): enough to pin or fetch that version again."""
    obj = s3.get_object(Bucket=bucket, Key=key)
    data = obj["Body"].read()
    try:
        state = json.loads(data)
    except ValueError:
        state = {}
    info = {"bucket": bucket, "key": key, "version_id": obj.get("VersionId"),
            "serial": state.get("serial"), "lineage": state.get("lineage"),
            "terraform_version": state.get("terraform_version"),
            "sha256": hashlib.sha256(data).hexdigest()}
    return Member(f"terraform/{key}", data), info


def build(members: Iterable[Member], *, created: datetime,
          about: dict[str, Any]) -> tuple[bytes, dict[str, Any]]:
    """The tarball (deterministic for the same members and time) and its manifest."""
    members = list(members)
    label = label_for(created)
    buffer = io.BytesIO()
    mtime = int(created.timestamp())
    with tarfile.open(fileobj=buffer, mode="w:gz", format=tarfile.PAX_FORMAT) as tar:
        for m in members:
            info = tarfile.TarInfo(f"{label}/{m.name}")
            info.size, info.mtime, info.mode = len(m.data), mtime, 0o600
            tar.addfile(info, io.BytesIO(m.data))
    archive = buffer.getvalue()
    manifest = {
        "format": FORMAT, "label": label, "created": created.astimezone(UTC).isoformat(),
        "archive": {"key": archive_key(label), "sha256": hashlib.sha256(archive).hexdigest(),
                    "size_bytes": len(archive)},
        "files": [{"name": m.name, "sha256": m.sha256, "size_bytes": len(m.data),
                   **({"masked": list(m.redacted)} if m.redacted else {})} for m in members],
        **about,
    }
    return archive, manifest


def upload(s3: Any, bucket: str, archive: bytes, manifest: dict[str, Any]) -> None:
    """The tarball, then its manifest (a listed backup is a complete one)."""
    s3.put_object(Bucket=bucket, Key=manifest["archive"]["key"], Body=archive,
                  ContentType="application/gzip",
                  ChecksumSHA256=_b64(manifest["archive"]["sha256"]))
    s3.put_object(Bucket=bucket, Key=manifest_key(manifest["label"]),
                  Body=(json.dumps(manifest, indent=2) + "\n").encode(),
                  ContentType="application/json")


def _b64(hex_digest: str) -> str:
    import base64

    return base64.b64encode(bytes.fromhex(hex_digest)).decode()


def list_backups(s3: Any, bucket: str) -> list[ConfigBackup]:
    """The configuration backups in ``bucket`` (those with a manifest), oldest first."""
    found = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=PREFIX):
        for obj in page.get("Contents", []):
            if not obj["Key"].endswith(".manifest.json"):
                continue
            manifest = json.loads(s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read())
            found.append(ConfigBackup(
                label=manifest["label"], bucket=bucket,
                created=datetime.fromisoformat(manifest["created"]),
                archive_key=manifest["archive"]["key"],
                archive_sha256=manifest["archive"]["sha256"],
                size_bytes=manifest["archive"]["size_bytes"], manifest=manifest))
    return sorted(found, key=lambda b: b.created)


def expired(backups: list[ConfigBackup], *, now: datetime,
            retention: timedelta) -> list[ConfigBackup]:
    """Backups older than the retention, never the newest one."""
    return [b for b in backups[:-1] if now - b.created > retention]


def delete(s3: Any, backup: ConfigBackup) -> None:
    s3.delete_objects(Bucket=backup.bucket, Delete={"Objects": [
        {"Key": backup.manifest_key}, {"Key": backup.archive_key}]})


def verify(s3: Any, backup: ConfigBackup) -> list[str]:
    """What is wrong with one backup: a missing or altered tarball, or a file in it
    whose digest differs from the manifest's. Empty when it is intact."""
    where = f"s3://{backup.bucket}/{backup.archive_key}"
    try:
        archive = s3.get_object(Bucket=backup.bucket, Key=backup.archive_key)["Body"].read()
    except s3.exceptions.NoSuchKey:
        return [f"{where} is missing"]
    digest = hashlib.sha256(archive).hexdigest()
    if digest != backup.archive_sha256:
        return [f"{where}: SHA-256 {digest[:12]}... differs from the manifest's "
                f"{backup.archive_sha256[:12]}..."]
    expected = {f["name"]: f["sha256"] for f in backup.manifest.get("files", [])}
    seen: dict[str, str] = {}
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        for info in tar.getmembers():
            name = info.name.split("/", 1)[1] if "/" in info.name else info.name
            handle = tar.extractfile(info)
            seen[name] = hashlib.sha256(handle.read() if handle else b"").hexdigest()
    problems = [f"{where}: {name} is in the manifest but not in the tarball"
                for name in expected if name not in seen]
    problems += [f"{where}: {name} differs from the manifest" for name, digest in seen.items()
                 if expected.get(name) != digest]
    return problems
