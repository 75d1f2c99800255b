"""Backups: `invoke backup`, `backup.list`, `backup.verify`, and RB-DR-006's `restore`.

`backup` and `restore` run their runbooks (journaled, locked, reported);
`backup.list` reads what each repository holds straight from its bucket.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from invoke import Collection, task

from drkit.cli.common import maps_errors, parse_time, run_options, run_or_resume
from drkit.cli.runs import RUN_HELP
from drkit.durations import format_duration
from drkit.errors import ConfigError

BACKUP_RUNBOOK = "RB-BK-001"
VERIFY_RUNBOOK = "RB-BK-002"
RESTORE_RUNBOOK = "RB-DR-006"
TYPES = ("full", "diff", "incr")
WHATS = ("data", "config", "all")
#: Where `restore --into` puts the copy: a scratch host, or the estate's services.
RESTORE_INTO = ("scratch", "db")
LABEL_HINT = "labels look like 20261203-064040F (full) or 20261203-064040F_20261203-070000D"



@task(default=True, help={
    "type": "full (default), diff or incr",
    "what": "data (default: the database), config (inventory, app configuration, "
            "Terraform state) or all",
    **RUN_HELP})
@maps_errors
def take(c, type_="", what="", incident_start="", dry_run=False, yes=False, resume="",
         env="", json_=False, break_lock=False, from_="", only=""):
    """RB-BK-001: a pgBackRest backup into every repository, taken from a streaming
    standby (else the primary), and/or a configuration backup into every region's bucket."""
    if type_ and type_ not in TYPES:
        raise ConfigError(f"--type {type_!r}: not a backup type", hint=f"use one of: "
                          f"{', '.join(TYPES)}")
    if what and what not in WHATS:
        raise ConfigError(f"--what {what!r}: not something to back up",
                          hint=f"use one of: {', '.join(WHATS)}")
    run_or_resume(BACKUP_RUNBOOK, {"type": type_ or "full", "what": what or "data"},
                  task_name="backup", resume=resume, given={"--type": type_, "--what": what},
                  **run_options(env, dry_run, yes, json_, break_lock, from_, only,
                                 incident_start))


@task(name="list", help={"env": RUN_HELP["env"], "json": "print JSON",
                         "config": "with --json: also the configuration backups "
                                   "({repositories, config})"})
@maps_errors
def list_(c, env="", json_=False, config=False):
    """Every backup in every repository: label, type, end, age, size, stop LSN; and the
    configuration backups in every region's bucket."""
    from drkit import backups
    from drkit.checks.config_backup import read_all
    from drkit.env import load_environment
    from drkit.project import find_project

    environment = load_environment(find_project(), env or None)
    now = datetime.now(UTC)
    states = [backups.read_repository(environment, repo).as_dict(now)
              for repo in backups.repositories(environment.settings)]
    configs = [{"region": c["region"], "bucket": c["bucket"], "error": c["error"],
                "backups": [b.as_dict(now) for b in c["backups"]]}
               for c in read_all(environment)]
    if json_:
        print(json.dumps(states, indent=2) if not config else
              json.dumps({"repositories": states, "config": configs}, indent=2))
        return
    for state in states:
        where = f"repo{state['repo']} {state['region']} (s3://{state['bucket']})"
        if not state["reachable"] or state["error"]:
            print(f"{where}: {state['error']}")
            continue
        print(f"{where}: {len(state['backups'])} backup(s)")
        for b in state["backups"]:
            print(f"  {b['label']:<36} {b['type']:<5} ended {b['stop'][:19]}Z  "
                  f"age {format_duration(b['age_s']):>10}  {b['size_bytes'] / 2**20:9.1f} MiB "
                  f"(stored {b['repo_size_bytes'] / 2**20:.1f} MiB)  stop LSN {b['lsn_stop']}"
                  + ("  ERROR" if b["error"] else ""))
    print("configuration backups:")
    for c in configs:
        where = f"  {c['region']} (s3://{c['bucket']})"
        newest = c["backups"][-1] if c["backups"] else None
        print(f"{where}: {c['error']}" if c["error"] else
              f"{where}: {len(c['backups'])} backup(s)" + (
                  f", newest {newest['label']} age {format_duration(newest['age_s'])}, "
                  f"{newest['files']} files, {newest['size_bytes'] / 1024:.1f} KiB"
                  if newest else ""))


@task(help={**RUN_HELP})
@maps_errors
def verify(c, incident_start="", dry_run=False, yes=False, resume="", env="", json_=False,
           break_lock=False, from_="", only=""):
    """RB-BK-002: check every file's checksum in every repository and the WAL from each
    backup on; a damaged repository fails the run (exit 4) naming each bad object."""
    run_or_resume(VERIFY_RUNBOOK, {}, task_name="backup.verify", resume=resume, given={},
                  **run_options(env, dry_run, yes, json_, break_lock, from_, only,
                                 incident_start))


@task(help={
    "backup": "backup label, or latest (default: the newest that ends before --target-time)",
    "target-time": "restore to this moment (ISO 8601, e.g. 2026-12-03T07:30:00Z); default: "
                   "every archived WAL segment",
    "region": "region whose repository to restore from; with --into scratch the scratch "
              "host runs there (default: the first repository's)",
    "into": "scratch (default: a throwaway host, verified and destroyed) or db (the estate's "
            "database, overwritten after an approval naming what is lost)",
    **RUN_HELP})
@maps_errors
def restore(c, backup="", target_time="", region="", into="", incident_start="",
            dry_run=False, yes=False, resume="", env="", json_=False, break_lock=False,
            from_="", only=""):
    """RB-DR-006: restore a backup onto a scratch host and verify it (pg_amcheck,
    checksums, table digests), the host destroyed afterwards; or, --into db, onto the
    estate's database (old data directory kept, replicas rebuilt)."""
    if into and into not in RESTORE_INTO:
        raise ConfigError(f"--into {into!r}: nothing to restore into by that name",
                          hint=f"use one of: {', '.join(RESTORE_INTO)}")
    if backup and backup != "latest" and not looks_like_label(backup):
        raise ConfigError(f"--backup {backup!r} is not a backup label", hint=LABEL_HINT)
    when = parse_time(target_time, "--target-time")
    run_or_resume(RESTORE_RUNBOOK,
                  {"backup": backup or "latest", "region": region,
                   "target_time": when.isoformat() if when else "",
                   "into": into or "scratch"},
                  task_name="restore", resume=resume,
                  given={"--backup": backup, "--target-time": target_time, "--region": region,
                         "--into": into},
                  check_env=(lambda environment: environment.region(region)) if region else None,
                  **run_options(env, dry_run, yes, json_, break_lock, from_, only,
                                 incident_start))


def looks_like_label(text: str) -> bool:
    """Whether ``text`` has the shape of a pgBackRest backup label."""
    import re

    return bool(re.fullmatch(r"\d{8}-\d{6}F(_\d{8}-\d{6}[DI])?", text))


ns = Collection("backup")
ns.add_task(take, name="backup", default=True)
ns.add_task(list_)
ns.add_task(verify)
