"""One task per disaster-recovery runbook: what an operator types at 3 a.m.

Each task only turns its options into runbook parameters and calls run_runbook;
the runbook (runbooks/*.yml) says what happens.
"""

from __future__ import annotations

from invoke import task

from drkit.cli.common import maps_errors, run_runbook
from drkit.cli.runs import RUN_HELP
from drkit.errors import ConfigError

FAILOVER_RUNBOOK = "RB-DR-003"


def _dr_run(runbook: str, params: dict, *, task_name: str, resume: str, **options) -> None:
    resume_command = f"invoke {task_name} --resume {{run_id}}"
    if resume:
        run_runbook("", {}, resume=resume, resume_command=resume_command, **options)
    else:
        run_runbook(runbook, params, resume_command=resume_command, **options)


@task(help={
    "region": "region to fail over to, e.g. eu-west (see inventory/<env> drkit settings)",
    "mode": "planned (primary reachable: zero-loss switchover) or unplanned (primary lost)",
    "allow-data-loss": "unplanned only: accept replica lag beyond the RPO target "
                       "(an approval then shows the estimated loss)",
    **RUN_HELP})
@maps_errors
def failover(c, region="", mode="planned", allow_data_loss=False, incident_start="",
             dry_run=False, yes=False, resume="", env="", json_=False, break_lock=False,
             from_="", only=""):
    """RB-DR-003: move the database primary, the application and DNS to another region."""
    if not region and not resume:
        raise ConfigError("which region?", hint="invoke failover --region eu-west")
    _dr_run(FAILOVER_RUNBOOK,
            {"region": region, "mode": mode, "allow_data_loss": allow_data_loss},
            task_name="failover", resume=resume, env=env, dry_run=dry_run, yes=yes,
            json_mode=json_, break_lock=break_lock, incident_start=incident_start,
            from_step=from_, only=only)


@task(help={
    "region": "the original primary region to return to, e.g. us-east",
    **RUN_HELP})
@maps_errors
def failback(c, region="", incident_start="", dry_run=False, yes=False, resume="", env="",
             json_=False, break_lock=False, from_="", only=""):
    """RB-DR-003 with failback: rejoin the old primary as a replica, switch back with zero
    loss, scale the DR region back to its baseline."""
    if not region and not resume:
        raise ConfigError("which region?", hint="invoke failback --region us-east")
    _dr_run(FAILOVER_RUNBOOK, {"region": region, "mode": "planned", "failback": True},
            task_name="failback", resume=resume,
            env=env, dry_run=dry_run, yes=yes, json_mode=json_, break_lock=break_lock,
            incident_start=incident_start, from_step=from_, only=only)
