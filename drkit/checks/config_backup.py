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


def compare(manifest: dict[str, Any], inventory_files: dict[str, str],
            state: dict[str, Any] | None) -> list[str]:
    """How the estate's configuration in use differs from a configuration backup's
    manifest: inventory files changed, added or gone ({name: sha256}, masked the same
    way), and a Terraform state of another lineage (a state replaced since) or older
    than the backed-up one. Empty when they match."""
    prefix = ("inventory/" + next(iter(inventory_files)).split("/")[1] + "/"
              if inventory_files else "inventory/")
    backed = {f["name"]: f["sha256"] for f in manifest.get("files", [])
              if f["name"].startswith(prefix)}
    found = [f"{name[len(prefix):]}: {what}" for name, what in sorted(
        [(n, "changed since the backup") for n in backed.keys() & inventory_files.keys()
         if backed[n] != inventory_files[n]]
        + [(n, "not in the backup") for n in inventory_files.keys() - backed.keys()]
        + [(n, "in the backup, not in use") for n in backed.keys() - inventory_files.keys()])]
    was = manifest.get("terraform_state") or {}
    if state and was:
        if state.get("lineage") != was.get("lineage"):
            found.append(f"the Terraform state is another one (lineage {state.get('lineage')}, "
                         f"the backup's {was.get('lineage')}): restore the backup's from its "
                         "terraform/ member if the estate's state was lost")
        elif (state.get("serial") or 0) < (was.get("serial") or 0):
            found.append(f"the Terraform state (serial {state.get('serial')}) is older than "
                         f"the backup's ({was.get('serial')})")
    return found


@probe("backup.config_compare")
def config_compare_probe(ctx: StepContext) -> dict[str, Any]:
    """The newest configuration backup (from the first bucket that answers) against
    the configuration in use: the inventory's files and the Terraform state's
    lineage and serial. Differences are decisions for the report, not failures:
    settings change between backups, and a last-resort rebuild is not refused for
    want of one (no configuration backup at all is a warning too)."""
    newest = None
    for entry in read_all(ctx.env):
        if entry["backups"] and (newest is None or entry["backups"][-1].created > newest.created):
            newest = entry["backups"][-1]
    if newest is None:
        ctx.decide("warning: no configuration backup could be read in any region's bucket "
                   "(`invoke backup --what config` takes one)")
        return {"ok": True, "label": None, "differences": []}
    files = {m.name: m.sha256 for m in config_backup.inventory_members(ctx.env.inventory)}
    settings = ctx.env.settings
    backend = (settings.get("terraform") or {}).get("backend_config") or {}
    state = None
    if backend.get("bucket") and backend.get("key"):
        try:
            s3 = ctx.env.client("s3", backend.get("region") or settings.get("control_region"))
            _, state = config_backup.terraform_state_member(s3, backend["bucket"],
                                                            backend["key"])
        except Exception as exc:  # a state that cannot be read is a difference, said so
            state = {"lineage": f"unreadable ({type(exc).__name__})"}
    differences = compare(newest.manifest, files, state)
    for line in differences:
        ctx.decide(f"configuration backup {newest.label}: {line}")
    if not differences:
        ctx.decide(f"configuration backup {newest.label}: the inventory and the Terraform "
                   "state in use are the ones it holds")
    return {"ok": True, "label": newest.label, "created": newest.created.isoformat(),
            "differences": differences}
