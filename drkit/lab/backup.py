"""The lab's backup faults: damage one object of a pgBackRest repository, as bit
rot or a careless delete in a bucket would, so verification and restores can be
tested against a real broken repository (``lab.chaos damage-backup``)."""

from __future__ import annotations

from typing import Any

from drkit import backups
from drkit.errors import ConfigError
from drkit.lab import control_plane


def damage_backup(settings: dict[str, Any], region: str, *, delete: bool = False) -> list[str]:
    """Overwrite (or delete) the largest file of the newest backup in the repository
    of ``region``; returns a line naming the object."""
    repos = [r for r in backups.repositories(settings) if r.region == region]
    if not repos:
        have = ", ".join(r.region for r in backups.repositories(settings))
        raise ConfigError(f"region {region} has no backup repository",
                          hint=f"repositories are in: {have}")
    repo = repos[0]
    s3 = control_plane.client("s3", repo.cloud_region)
    state = backups.read_repository_with(s3, repo)
    if not state.backups:
        raise ConfigError(f"repo{repo.number} ({region}) holds no backup to damage",
                          hint="take one first: invoke backup")
    newest = state.backups[-1].label
    prefix = f"{backups.REPO_PATH}/backup/{repo.stanza}/{newest}/pg_data/"
    objects = [o for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=repo.bucket, Prefix=prefix) for o in page.get("Contents", [])]
    if not objects:
        raise ConfigError(f"backup {newest} in repo{repo.number} has no data files")
    victim = max(objects, key=lambda o: o["Size"])
    if delete:
        s3.delete_object(Bucket=repo.bucket, Key=victim["Key"])
        what = "deleted"
    else:
        s3.put_object(Bucket=repo.bucket, Key=victim["Key"], Body=b"\0" * victim["Size"])
        what = f"overwritten with {victim['Size']} zero bytes"
    return [f"repo{repo.number} ({region}) s3://{repo.bucket}/{victim['Key']}: {what}"]
