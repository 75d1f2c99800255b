"""RB-DR-001's task: `invoke replace-node`, what an operator types when one host
is dead or sick.

The node is resolved before a run starts: ``--host`` names it, ``--auto`` finds
the unhealthy ones (drkit.checks.nodes: EC2 state, ssh, the service's health,
every node at once). App hosts and database replicas are replaced; a database
primary too where its region's in-region standby can take over (else it is a
region failover, and refused). A bad
request exits 2 and changes nothing; the run gets the chosen instance ids, so a
resumed run acts on the same nodes.
"""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor

from invoke import task

from drkit.cli.common import maps_errors, probe_context, run_options, run_or_resume
from drkit.cli.runs import RUN_HELP, SEVERITY_HELP
from drkit.errors import ConfigError

NODE_RUNBOOK = "RB-DR-001"


def _choose_nodes(params: dict, host: str, auto: bool, force: bool):
    """check_env: resolve --host / --auto against the estate into params["nodes"]."""
    def check(environment) -> None:
        from drkit.checks.estate import db_secret, topology_probe
        from drkit.checks.nodes import (
            estate_nodes,
            health_of,
            inventory_name,
            possible_primaries,
            primary_of,
            select,
            takeovers,
        )

        ctx = probe_context(environment)
        # The health checks (sockets only) beside the database probe: a dead node's
        # timeouts overlap instead of adding up.
        with ThreadPoolExecutor(max_workers=1) as pool:
            checked = pool.submit(health_of, estate_nodes(ctx))
            topo = topology_probe(ctx, db_secret(environment), timeout=2.0)
            nodes = checked.result()
        primaries = possible_primaries(nodes, primary_of(topo))
        chosen, problems, hint = select(nodes, host=host, auto=auto, force=force,
                                        primaries=primaries,
                                        takeovers=takeovers(topo, primaries))
        if problems:
            raise ConfigError("replace-node: " + "; ".join(problems),
                              hint=f"{hint}; nothing was changed")
        for node in chosen:
            why = ", ".join(node["problems"]) or "healthy (--force)"
            print(f"replace-node: {inventory_name(node)} ({node['ip']}, {node['zone']}): {why}",
                  file=sys.stderr)
        params["nodes"] = [n["id"] for n in chosen]
    return check


@task(help={
    "host": "the node to replace: instance id, private IP or inventory name "
            "(lab-us-east-app_i-0123...), as `drkit lab.status` or the EC2 console shows it",
    "auto": "find the unhealthy nodes (EC2 state, ssh, the service's own health check) "
            "and replace every one of them",
    "force": "replace --host even though it is healthy",
    **RUN_HELP, **SEVERITY_HELP})
@maps_errors
def replace_node(c, host="", auto=False, force=False, incident_start="", dry_run=False,
                 yes=False, resume="", env="", json_=False, break_lock=False, from_="",
                 only="", severity=""):
    """RB-DR-001: replace a failed app host, database replica or primary through its Auto
    Scaling group (out of DNS / out of the synchronous standbys first / its in-region
    standby promoted first), configure the replacement (app and secrets / a streaming
    replica), put it back and verify capacity."""
    check_env = None
    params: dict = {}
    if not resume:
        if bool(host) == bool(auto):
            raise ConfigError("replace-node needs exactly one of --host and --auto"
                              + (" (both were given)" if host else ""),
                              hint="e.g. drkit replace-node --host i-0123456789abcdef0, "
                                   "or drkit replace-node --auto")
        if force and auto:
            raise ConfigError("--force applies to --host only (--auto replaces unhealthy "
                              "nodes)", hint="drop --force, or name the node with --host")
        params = {"force": force}
        check_env = _choose_nodes(params, host, auto, force)
    run_or_resume(NODE_RUNBOOK, params, task_name="replace-node", resume=resume,
                  given={"--host": host, "--auto": auto, "--force": force},
                  check_env=check_env,
                  **run_options(env, dry_run, yes, json_, break_lock, from_, only,
                                incident_start), severity=severity)
