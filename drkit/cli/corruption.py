"""RB-DR-004's task: `invoke recover-corruption`, what an operator types when data
was damaged (a dropped table, a bad UPDATE) and must go back to just before it.

The request is checked against the primary and the repositories before a run
starts (drkit.checks.corruption): a bad one exits 2 and changes nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime

from invoke import task

from drkit.checks.corruption import STRATEGIES, parse_request
from drkit.cli.common import maps_errors, probe_context, run_options, run_or_resume
from drkit.cli.runs import RUN_HELP, SEVERITY_HELP
from drkit.errors import ConfigError

CORRUPTION_RUNBOOK = "RB-DR-004"


def check_against_estate(target, tables):
    """check_env: the request against the live primary and the repositories (also
    db-recovery --scenario corruption's)."""
    def check(environment) -> None:
        from drkit.checks.corruption import check_request
        from drkit.checks.estate import db_secret

        ctx = probe_context(environment)
        secret = db_secret(environment)
        result = check_request(ctx, secret, target, tables)
        if result["problems"]:
            raise ConfigError("recover-corruption: the request does not fit the estate",
                              problems=result["problems"], hint="nothing was changed")
    return check


@task(iterable=["table"], help={
    "before": "recover to just before this time (ISO 8601, UTC or with its offset)",
    "before-xid": "recover to just before this transaction committed (the damaging one, "
                  "excluded): the surest point; `lab.chaos corrupt` and pg_waldump print it",
    "before-lsn": "recover to just before this WAL position (e.g. 0/3000060)",
    "table": "a damaged table (repeatable); with --strategy tables, only these are restored",
    "strategy": "tables (default with --table: restore a copy beside the primary and copy "
                "the named tables back, every other table keeps its writes) or rewind (the "
                "whole database back to the point; the replicas rebuilt)",
    **RUN_HELP, **SEVERITY_HELP})
@maps_errors
def recover_corruption(c, before="", before_xid="", before_lsn="", table=None, strategy="",
                       incident_start="", dry_run=False, yes=False, resume="", env="",
                       json_=False, break_lock=False, from_="", only="", severity=""):
    """RB-DR-004: stop writes, find the recovery point in the WAL, estimate the loss,
    then recover to just before the damage (tables or the whole database), verify,
    reopen writes; the damaged data is kept for forensics."""
    tables = list(table or [])
    given = {"--before": before, "--before-xid": before_xid, "--before-lsn": before_lsn,
             "--table": tables, "--strategy": strategy}
    check_env = None
    params: dict = {}
    if not resume:
        chosen = strategy or ("tables" if tables else "rewind")
        target = parse_request(before=before, before_xid=before_xid, before_lsn=before_lsn,
                               tables=tables, strategy=chosen, now=datetime.now(UTC))
        params = {"target_kind": target.kind, "target": target.value, "tables": tables,
                  "strategy": chosen}
        check_env = check_against_estate(target, tables)
    run_or_resume(CORRUPTION_RUNBOOK, params, task_name="recover-corruption", resume=resume,
                  given=given, check_env=check_env,
                  **run_options(env, dry_run, yes, json_, break_lock, from_, only,
                                incident_start), severity=severity)


__all__ = ["STRATEGIES", "recover_corruption"]
