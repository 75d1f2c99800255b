"""pgBackRest repositories as drkit sees them: read from the buckets, not the hosts.

Where the backups are, which exist and what each covers is read straight from
each repository's ``backup.info`` in S3 (through the estate's endpoint, as boto3
reaches AWS), so it is known when every database host is down, which is when
it matters. Writing, verifying and restoring stay pgBackRest's (playbooks/
backup.yml, restore.yml, the role pgbackrest): drkit never writes a repository.

Repository N is the N-th entry of ``drkit.backup.repositories`` (pgBackRest's
repoN), in bucket ``<estate>-<region>-backups`` under ``/pgbackrest``.
"""

from __future__ import annotations

import configparser
import json
import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from drkit.errors import ConfigError

REPO_PATH = "pgbackrest"


@dataclass(frozen=True)
class Repository:
    """Where one pgBackRest repository lives."""

    number: int
    region: str
    cloud_region: str
    bucket: str
    stanza: str

    @property
    def backup_info_key(self) -> str:
        return f"{REPO_PATH}/backup/{self.stanza}/backup.info"

    @property
    def archive_prefix(self) -> str:
        return f"{REPO_PATH}/archive/{self.stanza}/"


@dataclass(frozen=True)
class BackupSet:
    """One backup in one repository, from its backup.info entry."""

    label: str
    type: str
    start: datetime
    stop: datetime
    lsn_start: str
    lsn_stop: str
    size_bytes: int
    repo_size_bytes: int
    prior: str | None
    error: bool

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["start"], out["stop"] = self.start.isoformat(), self.stop.isoformat()
        return out


@dataclass
class RepositoryState:
    """What a repository holds now, or why it could not be read."""

    repo: Repository
    reachable: bool
    error: str | None = None
    backups: list[BackupSet] = field(default_factory=list)

    def as_dict(self, now: datetime | None = None) -> dict[str, Any]:
        now = now or datetime.now(UTC)
        return {"repo": self.repo.number, "region": self.repo.region,
                "bucket": self.repo.bucket, "reachable": self.reachable, "error": self.error,
                "backups": [{**b.as_dict(), "age_s": round((now - b.stop).total_seconds(), 1)}
                            for b in self.backups]}


def backup_estate(settings: dict[str, Any]) -> str:
    """The estate whose buckets hold the backups: ``drkit.backup.estate`` (a rebuild
    rehearsal's scratch estate restores from the live estate's), else this one."""
    return (settings.get("backup") or {}).get("estate") or settings.get("estate", "lab")


def repositories(settings: dict[str, Any]) -> list[Repository]:
    """The estate's repositories from its drkit settings (``drkit.backup``)."""
    backup = settings.get("backup")
    if not backup:
        raise ConfigError("this environment has no backups configured (drkit.backup)",
                          hint="add drkit.backup with repositories to the environment's "
                               "group_vars/all/drkit.yml (docs/internals.md, 'Backups')")
    estate = backup_estate(settings)
    regions = settings.get("regions", {})
    return [Repository(number=i, region=r["region"],
                       cloud_region=regions[r["region"]]["cloud_region"],
                       bucket=f"{estate}-{r['region']}-backups", stanza=backup["stanza"])
            for i, r in enumerate(backup["repositories"], start=1)]


def parse_backup_info(text: str) -> list[BackupSet]:
    """Every backup set of a pgBackRest ``backup.info``, oldest first."""
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # labels are case-sensitive
    parser.read_string(text)
    if not parser.has_section("backup:current"):
        return []
    sets = []
    for label, raw in parser.items("backup:current"):
        entry = json.loads(raw)
        sets.append(BackupSet(
            label=label, type=entry.get("backup-type", "?"),
            start=datetime.fromtimestamp(entry["backup-timestamp-start"], UTC),
            stop=datetime.fromtimestamp(entry["backup-timestamp-stop"], UTC),
            lsn_start=entry.get("backup-lsn-start", ""), lsn_stop=entry.get("backup-lsn-stop", ""),
            size_bytes=int(entry.get("backup-info-size", 0)),
            repo_size_bytes=int(entry.get("backup-info-repo-size", 0)),
            prior=entry.get("backup-prior"), error=bool(entry.get("backup-error", False))))
    return sorted(sets, key=lambda b: b.stop)


def read_repository(env: Any, repo: Repository) -> RepositoryState:
    """The backups a repository holds (its backup.info, else the .copy pgBackRest keeps)."""
    return read_repository_with(env.client("s3", repo.cloud_region), repo)


def read_repository_with(s3: Any, repo: Repository) -> RepositoryState:
    """``read_repository`` with a given S3 client (the bucket's region)."""
    last_error = None
    for key in (repo.backup_info_key, repo.backup_info_key + ".copy"):
        try:
            body = s3.get_object(Bucket=repo.bucket, Key=key)["Body"].read().decode()
            return RepositoryState(repo, True, backups=parse_backup_info(body))
        except s3.exceptions.NoSuchKey:
            last_error = "no backup.info: the stanza was never created in this repository"
        except s3.exceptions.NoSuchBucket:
            return RepositoryState(repo, False, f"bucket {repo.bucket} does not exist")
        except Exception as exc:  # an unreachable region is a finding, not a crash
            return RepositoryState(repo, False, f"{type(exc).__name__}: {exc}")
    return RepositoryState(repo, True, last_error)


#: A WAL segment's file name in a repository: timeline, log, segment, then "-<sha1>".
_WAL_SEGMENT = re.compile(r"^(?P<timeline>[0-9A-F]{8})[0-9A-F]{16}(?:\.partial)?-")


def last_archived_timeline(s3: Any, repo: Repository) -> int | None:
    """The timeline of the WAL segment the repository stored last: the history the
    estate was writing when it was lost, for a restore with no node left to ask. A
    branch that some copy promoted and archived into the repository earlier is not
    it, however high its number (PostgreSQL's default, the highest, would follow
    it and refuse the backup, or replay writes the live database never had).
    Reads only the newest directory of each timeline
    (``archive/<stanza>/<version>/<timeline><log>/``). None when nothing is archived."""
    pages = s3.get_paginator("list_objects_v2")
    newest: tuple[Any, int] | None = None
    for versions in pages.paginate(Bucket=repo.bucket, Prefix=repo.archive_prefix,
                                   Delimiter="/"):
        for version in versions.get("CommonPrefixes", []):
            dirs: dict[int, str] = {}
            for page in pages.paginate(Bucket=repo.bucket, Prefix=version["Prefix"],
                                       Delimiter="/"):
                for entry in page.get("CommonPrefixes", []):
                    name = entry["Prefix"].rstrip("/").rsplit("/", 1)[-1]
                    if re.fullmatch(r"[0-9A-F]{16}", name):
                        timeline = int(name[:8], 16)
                        dirs[timeline] = max(dirs.get(timeline, ""), entry["Prefix"])
            for timeline, prefix in dirs.items():
                for page in pages.paginate(Bucket=repo.bucket, Prefix=prefix):
                    for obj in page.get("Contents", []):
                        if _WAL_SEGMENT.match(obj["Key"].rsplit("/", 1)[-1]) and (
                                newest is None or obj["LastModified"] > newest[0]):
                            newest = (obj["LastModified"], timeline)
    return newest[1] if newest else None


@dataclass
class RestorePlan:
    """What a restore would use, or every reason it cannot start.

    ``fallbacks`` are the other repositories, in order, with the backup each would
    restore instead when the chosen one turns out damaged mid-restore (a checksum
    mismatch or a missing object); empty when the region was asked for."""

    repo: int | None = None
    region: str | None = None
    label: str | None = None
    target_time: str = ""
    backup: dict[str, Any] | None = None
    fallbacks: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    decisions: list[str] = field(default_factory=list)


def _choose(state: RepositoryState, label: str,
            target_time: datetime | None) -> tuple[BackupSet | None, str | None]:
    """The backup set of one repository a restore would use, or why none fits."""
    where = f"repo{state.repo.number} ({state.repo.region})"
    good = [b for b in state.backups if not b.error]
    if label != "latest":
        chosen = [b for b in good if b.label == label]
        if not chosen:
            return None, (f"backup {label} is not in {where}; it holds: "
                          f"{', '.join(b.label for b in good)}")
        if target_time and target_time < chosen[0].stop:
            return None, (f"target time {target_time.isoformat()} is before backup "
                          f"{label} ended ({chosen[0].stop.isoformat()})")
        return chosen[0], None
    if target_time:
        before = [b for b in good if b.stop <= target_time]
        if not before:
            return None, (f"target time {target_time.isoformat()} is before the oldest "
                          f"backup in {where} ended ({good[0].stop.isoformat()})")
        return before[-1], None
    return good[-1], None


def plan_restore(states: list[RepositoryState], *, region: str, label: str,
                 target_time: datetime | None, now: datetime,
                 prefer_region: str = "") -> RestorePlan:
    """Choose the repository and backup set for a restore, or say why none fits.

    ``region`` picks the repository in that region ('' = the first readable one,
    the others being fallbacks; ``prefer_region``'s first when it has one, so a
    restore into a region reads its own region's copy); ``label`` a backup set
    ('latest' = the newest that ends before the target time, or the newest). A
    target time must lie after the chosen backup's end and not in the future.
    """
    plan = RestorePlan(target_time=target_time.isoformat() if target_time else "")
    if target_time and target_time > now:
        plan.problems.append(f"target time {target_time.isoformat()} is in the future "
                             f"(now {now.isoformat(timespec='seconds')})")
        return plan
    candidates = sorted((s for s in states if not region or s.repo.region == region),
                        key=lambda s: s.repo.region != prefer_region)
    if region and not candidates:
        have = ", ".join(s.repo.region for s in states) or "none"
        plan.problems.append(f"region {region} has no backup repository; repositories are in: "
                             f"{have}")
        return plan
    usable = []
    for state in candidates:
        if not state.reachable:
            plan.decisions.append(f"repo{state.repo.number} ({state.repo.region}) skipped: "
                                  f"{state.error}")
        elif not [b for b in state.backups if not b.error]:
            plan.decisions.append(f"repo{state.repo.number} ({state.repo.region}) holds no "
                                  f"backup yet")
        else:
            usable.append(state)
    if not usable:
        plan.problems.append("no backup to restore from: "
                             + "; ".join(plan.decisions or ["no repository"])
                             + " (take one with `invoke backup`)")
        return plan
    state = usable[0]
    backup, problem = _choose(state, label, target_time)
    if backup is None:
        plan.problems.append(problem or "no backup fits")
        return plan
    plan.repo, plan.region, plan.label = state.repo.number, state.repo.region, backup.label
    plan.backup = backup.as_dict()
    plan.decisions.append(
        f"restoring backup {backup.label} ({backup.type}, ended {backup.stop.isoformat()}) "
        f"from repo{state.repo.number} ({state.repo.region})"
        + (f", then WAL up to {target_time.isoformat()}" if target_time
           else ", then every archived WAL segment"))
    for other in usable[1:]:
        spare, _ = _choose(other, label, target_time)
        if spare is not None:
            plan.fallbacks.append({"repo": other.repo.number, "region": other.repo.region,
                                   "label": spare.label})
    if plan.fallbacks:
        plan.decisions.append(
            f"should repo{state.repo.number} turn out damaged, the restore falls back to "
            + ", then ".join(f"backup {f['label']} in repo{f['repo']} ({f['region']})"
                             for f in plan.fallbacks))
    return plan
