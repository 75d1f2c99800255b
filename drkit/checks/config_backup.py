"""Probes of the configuration backups in every region's bucket."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from drkit import config_backup
from drkit.registry import StepContext, probe


def read_all(env: Any) -> list[dict[str, Any]]:
    """Per region: its bucket, the configuration backups there, or why it could not be read."""
    found = []
    for region, (bucket, cloud_region) in config_backup.buckets(env.settings).items():
        entry: dict[str, Any] = {"region": region, "bucket": bucket, "error": None,
                                 "backups": []}
        try:
            s3 = env.client("s3", cloud_region)
            entry["backups"] = config_backup.list_backups(s3, bucket)
            entry["s3"] = s3
        except Exception as exc:  # an unreachable region is a finding, not a crash
            entry["error"] = f"{type(exc).__name__}: {exc}"
        found.append(entry)
    return found


@probe("backup.config_intact")
def config_intact_probe(ctx: StepContext) -> dict[str, Any]:
    """Every configuration backup in every region's bucket against its manifest
    (the tarball's SHA-256 and every file's). A bucket that cannot be read or a
    damaged backup is a problem; no configuration backup at all is a warning."""
    now = datetime.now(UTC)
    problems, checked, regions = [], 0, []
    for entry in read_all(ctx.env):
        if entry["error"]:
            problems.append(f"{entry['region']} (s3://{entry['bucket']}): {entry['error']}")
            continue
        for backup in entry["backups"]:
            ctx.progress(f"checking s3://{entry['bucket']}/{backup.archive_key}")
            problems += config_backup.verify(entry["s3"], backup)
            checked += 1
        newest = entry["backups"][-1] if entry["backups"] else None
        regions.append({"region": entry["region"], "backups": len(entry["backups"]),
                        "newest": newest.label if newest else None,
                        "newest_age_s": round((now - newest.created).total_seconds())
                        if newest else None})
        if not newest:
            ctx.decide(f"warning: {entry['region']} holds no configuration backup; take one "
                       "with `invoke backup --what config`")
    return {"ok": not problems, "problems": problems, "checked": checked, "regions": regions,
            "summary": "; ".join(problems) or f"{checked} configuration backups intact"}
