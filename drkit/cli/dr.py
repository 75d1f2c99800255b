"""One task per disaster-recovery runbook: what an operator types at 3 a.m.

Each task only turns its options into runbook parameters and calls run_runbook;
the runbook (runbooks/*.yml) says what happens.
"""

from __future__ import annotations

from invoke import task

from drkit.cli.common import maps_errors, run_or_resume
from drkit.cli.runs import RUN_HELP, SEVERITY_HELP
from drkit.errors import ConfigError

FAILOVER_RUNBOOK = "RB-DR-003"
MODES = ("planned", "unplanned")
SOURCES = ("replica", "backup")


def _dr_run(params: dict, *, task_name: str, resume: str, given: dict[str, object],
            example_region: str, **options) -> None:
    """Run RB-DR-003 with ``params``, or resume one of its runs."""
    if not resume and not params["region"]:
        raise ConfigError(f"{task_name} needs --region (or --resume RUN_ID)",
                          hint=f"e.g. drkit {task_name} --region {example_region}")
    run_or_resume(FAILOVER_RUNBOOK, params, task_name=task_name, resume=resume, given=given,
                  check_env=lambda environment: environment.region(params["region"]),
                  **options)


@task(help={
    "region": "region to fail over to, e.g. eu-west (see inventory/<env> drkit settings)",
    "mode": "planned (default; primary reachable: zero-loss switchover) or unplanned "
            "(primary lost)",
    "allow-data-loss": "unplanned only: accept replica lag beyond the RPO target "
                       "(an approval then shows the estimated loss)",
    "source": "replica (default: promote the region's replica) or backup (unplanned, no "
              "replica there to promote: restore the database onto its host from the backups)",
    **RUN_HELP, **SEVERITY_HELP})
@maps_errors
def failover(c, region="", mode="", allow_data_loss=False, source="", incident_start="",
             dry_run=False, yes=False, resume="", env="", json_=False, break_lock=False,
             from_="", only="", severity=""):
    """RB-DR-003: move the database primary, the application and DNS to another region."""
    if mode and mode not in MODES:
        raise ConfigError(f"--mode {mode!r}: not a mode", hint=f"use one of: {', '.join(MODES)}")
    if source and source not in SOURCES:
        raise ConfigError(f"--source {source!r}: not a source",
                          hint=f"use one of: {', '.join(SOURCES)}")
    if source == "backup" and mode != "unplanned" and not resume:
        raise ConfigError("--source backup restores the database from the backups, for a lost "
                          "primary only", hint="add --mode unplanned")
    if allow_data_loss and mode != "unplanned" and not resume:
        raise ConfigError("--allow-data-loss applies to an unplanned failover only "
                          "(a planned one loses nothing)",
                          hint="add --mode unplanned, or drop --allow-data-loss")
    _dr_run({"region": region, "mode": mode or "planned", "allow_data_loss": allow_data_loss,
             "source": source or "replica"},
            task_name="failover", resume=resume, example_region="eu-west",
            given={"--region": region, "--mode": mode, "--allow-data-loss": allow_data_loss,
                   "--source": source},
            env=env, dry_run=dry_run, yes=yes, json_mode=json_, break_lock=break_lock,
            incident_start=incident_start, from_step=from_, only=only, severity=severity)


@task(help={
    "region": "the original primary region to return to, e.g. us-east",
    **RUN_HELP, **SEVERITY_HELP})
@maps_errors
def failback(c, region="", incident_start="", dry_run=False, yes=False, resume="", env="",
             json_=False, break_lock=False, from_="", only="", severity=""):
    """RB-DR-003 with failback: rejoin the old primary as a replica, switch back with zero
    loss, scale the DR region back to its baseline."""
    _dr_run({"region": region, "mode": "planned", "failback": True},
            task_name="failback", resume=resume, given={"--region": region},
            example_region="us-east",
            env=env, dry_run=dry_run, yes=yes, json_mode=json_, break_lock=break_lock,
            incident_start=incident_start, from_step=from_, only=only, severity=severity)
