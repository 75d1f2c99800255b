"""Where key backups are kept: every region's backup bucket under ``keys/`` (the
archive and a plain SHA-256 manifest, written last), and the passphrase in every
region's Secrets Manager (``drkit.keys.passphrase_secret``, REGION replaced).

The manifest holds no secret: the label, when, the archive's SHA-256 and size,
each key's name, where it lives and its consumers, the KDF parameters and the
shares' identifier and threshold. Each key's own digest is inside the archive.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from drkit import config_backup
from drkit.redact import register_secret

PREFIX = "keys/"


class StoreError(Exception):
    """A key backup or the passphrase could not be read or written; says which and why."""


@dataclass
class KeyBackup:
    """One key backup in one bucket, from its manifest."""

    region: str
    bucket: str
    manifest: dict[str, Any]

    @property
    def label(self) -> str:
        return self.manifest["label"]

    @property
    def created(self) -> datetime:
        return datetime.fromisoformat(self.manifest["created"])

    @property
    def archive_key(self) -> str:
        return self.manifest["archive"]["key"]


def label_for(when: datetime) -> str:
    return "keys-" + when.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def archive_key(label: str) -> str:
    return f"{PREFIX}{label}.drkeys"


def manifest_key(label: str) -> str:
    return f"{PREFIX}{label}.manifest.json"


def secrets_client(env: Any, region: str) -> Any:
    """``region``'s (logical name) Secrets Manager client."""
    return env.client("secretsmanager", env.settings["regions"][region]["cloud_region"])


def _s3(env: Any, region: str) -> Any:
    return env.client("s3", env.settings["regions"][region]["cloud_region"])


def error_code(exc: Exception) -> str:
    """The AWS error code of ``exc`` (ResourceNotFoundException...), else its type."""
    return str((getattr(exc, "response", None) or {}).get("Error", {}).get("Code")
               or type(exc).__name__)


def passphrase(env: Any, *, create: bool) -> tuple[str, list[str]]:
    """The backup passphrase (registered as a secret: drkit never writes it) and the
    regions that hold it. With ``create``, a missing one is generated (the first
    backup) and every region without its copy gets one; a region that does not
    answer is never taken to have none. Without, the first copy found is used."""
    template = (env.settings.get("keys") or {}).get("passphrase_secret", "")
    state: dict[str, str | Exception | None] = {}  # value, absent, or why unanswered
    for region in env.settings.get("regions") or {}:
        try:
            state[region] = secrets_client(env, region).get_secret_value(
                SecretId=template.replace("REGION", region))["SecretString"]
        except Exception as exc:  # absent here, or the region does not answer
            state[region] = None if error_code(exc) == "ResourceNotFoundException" else exc
        if not create and isinstance(state[region], str):
            break
    values = [v for v in state.values() if isinstance(v, str)]
    unanswered = [f"{r} ({error_code(v)})" for r, v in state.items() if isinstance(v, Exception)]
    if not values and not create:
        raise StoreError(f"no region holds the key-backup passphrase {template}"
                         + (f" ({', '.join(unanswered)} did not answer)" if unanswered else "")
                         + "; open the backup with the custodians' shares (--shares) or "
                           "--passphrase-file")
    if not values and unanswered:
        raise StoreError(f"the key-backup passphrase {template} could not be read in "
                         f"{', '.join(unanswered)}; a new one is made only when every "
                         "region says it has none")
    value = values[0] if values else secrets.token_urlsafe(32)
    register_secret(value)
    for region in [r for r, v in state.items() if v is None] if create else []:
        secrets_client(env, region).create_secret(Name=template.replace("REGION", region),
                                       SecretString=value,
                                       Description="drkit key-backup passphrase")
        state[region] = value
    return value, [r for r, v in state.items() if isinstance(v, str)]


def upload(env: Any, data: bytes, manifest: dict[str, Any]) -> tuple[list[str], dict[str, str]]:
    """The archive then its manifest into every region's bucket: (written buckets,
    {region: why} for those that failed)."""
    written, failed = [], {}
    for region, (bucket, _) in config_backup.buckets(env.settings).items():
        try:
            s3 = _s3(env, region)
            s3.put_object(Bucket=bucket, Key=manifest["archive"]["key"], Body=data)
            s3.put_object(Bucket=bucket, Key=manifest_key(manifest["label"]),
                          Body=(json.dumps(manifest, indent=2) + "\n").encode())
            written.append(bucket)
        except Exception as exc:  # one unreachable region must not stop the others
            failed[region] = f"{type(exc).__name__}: {exc}"
    return written, failed


def list_backups(env: Any, region: str) -> list[KeyBackup]:
    """The key backups in ``region``'s bucket, oldest first."""
    bucket, _ = config_backup.buckets(env.settings)[region]
    s3 = _s3(env, region)
    found = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=PREFIX):
        for obj in page.get("Contents", []):
            if obj["Key"].endswith(".manifest.json"):
                body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
                found.append(KeyBackup(region, bucket, json.loads(body)))
    return sorted(found, key=lambda b: b.created)


def find(env: Any, label: str = "latest", region: str = "") -> KeyBackup:
    """The backup ``label`` (or the newest) from ``region`` or the first region holding it."""
    regions = [region] if region else list(config_backup.buckets(env.settings))
    problems = []
    for name in regions:
        try:
            backups = list_backups(env, name)
        except Exception as exc:  # try the next region's copy
            problems.append(f"{name}: {type(exc).__name__}")
            continue
        chosen = backups[-1:] if label == "latest" else [b for b in backups if b.label == label]
        if chosen:
            return chosen[0]
        problems.append(f"{name}: {'no key backup' if label == 'latest' else 'not there'}")
    raise StoreError(f"key backup {label} not found ({'; '.join(problems)}); "
                     "`invoke keys.list` shows the backups")


def fetch(env: Any, backup: KeyBackup) -> bytes:
    """The archive's bytes, checked against the manifest's SHA-256."""
    where = f"s3://{backup.bucket}/{backup.archive_key}"
    try:
        data = _s3(env, backup.region).get_object(Bucket=backup.bucket,
                                                  Key=backup.archive_key)["Body"].read()
    except Exception as exc:
        raise StoreError(f"{where}: {type(exc).__name__}; try another region's copy "
                         "with --region") from None
    if hashlib.sha256(data).hexdigest() != backup.manifest["archive"]["sha256"]:
        raise StoreError(f"{where} was altered: its SHA-256 differs from the manifest's; "
                         "use another region's copy with --region")
    return data
