"""`invoke app-recovery --type ...`: the seeds' application recovery procedure as one
entry point, each type the runbook that does it:

- service-failure: RB-AP-001, the app restarted on the hosts whose service fails
  while the host is up (found before the run: drkit.checks.app);
- region-failover: RB-DR-003 to --target-region (what `drkit failover` runs);
- complete-rebuild: RB-DR-007 in --target-region (what `drkit rebuild` runs).

The choice is printed as a decision line. A bad request exits 2 and changes nothing.
"""

from __future__ import annotations

import sys

from invoke import task

from drkit.cli.common import (
    maps_errors,
    probe_context,
    require_choice,
    resume_one_of,
    run_options,
    run_or_resume,
)
from drkit.cli.runs import RUN_HELP, SEVERITY_HELP
from drkit.errors import ConfigError

SERVICE_RUNBOOK = "RB-AP-001"
FAILOVER_RUNBOOK = "RB-DR-003"
REBUILD_RUNBOOK = "RB-DR-007"
TYPES = ("service-failure", "region-failover", "complete-rebuild")


def _failing_hosts(params: dict):
    """check_env: the app hosts whose service fails while they are up, into params."""
    def check(environment) -> None:
        from drkit.checks.app import service_failures_probe

        ctx = probe_context(environment)
        found = service_failures_probe(ctx)
        down = ", ".join(f"{n['name']} ({n['ip']})" for n in found["hosts_down"])
        if not found["failing"]:
            if down:
                raise ConfigError(f"app-recovery: no app host is up with a failing service; "
                                  f"{down} is down itself (no ssh)",
                                  hint="a node failure: drkit replace-node --auto; "
                                       "nothing was changed")
            raise ConfigError("app-recovery: every app host answers /health: nothing to "
                              "restart", hint="nothing was changed")
        print(f"app-recovery: decision: restart the app on {found['names']} (RB-AP-001)"
              + (f"; {down} is down itself, left to drkit replace-node" if down else ""),
              file=sys.stderr)
        params["nodes"] = found["failing_ids"]
    return check


@task(help={
    "type": "service-failure (restart the app where it fails), region-failover (RB-DR-003 "
            "to --target-region) or complete-rebuild (RB-DR-007: rebuild --target-region from the "
            "backups)",
    "target-region": "region-failover and complete-rebuild: the region to move the service "
                     "to, e.g. eu-west",
    **RUN_HELP, **SEVERITY_HELP})
@maps_errors
def app_recovery(c, type_="", target_region="", incident_start="", dry_run=False, yes=False,
                 resume="", env="", json_=False, break_lock=False, from_="", only="",
                 severity=""):
    """The seeds' application recovery: --type service-failure restarts the app on the
    hosts whose service fails (RB-AP-001, replacing a host a restart does not bring
    back), --type region-failover is RB-DR-003 to --target-region, --type
    complete-rebuild is RB-DR-007 rebuilding --target-region from the backups."""
    options = {**run_options(env, dry_run, yes, json_, break_lock, from_, only, incident_start),
               "severity": severity}
    if resume:
        resume_one_of((SERVICE_RUNBOOK, FAILOVER_RUNBOOK, REBUILD_RUNBOOK), resume,
                      task_name="app-recovery",
                      given={"--type": type_, "--target-region": target_region}, **options)
        return
    require_choice(type_, TYPES, "--type", task="app-recovery", what="recovery type")
    if type_ in ("region-failover", "complete-rebuild"):
        if not target_region:
            raise ConfigError(f"--type {type_} needs --target-region",
                              hint=f"e.g. drkit app-recovery --type {type_} "
                                   "--target-region eu-west")
        runbook, params, how = ((FAILOVER_RUNBOOK, {"region": target_region, "mode": "planned",
                                                     "allow_data_loss": False},
                                 f"a region failover to {target_region} (RB-DR-003, as drkit "
                                 f"failover --region {target_region})")
                                if type_ == "region-failover" else
                                (REBUILD_RUNBOOK, {"region": target_region},
                                 f"a complete rebuild of {target_region} from the backups "
                                 f"(RB-DR-007, as drkit rebuild --region {target_region})"))

        def known_region(environment) -> None:
            environment.region(target_region)
            print(f"app-recovery: decision: {how}", file=sys.stderr)

        run_or_resume(runbook, params, task_name="app-recovery", resume="",
                      given={}, check_env=known_region, **options)
        return
    if target_region:
        raise ConfigError("--target-region applies to --type region-failover and "
                          "complete-rebuild only",
                          hint="drop --target-region")
    params: dict = {}
    run_or_resume(SERVICE_RUNBOOK, params, task_name="app-recovery", resume="", given={},
                  check_env=_failing_hosts(params), **options)
