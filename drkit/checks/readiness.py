"""Probes the readiness suite (RB-RD-001) adds to the others: backups fresh enough,
WAL archiving working on the primary, and every region's cloud APIs answering.
Each returns ``problems``, one line per finding that says what to fix."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import psycopg
from botocore.config import Config
from psycopg.rows import dict_row

from drkit import backups, config_backup
from drkit.checks.estate import dsn, topology_probe
from drkit.durations import format_duration, parse_duration
from drkit.registry import StepContext, probe

#: A readiness check must answer, not retry for a minute: a region that does not
#: answer within this is reported as not answering.
_QUICK = Config(connect_timeout=3, read_timeout=5, retries={"max_attempts": 2, "mode": "standard"})

_ARCHIVER_SQL = """
SELECT current_setting('archive_mode') AS archive_mode, archived_count, last_archived_wal,
       last_archived_time, failed_count, last_failed_wal, last_failed_time
FROM pg_stat_archiver"""


@probe("backup.freshness")
def freshness_probe(ctx: StepContext, max_age: str = "") -> dict[str, Any]:
    """Every repository answers and its newest good backup is at most ``max_age`` old
    (default ``drkit.backup.max_age``, else 1 day)."""
    limit = parse_duration(max_age or (ctx.env.settings.get("backup") or {}).get("max_age", "1d"))
    now = datetime.now(UTC)
    problems, newest = [], {}
    for repo in backups.repositories(ctx.env.settings):
        state = backups.read_repository(ctx.env, repo)
        where = f"repo{repo.number} ({repo.region}, s3://{repo.bucket})"
        good = [b for b in state.backups if not b.error]
        if not state.reachable or state.error:
            problems.append(f"{where}: {state.error}")
        elif not good:
            problems.append(f"{where} holds no backup: take one with `invoke backup`")
        else:
            age = (now - good[-1].stop).total_seconds()
            newest[repo.region] = {"label": good[-1].label, "age_s": round(age)}
            if age > limit:
                problems.append(f"{where}: the newest backup {good[-1].label} is "
                                f"{format_duration(age)} old, more than the "
                                f"{format_duration(limit)} allowed: take one with "
                                "`invoke backup` and check the schedule")
    return {"ok": not problems, "problems": problems, "newest": newest, "max_age_s": limit}


@probe("postgres.archiver")
def archiver_probe(ctx: StepContext, secret: str, primary: str = "",
                   timeout: float = 3.0) -> dict[str, Any]:
    """WAL archiving on the node that is primary now (``primary``, the host an
    earlier topology check found, else asked here): archive_mode on and the last
    attempt succeeded (pg_stat_archiver: a failure newer than the last success means
    segments are piling up unarchived, and point-in-time restores stop there)."""
    host = primary or topology_probe(ctx, secret)["primary_host"]
    if not host:
        return {"ok": False, "problems": ["no primary answers, so WAL archiving cannot be "
                                          "checked: see the nodes check"]}
    from drkit.checks.estate import db_credentials

    creds = db_credentials(ctx, secret, ctx.env.regions_primary_first())
    try:
        with psycopg.connect(dsn(host, creds), connect_timeout=int(timeout), autocommit=True,
                             row_factory=dict_row) as conn:
            row = conn.execute(_ARCHIVER_SQL).fetchone() or {}
    except psycopg.Error as exc:
        return {"ok": False, "problems": [f"primary {host}: {str(exc).splitlines()[0]}"]}
    problems = []
    if row.get("archive_mode") == "off":
        problems.append(f"primary {host}: archive_mode is off: no WAL reaches the repositories")
    failed, archived = row.get("last_failed_time"), row.get("last_archived_time")
    if failed and (archived is None or failed > archived):
        since = failed.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        problems.append(f"primary {host}: WAL archiving is failing since {since} "
                        f"({row['failed_count']} failures, last segment "
                        f"{row['last_failed_wal']}): check archive_command and pgBackRest's "
                        "archive-push log on the primary")
    for key in ("last_archived_time", "last_failed_time"):
        if row.get(key):
            row[key] = row[key].isoformat()
    return {"ok": not problems, "problems": problems, "primary": host, "archiver": row}


@probe("aws.region_access")
def region_access_probe(ctx: StepContext, secret: str) -> dict[str, Any]:
    """Every region's S3 (its backup bucket) and Secrets Manager (its copy of
    ``secret``, REGION replaced) answer; a value is never read."""
    problems, regions = [], {}
    for region, (bucket, cloud) in config_backup.buckets(ctx.env.settings).items():
        secret_id = secret.replace("REGION", region)
        regions[region] = {}
        for service, what in (("s3", f"bucket {bucket}"),
                              ("secretsmanager", f"secret {secret_id}")):
            ctx.progress(f"{region}: {service}")
            client = ctx.env.client(service, cloud, config=_QUICK)
            try:
                if service == "s3":
                    client.head_bucket(Bucket=bucket)
                else:
                    client.describe_secret(SecretId=secret_id)
                regions[region][service] = "ok"
            except Exception as exc:  # each region's failure is a finding
                code = (getattr(exc, "response", None) or {}).get("Error", {}).get("Code")
                regions[region][service] = why = code or type(exc).__name__
                problems.append(f"{region}: {service} does not answer for {what} ({why}): "
                                "check the region's API health and this machine's access")
    return {"ok": not problems, "problems": problems, "regions": regions}
