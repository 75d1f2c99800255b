"""`invoke readiness`: the daily validation suite (RB-RD-001), read-only."""

from __future__ import annotations

from invoke import task

from drkit.cli.common import maps_errors, parse_duration_flag, run_runbook
from drkit.cli.runs import RUN_HELP

READINESS_RUNBOOK = "RB-RD-001"


@task(help={"junit": "also write the JUnit XML here (one testcase per check)",
            "backup-max-age": "the newest backup may be at most this old (e.g. 6h; default "
                              "drkit.backup.max_age)",
            "failover-region": "region RB-DR-003's readiness is checked against (default "
                               "eu-west)",
            "env": RUN_HELP["env"], "json": RUN_HELP["json"]})
@maps_errors
def readiness(c, junit="", backup_max_age="", failover_region="", env="", json_=False):
    """RB-RD-001: every daily check (backups and WAL, key backups, nodes, replication,
    DNS, S3 and Secrets Manager in every region, a restore plan, failover readiness);
    all run, exit 4 names each that fails. Changes nothing."""
    if backup_max_age:
        parse_duration_flag(backup_max_age, "--backup-max-age", hint="e.g. 6h or 1d")
    params = {"backup_max_age": backup_max_age}
    if failover_region:
        params["failover_region"] = failover_region

    def known_region(environment) -> None:
        if failover_region:
            environment.region(failover_region)

    run_runbook(READINESS_RUNBOOK, params, env=env, json_mode=json_, yes=True, junit=junit,
                check_env=known_region, resume_command="invoke readiness")
