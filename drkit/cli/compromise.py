"""RB-DR-005: `invoke key-compromise` (revoke now, rotate everything related) and
`invoke rotate-keys` (the same steps, planned: no session ended, no client error).
"""

from __future__ import annotations

import os
import sys

from invoke import task

from drkit.cli.common import maps_errors, probe_context, run_options, run_or_resume
from drkit.cli.runs import RUN_HELP
from drkit.errors import ConfigError

RUNBOOK = "RB-DR-005"

KEY_HELP = {
    "key": "the keys to rotate, comma-separated (names from drkit.keys, e.g. db-credentials)",
    "all": "every key drkit can rotate (asks for approval; --yes gives it)",
    "reason": "why (the status page and the report say it)",
    "allow-partial": "rotate in the regions whose Secrets Manager answers (asks for approval)",
    "canary": "a canary's output directory: its failed writes during the run are reported",
}
ISOLATE_HELP = {
    "isolate": "a compromised app host to cut off (repeatable; instance id, IP or inventory "
               "name): its volumes snapshotted for forensics, then moved into its region's "
               "quarantine security group (ssh from the bastion only, nothing out), out of app.",
}


def _keys(key: str, everything: bool, resume: str) -> list[str]:
    names = [k.strip() for k in key.split(",") if k.strip()]
    if resume:
        return names
    if everything and names:
        raise ConfigError(f"--key {key} and --all together", hint="give one of them")
    if not everything and not names:
        raise ConfigError("which key? give --key NAME[,NAME] or --all",
                          hint="e.g. --key db-credentials; `drkit keys.list` shows the keys")
    return names


def _check_keys(names: list[str], everything: bool, isolate: list[str], params: dict):
    """check_env: the keys against the environment; each --isolate host resolved into
    params["isolate"] (instance ids), an app host of the estate."""
    def check(environment) -> None:
        from drkit.keys import rotation

        try:
            rotation.select(environment.settings, names, everything)
        except ValueError as exc:
            raise ConfigError(f"--key: {exc}", hint="nothing was changed") from None
        if isolate:
            params["isolate"] = _isolated_ids(environment, isolate)
    return check


def _isolated_ids(environment, hosts: list[str]) -> list[str]:
    from drkit.checks.nodes import estate_nodes, find, inventory_name

    if not (environment.settings.get("quarantine") or {}).get("bastion_cidrs"):
        raise ConfigError("--isolate needs drkit.quarantine.bastion_cidrs in the environment's "
                          "settings (the networks the bastion reaches hosts from)",
                          hint="add it to inventory/<env>/group_vars/all/drkit.yml; "
                               "nothing was changed")
    ctx = probe_context(environment)
    live = [n for n in estate_nodes(ctx) if n["state"] == "running"]
    ids = []
    for host in hosts:
        matches = find(live, host)
        listing = ", ".join(f"{inventory_name(n)} ({n['ip']})" for n in live
                            if n.get("role") == "app")
        if len(matches) != 1:
            raise ConfigError(f"--isolate {host}: {'no' if not matches else 'more than one'} "
                              "running host matches", hint=f"app hosts: {listing}; "
                                                           "nothing was changed")
        if matches[0].get("role") != "app":
            raise ConfigError(f"--isolate {host}: a {matches[0].get('role')} node; isolating a "
                              "database node stops the service or its replication",
                              hint="fail over or replace-node it first, then isolate the old "
                                   "node; nothing was changed")
        ids.append(matches[0]["id"])
    return sorted(set(ids))


def _needs_yes(everything: bool, allow_partial: bool, yes: bool, dry_run: bool) -> None:
    """--all and --allow-partial are approved by a person: refused up front, with
    nothing changed, when there is no terminal to ask and no --yes."""
    if (everything or allow_partial) and not (yes or dry_run or sys.stdin.isatty()):
        flag = "--all" if everything else "--allow-partial"
        raise ConfigError(f"{flag} needs an approval and there is no terminal to ask",
                          hint=f"add --yes to approve {flag}; nothing was changed")


def _run(mode: str, task_name: str, key: str, all_: bool, reason: str, allow_partial: bool,
         canary: str, resume: str, isolate: list[str] | None = None, **flags) -> None:
    names = _keys(key, all_, resume)
    isolate = list(isolate or [])
    if not resume:
        _needs_yes(all_, allow_partial, flags["yes"], flags["dry_run"])
    params = {"keys": names, "all": all_, "mode": mode, "reason": reason,
              "allow_partial": allow_partial, "canary": os.path.abspath(canary) if canary else ""}
    given = {"--key": key, "--all": all_, "--reason": reason,
             "--allow-partial": allow_partial, "--canary": canary}
    if mode == "emergency":
        given["--isolate"] = isolate
    run_or_resume(RUNBOOK, params, task_name=task_name, resume=resume, given=given,
                  check_env=None if resume else _check_keys(names, all_, isolate, params),
                  **run_options(flags["env"], flags["dry_run"], flags["yes"], flags["json_"],
                                flags["break_lock"], flags["from_"], flags["only"],
                                flags["incident_start"]))


@task(name="key-compromise", iterable=["isolate"], help={**KEY_HELP, **ISOLATE_HELP, **RUN_HELP})
@maps_errors
def key_compromise(c, key="", all_=False, reason="", allow_partial=False, canary="",
                   isolate=None, incident_start="", dry_run=False, yes=False, resume="", env="",
                   json_=False, break_lock=False, from_="", only=""):
    """RB-DR-005: revoke the keys now (new database passwords, the old sessions ended,
    the old secret version unlabelled in every region), rotate every consumer, prove
    the old value refused everywhere; a new key backup. --isolate HOST cuts a compromised
    app host off first (forensic snapshots, quarantine security group, out of app.)."""
    _run("emergency", "key-compromise", key, all_, reason, allow_partial, canary, resume,
         isolate=isolate, incident_start=incident_start, dry_run=dry_run, yes=yes, env=env,
         json_=json_, break_lock=break_lock, from_=from_, only=only)


@task(name="rotate-keys", help={**KEY_HELP, **RUN_HELP})
@maps_errors
def rotate_keys(c, key="", all_=False, reason="", allow_partial=False, canary="",
                incident_start="", dry_run=False, yes=False, resume="", env="",
                json_=False, break_lock=False, from_="", only=""):
    """RB-DR-005 planned: the same rotation without the emergency revoke (no session
    ended, the old version kept as AWSPREVIOUS), so no client sees an error."""
    _run("planned", "rotate-keys", key, all_, reason, allow_partial, canary, resume,
         incident_start=incident_start, dry_run=dry_run, yes=yes, env=env, json_=json_,
         break_lock=break_lock, from_=from_, only=only)
