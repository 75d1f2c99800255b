"""RB-DR-007, the complete rebuild: what an operator types when no failover is left.

The task only checks its options and turns them into runbook parameters; the
runbook (runbooks/RB-DR-007-complete-rebuild.yml) says what happens, and its
preflight refuses what the estate itself rules out (a primary that still answers,
a backup label no repository holds, a key backup the shares do not open).
"""

from __future__ import annotations

from pathlib import Path

from invoke import task

from drkit.cli.backup import LABEL_HINT, looks_like_label
from drkit.cli.common import maps_errors, parse_positive, parse_time, run_options, run_or_resume
from drkit.cli.runs import RUN_HELP, SEVERITY_HELP
from drkit.errors import ConfigError

REBUILD_RUNBOOK = "RB-DR-007"


def share_files(text: str) -> list[str]:
    """``--shares a,b,c``: each custodian's share file, readable and named once, as
    absolute paths (a resumed run may start elsewhere)."""
    files = [Path(p.strip()).resolve() for p in text.split(",") if p.strip()]
    if len(set(files)) != len(files):
        raise ConfigError(f"--shares {text}: the same file twice",
                          hint="give each custodian's share file once")
    for path in files:
        if not path.is_file():
            raise ConfigError(f"--shares: {path} is not a readable file",
                              hint="give the custodians' share files, comma-separated")
    return [str(p) for p in files]


def rebuild_params(region: str, backup: str, target_time: str, shares: str, force: bool,
                   app_capacity: str) -> dict[str, object]:
    """The runbook's parameters from the task's options, or a ConfigError naming the
    first bad one."""
    if backup and backup != "latest" and not looks_like_label(backup):
        raise ConfigError(f"--backup {backup!r} is not a backup label", hint=LABEL_HINT)
    when = parse_time(target_time, "--target-time")
    return {"region": region, "backup": backup or "latest",
            "target_time": when.isoformat() if when else "",
            "shares": share_files(shares) if shares else [], "force": force,
            "app_capacity": (parse_positive(app_capacity, "--app-capacity", kind=int,
                                            example="2") if app_capacity else 2)}


@task(help={
    "region": "the region to rebuild and run the service in, e.g. ap-south",
    "backup": "backup set to restore: latest (default) or a label (drkit backup.list)",
    "target-time": "restore up to this time (ISO 8601, e.g. 2026-12-05T03:00:00Z) instead of "
                   "the end of the archived WAL",
    "shares": "custodians' share files, comma-separated, to open the key backup when no "
              "region's Secrets Manager holds its passphrase",
    "force": "rebuild although the primary still answers (it is fenced)",
    "app-capacity": "app hosts the rebuilt region runs (default 2)",
    **RUN_HELP, **SEVERITY_HELP})
@maps_errors
def rebuild(c, region="", backup="", target_time="", shares="", force=False, app_capacity="",
            incident_start="", dry_run=False, yes=False, resume="", env="", json_=False,
            break_lock=False, from_="", only="", severity=""):
    """RB-DR-007: rebuild a region from the backups alone (Terraform, secrets from the key
    backup, the database from a surviving repository, the app, DNS), then validate it."""
    if not resume and not region:
        raise ConfigError("rebuild needs --region (or --resume RUN_ID)",
                          hint="e.g. drkit rebuild --region ap-south")
    params = rebuild_params(region, backup, target_time, shares, force, app_capacity)
    run_or_resume(REBUILD_RUNBOOK, params, task_name="rebuild", resume=resume,
                  given={"--region": region, "--backup": backup, "--target-time": target_time,
                         "--shares": shares, "--force": force, "--app-capacity": app_capacity},
                  check_env=lambda environment: environment.region(region),
                  severity=severity,
                  **run_options(env, dry_run, yes, json_, break_lock, from_, only,
                                incident_start))
