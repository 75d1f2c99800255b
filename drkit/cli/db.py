"""`invoke db-recovery --scenario ...`: the seeds' database recovery script as one
entry point, each scenario the runbook that does it (drkit.checks.db_recovery):

- primary-failure: the standby promoted: a dead primary's in-region standby
  (RB-DR-001, the dead node then replaced), else RB-DR-003 to the synchronous
  replica's region, or to --target-region;
- region-failure: the replica in --target-region promoted (RB-DR-003); with no
  replica answering there, the database restored onto that region's host from the
  backups (RB-DR-003 --source backup; needs --allow-data-loss);
- corruption: the whole database back to just before --backup-time (RB-DR-004's
  rewind, as `drkit recover-corruption --before T --strategy rewind`).

The choice is the run's first decision line (shown, journaled, in the report). A bad request,
or one the estate refutes (a primary that answers, without --force), exits 2 and
changes nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime

from invoke import task

from drkit.checks.db_recovery import (
    CORRUPTION_RUNBOOK,
    FAILOVER_RUNBOOK,
    NODE_RUNBOOK,
    SCENARIOS,
    decide_failover,
)
from drkit.cli.common import (
    Choice,
    maps_errors,
    parse_time,
    probe_context,
    require_choice,
    resume_one_of,
    run_options,
    run_or_resume,
)
from drkit.cli.runs import RUN_HELP, SEVERITY_HELP
from drkit.errors import ConfigError


def _decide(params: dict, scenario: str, target_region: str, force: bool,
            allow_data_loss: bool):
    """check_env: the failover scenarios against the live topology, into params."""
    def check(environment) -> Choice:
        from drkit.checks.estate import db_secret, topology_probe

        if target_region:
            environment.region(target_region)  # an unknown region: exit 2, its list
        secret = db_secret(environment)
        topo = topology_probe(probe_context(environment), secret, prefer_region=target_region)
        sync = (environment.settings.get("postgres") or {}).get("synchronous_regions") or []
        decision = decide_failover(topo, scenario=scenario, target_region=target_region,
                                   force=force, allow_data_loss=allow_data_loss,
                                   synchronous_regions=list(sync))
        params.update(decision.params)
        return Choice(decision.runbook, _said(decision.line))
    return check


def _corruption(backup_time: str):
    """RB-DR-004's rewind parameters and its check against the estate."""
    from drkit.checks.corruption import parse_request
    from drkit.cli.corruption import check_against_estate

    when = parse_time(backup_time, "--backup-time")  # its own flag's name in any error
    target = parse_request(before=when.isoformat(), before_xid="", before_lsn="", tables=[],
                           strategy="rewind", now=datetime.now(UTC))
    params = {"target_kind": target.kind, "target": target.value, "tables": [],
              "strategy": "rewind"}
    inner = check_against_estate(target, [])

    def check(environment) -> str:
        inner(environment)
        return _said(f"corruption: the whole database back to just before {target.value} "
                     f"({CORRUPTION_RUNBOOK} rewind, as drkit recover-corruption --before "
                     f"{backup_time} --strategy rewind)")
    return params, check


def _said(line: str) -> str:
    """A decision line, for the run to show first and journal (its report lists it)."""
    return f"db-recovery decided: {line}"


@task(help={
    "scenario": "primary-failure (promote the standby: the dead primary's in-region "
                "standby, else another region's), region-failure (promote the "
                "replica in --target-region, else restore it there from the backups) or "
                "corruption (the database back to just before --backup-time)",
    "target-region": "the region to recover into, e.g. eu-west (region-failure: required; "
                     "primary-failure: default the dead primary's own region when its "
                     "in-region standby answers, else the synchronous replica's region)",
    "backup-time": "corruption: recover to just before this time (ISO 8601, UTC or with "
                   "its offset)",
    "force": "move a primary that still answers (a planned, zero-loss switchover)",
    "allow-data-loss": "promote an asynchronous replica although it may lag beyond the "
                       "RPO target, or restore from the backups (what was not archived is "
                       "lost); an approval shows the estimated loss",
    **RUN_HELP, **SEVERITY_HELP})
@maps_errors
def db_recovery(c, scenario="", target_region="", backup_time="", force=False,
                allow_data_loss=False, incident_start="", dry_run=False, yes=False, resume="",
                env="", json_=False, break_lock=False, from_="", only="", severity=""):
    """The seeds' database recovery: --scenario primary-failure promotes a dead
    primary's in-region standby (RB-DR-001) or another region's replica (RB-DR-003),
    region-failure promotes the replica in --target-region (RB-DR-003), corruption
    rewinds the database to just before --backup-time (RB-DR-004); the choice is the
    run's first decision line."""
    options = {**run_options(env, dry_run, yes, json_, break_lock, from_, only, incident_start),
               "severity": severity}
    given = {"--scenario": scenario, "--target-region": target_region,
             "--backup-time": backup_time, "--force": force,
             "--allow-data-loss": allow_data_loss}
    if resume:
        resume_one_of((FAILOVER_RUNBOOK, NODE_RUNBOOK, CORRUPTION_RUNBOOK), resume,
                      task_name="db-recovery",
                      given=given, **options)
        return
    require_choice(scenario, SCENARIOS, "--scenario", task="db-recovery",
                   what="recovery scenario")
    if scenario == "corruption":
        for flag, value in (("--target-region", target_region), ("--force", force),
                            ("--allow-data-loss", allow_data_loss)):
            if value:
                raise ConfigError(f"{flag} does not apply to --scenario corruption (the "
                                  "database is rewound where it is)", hint=f"drop {flag}")
        if not backup_time:
            raise ConfigError("--scenario corruption needs --backup-time (the moment to go "
                              "back to just before)",
                              hint="e.g. --backup-time 2026-12-04T03:10:00Z; for one table or "
                                   "an exact transaction: drkit recover-corruption")
        params, check = _corruption(backup_time)
        run_or_resume(CORRUPTION_RUNBOOK, params, task_name="db-recovery", resume="",
                      given={}, check_env=check, **options)
        return
    if backup_time:
        raise ConfigError(f"--backup-time applies to --scenario corruption; {scenario} "
                          "promotes a replica, which restores no backup",
                          hint="drop --backup-time")
    if scenario == "region-failure" and not target_region:
        raise ConfigError("--scenario region-failure needs --target-region (the region to "
                          "recover into)", hint="e.g. --target-region eu-west")
    params: dict = {}
    run_or_resume(FAILOVER_RUNBOOK, params, task_name="db-recovery", resume="", given={},
                  check_env=_decide(params, scenario, target_region, force, allow_data_loss),
                  **options)
