"""Tasks that run, list, show and report on runbooks."""

from __future__ import annotations

from invoke import task

from drkit.cli.common import check_run_id, maps_errors, parse_params, parse_positive, run_runbook
from drkit.durations import format_duration
from drkit.env import load_environment
from drkit.errors import ConfigError
from drkit.journal import RunState, find_run, list_runs, read_events
from drkit.lock import make_lock
from drkit.project import find_project
from drkit.report import refused_by_preflight, write_reports
from drkit.runbook import load_runbook, load_runbooks, resolve_runbook, to_markdown

RUN_HELP = {
    "env": "environment: a name under inventory/ or a path (default: $DRKIT_ENV or lab)",
    "dry-run": "change nothing: plan terraform, check-mode ansible, run checks, show the rest",
    "yes": "pass approval gates without asking (needed when there is no terminal)",
    "resume": "continue run RUN_ID: skip completed steps, re-run the interrupted one",
    "from": "start at this step id (earlier steps are skipped)",
    "only": "run only this step id",
    "break-lock": "break a stale lock whose holder process is gone",
    "json": "print machine-readable JSON events instead of the live display",
    "incident-start": "when the outage began (ISO time); RTO is measured from it",
}


RUN_ONLY = {k: v for k, v in RUN_HELP.items() if k != "resume"}
#: For the tasks that run an incident runbook (run, failover, failback).
SEVERITY_HELP = {"severity": "SEV1..SEV4 (or SEV-1, 1) instead of the runbook's own: decides "
                             "which channels are notified and how often (drkit.severities)"}


@task(positional=["runbook"], iterable=["param"], help={
    "runbook": "runbook id (RB-DR-003) or path to a runbook file",
    "param": "a parameter as key=value (repeatable)", **RUN_ONLY, **SEVERITY_HELP})
@maps_errors
def run(c, runbook, param=None, env="", dry_run=False, yes=False, from_="", only="",
        break_lock=False, json_=False, incident_start="", severity=""):
    """Run a runbook on an environment (`drkit runbooks` lists them)."""
    run_runbook(runbook, parse_params(param), env=env, dry_run=dry_run, yes=yes,
                from_step=from_, only=only, break_lock=break_lock, json_mode=json_,
                incident_start=incident_start, severity=severity)


@task(positional=["run_id"], help={
    "run_id": "the run to continue (`drkit status` lists recent runs)",
    **{k: RUN_HELP[k] for k in ("env", "yes", "from", "only", "break-lock", "json")}})
@maps_errors
def resume(c, run_id, env="", yes=False, from_="", only="", break_lock=False, json_=False):
    """Continue a run from its journal: skip completed steps, re-run the interrupted one."""
    run_runbook("", {}, env=env, yes=yes, resume=run_id, from_step=from_, only=only,
                break_lock=break_lock, json_mode=json_)


@task
@maps_errors
def runbooks(c):
    """List the project's runbooks with their severity and RTO/RPO targets."""
    project = find_project()
    rows = load_runbooks(project.runbooks_dir)
    width = max((len(r.id) for r in rows), default=10)
    print(f"{'ID':<{width}}  SEV   RTO      RPO      TITLE")
    for r in rows:
        print(f"{r.id:<{width}}  {r.severity:<5} {format_duration(r.rto_s):<8} "
              f"{format_duration(r.rpo_s):<8} {r.title}")


@task(positional=["runbook"], help={"runbook": "runbook id (RB-DR-003) or path"})
@maps_errors
def show(c, runbook):
    """Print a runbook as the Markdown an operator reads."""
    project = find_project()
    print(to_markdown(load_runbook(resolve_runbook(runbook, project.runbooks_dir))))


@task(help={"env": "environment to validate too (default: $DRKIT_ENV or lab)"})
@maps_errors
def validate(c, env=""):
    """Validate every runbook and the environment; report all problems at once."""
    project = find_project()
    books = load_runbooks(project.runbooks_dir)
    environment = load_environment(project, env or None)
    print(f"{len(books)} runbook(s) valid; environment {environment.name} valid")


@task(help={"env": "environment (default: $DRKIT_ENV or lab)",
            "limit": "how many recent runs to list (default 10)"})
@maps_errors
def status(c, env="", limit="10"):
    """Who holds the environment's lock, and the latest runs."""
    count = parse_positive(limit, "--limit", kind=int, example="10")
    project = find_project()
    environment = load_environment(project, env or None)
    lock = make_lock(environment.settings.get("lock") or {"backend": "file"},
                     env_name=environment.name, state_dir=project.state_dir,
                     boto3_session_factory=environment.boto3_session,
                     endpoint_url=(environment.settings.get("aws") or {}).get("endpoint_url"))
    holder = lock.read()
    print(f"lock {environment.name}: " + (f"held by {holder.describe()}" if holder else "free"))
    for run_id in list_runs(project.runs_dir)[-count:]:
        try:
            events = read_events(project.runs_dir / run_id / "journal.jsonl")
            state = RunState.from_events(events)
        except ConfigError as exc:
            print(f"  {run_id}  unreadable: {exc.message}")
            continue
        where = (" (refused by preflight)" if refused_by_preflight(events)
                 else f" at {state.interrupted_step}" if state.interrupted_step
                 else f" at {state.failed_step}" if state.failed_step else "")
        print(f"  {run_id}  {state.env:<8} {state.status}{where}"
              + (" (dry run)" if state.dry_run else ""))


@task(positional=["run_id"], help={"run_id": "the run whose reports to rebuild"})
@maps_errors
def report(c, run_id):
    """Rebuild a run's reports from its journal and print where they are."""
    project = find_project()
    run_dir = find_run(project.runs_dir, check_run_id(run_id))
    first = read_events(run_dir / "journal.jsonl")[0]
    runbook = load_runbook(__import__("pathlib").Path(first["runbook_path"]))
    environment = load_environment(project, first["env"])
    override = environment.targets_for(runbook.id)
    targets = {"rto_s": override.get("rto", runbook.rto_s),
               "rpo_s": override.get("rpo", runbook.rpo_s)}
    paths = write_reports(run_dir, runbook=runbook, targets=targets)
    for kind, path in paths.items():
        print(f"{kind}: {path}")
