"""Actions of the backup runbooks that run on the machine drkit runs on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from drkit import config_backup
from drkit.durations import parse_duration
from drkit.errors import StepFailed
from drkit.registry import StepContext, action

DEFAULT_RETENTION = "30d"


@action("backup.config")
def backup_config(ctx: StepContext, app_config: dict[str, Any] | None = None) -> dict[str, Any]:
    """A configuration backup (inventory, the app's configuration from its hosts as
    ``{host: {path: parsed JSON}}``, the Terraform state's current version) into
    every region's backup bucket, then expiry past ``drkit.backup.config_retention``.
    Fails naming each bucket it could not write, after writing every other one."""
    settings = ctx.env.settings
    backend = (settings.get("terraform") or {}).get("backend_config") or {}
    members = config_backup.inventory_members(ctx.env.inventory)
    members += config_backup.host_members(
        {host: (facts or {}).get("app_config") or {} for host, facts in (app_config or {}).items()})
    about: dict[str, Any] = {"estate": settings.get("estate"), "environment": ctx.env.name}
    if backend.get("bucket") and backend.get("key"):
        s3 = ctx.env.client("s3", backend.get("region") or settings.get("control_region"))
        member, about["terraform_state"] = config_backup.terraform_state_member(
            s3, backend["bucket"], backend["key"])
        members.append(member)
    now = datetime.now(UTC)
    retention = timedelta(seconds=parse_duration(
        (settings.get("backup") or {}).get("config_retention", DEFAULT_RETENTION)))
    about["retention_s"] = retention.total_seconds()
    archive, manifest = config_backup.build(members, created=now, about=about)
    masked = [f"{f['name']}: {key}" for f in manifest["files"] for key in f.get("masked", [])]
    for line in masked:
        ctx.decide(f"masked (a secret, restored from Secrets Manager): {line}")

    written, failed, expired = [], {}, []
    for region, (bucket, cloud_region) in config_backup.buckets(settings).items():
        ctx.progress(f"writing {manifest['label']} to s3://{bucket}")
        try:
            s3 = ctx.env.client("s3", cloud_region)
            config_backup.upload(s3, bucket, archive, manifest)
            written.append(bucket)
            for old in config_backup.expired(config_backup.list_backups(s3, bucket),
                                             now=now, retention=retention):
                config_backup.delete(s3, old)
                expired.append(f"s3://{bucket}/{old.archive_key}")
        except Exception as exc:  # one unreachable region must not stop the others
            failed[region] = f"{type(exc).__name__}: {exc}"
    if failed:
        raise StepFailed(
            f"configuration backup {manifest['label']} could not be written to "
            + "; ".join(f"{region} ({why})" for region, why in failed.items())
            + (f"; it was written to {', '.join(written)}" if written else ""))
    return {"label": manifest["label"], "sha256": manifest["archive"]["sha256"],
            "size_bytes": manifest["archive"]["size_bytes"], "files": len(manifest["files"]),
            "masked": masked, "buckets": written, "expired": expired,
            "terraform_state": about.get("terraform_state"),
            "summary": f"{manifest['label']}: {len(manifest['files'])} files, "
                       f"{manifest['archive']['size_bytes'] / 1024:.1f} KiB, "
                       f"in {len(written)} buckets; {len(expired)} expired"}
