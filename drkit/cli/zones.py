"""RB-DR-002's task: `invoke zone-failover`, what an operator types when an
availability zone fails (or to practise one).

The request is checked against the estate before a run starts (drkit.checks.zones:
the zone exists, is not the region's last zone in, is not shifted already or,
with --restore, was shifted; the database primary does not live there; a
practice run needs the zone healthy). A bad request exits 2 and changes nothing.
"""

from __future__ import annotations

import sys

from invoke import task

from drkit.checks.zones import MODES
from drkit.cli.common import maps_errors, probe_context, run_options, run_or_resume
from drkit.cli.runs import RUN_HELP, SEVERITY_HELP
from drkit.errors import ConfigError

ZONE_RUNBOOK = "RB-DR-002"


def _check_request(zone: str, restore: bool, mode: str):
    """check_env: the zone plan's refusals, as bad input, before anything runs."""
    def check(environment) -> None:
        from drkit.checks.estate import db_secret
        from drkit.checks.zones import plan_probe

        ctx = probe_context(environment)
        secret = db_secret(environment)
        plan = plan_probe(ctx, zone=zone, restore=restore, mode=mode, secret=secret)
        if plan["problems"]:
            raise ConfigError("zone-failover: " + "; ".join(plan["problems"]),
                              hint=f"{plan['hint']}; nothing was changed")
        print(f"zone-failover: {'bring back' if restore else 'shift away'} {zone} "
              f"(region {plan['region']}); app hosts leaving app.: {plan['names']}",
              file=sys.stderr)
    return check


@task(help={
    "zone": "the availability zone, e.g. us-east-1b (`drkit lab.status` and the environment's "
            "regions list them)",
    "restore": "bring a shifted zone back (once it is healthy) instead of shifting it away",
    "mode": "unplanned (default: the zone is failing) or planned (a practice run while the "
            "zone is healthy)",
    **RUN_HELP, **SEVERITY_HELP})
@maps_errors
def zone_failover(c, zone="", restore=False, mode="unplanned", incident_start="",
                  dry_run=False, yes=False, resume="", env="", json_=False, break_lock=False,
                  from_="", only="", severity=""):
    """RB-DR-002: shift an availability zone away (its app hosts out of DNS, its app
    capacity moved to the region's other zones by Terraform, the new hosts configured
    and in DNS), or bring it back with --restore."""
    check_env = None
    params: dict = {}
    if not resume:
        if not zone:
            raise ConfigError("zone-failover needs --zone",
                              hint="e.g. drkit zone-failover --zone us-east-1b")
        if mode not in MODES:
            raise ConfigError(f"--mode must be one of {', '.join(MODES)}, not {mode!r}",
                              hint="--mode planned for a practice run, else leave it out")
        if restore and mode == "planned":
            raise ConfigError("--mode applies to a shift, not to --restore",
                              hint="drop --mode: a restore needs the zone healthy anyway")
        params = {"zone": zone, "restore": restore, "mode": mode}
        check_env = _check_request(zone, restore, mode)
    run_or_resume(ZONE_RUNBOOK, params, task_name="zone-failover", resume=resume,
                  given={"--zone": zone, "--restore": restore, "--mode": mode != "unplanned"},
                  check_env=check_env,
                  **run_options(env, dry_run, yes, json_, break_lock, from_, only,
                                incident_start), severity=severity)
