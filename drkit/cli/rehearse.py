"""Tasks for rehearsals and what follows a run: `rehearse NAME`, `rehearse.install
TARGET`, `history`, `postmortem RUN_ID`.

The schedule is written by its own task, not `rehearse --install`: invoke has no
optional positional argument, so one task cannot take both NAME and no NAME."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from invoke import Collection, task

from drkit.cli.common import check_run_id, maps_errors, parse_params
from drkit.durations import format_duration
from drkit.env import load_environment
from drkit.errors import ConfigError
from drkit.history import history_path, read_history
from drkit.journal import find_run, read_events
from drkit.project import find_project
from drkit.rehearsals import load_settings
from drkit.runbook import load_runbook, resolve_runbook
from drkit.schedule import TARGETS
from drkit.schedule import install as install_schedule


@task(positional=["rehearsal"], iterable=["param"], default=True, help={
    "rehearsal": "a rehearsal of the environment's schedule (drkit.rehearsals.schedule), "
                 "a runbook id, or rebuild (RB-DR-007 in a scratch estate beside this one)",
    "param": "a runbook parameter as name=value (repeatable; overrides the schedule's)",
    "env": "environment: a name under inventory/ or a path (default: $DRKIT_ENV or lab)",
    "json": "print machine-readable JSON events instead of the live display",
    "keep": "rebuild only: keep the scratch estate afterwards (--cleanup destroys it)",
    "cleanup": "rebuild only: destroy whatever a rehearsal's scratch estate left, and stop"})
@maps_errors
def run(c, rehearsal, param=None, env="", json_=False, keep=False, cleanup=False):
    """Run a runbook unattended as a rehearsal, restore the baseline, record and compare
    the result: a failed step, a missed target or an RTO regression exits non-zero
    and notifies. `rehearse rebuild` rebuilds a region from the live backups in a
    scratch estate (its own name, Terraform state and DNS zone) and destroys it."""
    from drkit.errors import RehearsalFailed
    from drkit.rehearse import rehearse as run_rehearsal

    params = parse_params(param)
    project = find_project()
    environment = load_environment(project, env or None)
    say = (lambda line: print(line, file=sys.stderr)) if json_ else print
    if (keep or cleanup) and rehearsal != "rebuild":
        raise ConfigError("--keep and --cleanup apply to `rehearse rebuild` only",
                          hint="drop them")
    if rehearsal == "rebuild":
        from drkit import scratch

        if cleanup:
            if keep or params:
                raise ConfigError("--cleanup only destroys; it takes no --keep or --param",
                                  hint="drkit rehearse rebuild --cleanup")
            done = scratch.teardown(project, environment, say)
            if not done["ok"]:
                raise ConfigError(f"rehearse rebuild --cleanup: {done['detail']}",
                                  hint="run it again; nothing of the live estate was touched")
            say(f"rehearse rebuild --cleanup: {done['detail']}")
            return
        outcome = scratch.rehearse_rebuild(project, environment, params, keep=keep,
                                           json_mode=json_, say=say)
    else:
        outcome = run_rehearsal(project, environment, rehearsal, params, json_mode=json_,
                                say=say)
    rec = outcome.record
    if json_:  # one more event, the rehearsal's result, after the run's own
        print(json.dumps({"event": "rehearsal", **rec}, sort_keys=True))
    else:
        print(f"\nrehearsal {rec['rehearsal']} ({rec['runbook']}, run {rec['run_id']}): "
              f"{rec['verdict'].upper()}; RTO {_d(rec['rto_s'])} (target "
              f"{_d(rec['targets']['rto_s'])}), RPO {_d(rec['rpo_s'])}; baseline "
              f"{'restored' if rec['baseline']['ok'] else 'NOT restored'}")
        print(f"history: {history_path(project.state_dir, rec['env'])}")
    if outcome.regressions:
        code = outcome.failure.exit_code if outcome.failure else None
        lines = [r.text for r in outcome.regressions]
        raise RehearsalFailed(f"rehearsal {rec['rehearsal']} failed: " + "; ".join(lines),
                              **({"exit_code": code} if code else {}),
                              hint=f"see {outcome.run_dir}/report.md")


@task(positional=["target"], help={
    "target": f"the scheduler: {', '.join(TARGETS)}",
    "env": "environment whose drkit.rehearsals.schedule to write (default: $DRKIT_ENV or lab)",
    "out": "the directory to write into (default .drkit/schedule/<env>)"})
@maps_errors
def install(c, target, env="", out=""):
    """Write the environment's rehearsal schedule as systemd timer units, a crontab or a
    GitHub Actions workflow (daily, weekly, monthly, quarterly, yearly; UTC)."""
    if target not in TARGETS:
        raise ConfigError(f"{target!r}: not a scheduler",
                          hint=f"use one of: {', '.join(TARGETS)}")
    project = find_project()
    environment = load_environment(project, env or None)
    settings = load_settings(environment.settings)
    for i, entry in enumerate(settings.schedule):  # a timer for a missing runbook never works
        try:
            resolve_runbook(entry.runbook, project.runbooks_dir)
        except ConfigError:
            raise ConfigError(f"drkit.rehearsals.schedule[{i}].runbook: no runbook "
                              f"{entry.runbook!r}", hint="`drkit runbooks` lists them") from None
    env_ref = env or environment.path.name
    out_dir = (Path(out).resolve() if out
               else project.state_dir / "schedule" / environment.name)
    written = install_schedule(target, settings.schedule, env_name=environment.name,
                               env_ref=env_ref, project_root=project.root, out_dir=out_dir,
                               log_dir=project.state_dir / "schedule" / "logs")
    for path in written:
        print(path)
    print({"systemd": f"install: cp {out_dir}/*.service {out_dir}/*.timer /etc/systemd/system/ "
                      "&& systemctl daemon-reload && systemctl enable --now "
                      + " ".join(p.name for p in written if p.suffix == ".timer"),
           "cron": f"install: crontab {written[0]}  (replaces the user's crontab; or merge it)",
           "ci": f"install: copy {written[0]} to .github/workflows/ "
                 f"(a self-hosted runner labelled drkit-{environment.name} runs it)"}[target])


ns = Collection("rehearse", run, install)


def _d(seconds: float | None) -> str:
    return "-" if seconds is None else format_duration(seconds)


@task(help={"env": "environment (default: $DRKIT_ENV or lab)",
            "rehearsal": "only this rehearsal's results",
            "last": "how many results per rehearsal (default 10)"})
@maps_errors
def history(c, env="", rehearsal="", last="10"):
    """Rehearsal results over time: RTO and RPO against targets, verdict, regressions."""
    from drkit.cli.common import parse_positive

    count = parse_positive(last, "--last", kind=int, example="10")
    project = find_project()
    environment = load_environment(project, env or None)
    path = history_path(project.state_dir, environment.name)
    records = read_history(path, rehearsal=rehearsal or None)
    if not records:
        print(f"no rehearsals recorded on {environment.name}"
              + (f" for {rehearsal}" if rehearsal else "") + f" ({path})")
        return
    names = list(dict.fromkeys(r["rehearsal"] for r in records))
    for name in names:
        rows = [r for r in records if r["rehearsal"] == name][-count:]
        rtos = [r["rto_s"] for r in rows if r["rto_s"] is not None]
        print(f"{name}: {len(rows)} result(s)"
              + (f", RTO {_d(min(rtos))}..{_d(max(rtos))}" if rtos else ""))
        print(f"  {'RUN':<32} {'STATUS':<11} {'RTO':>8} {'TARGET':>8} {'RPO':>8}  "
              f"{'BASELINE':<8}  VERDICT")
        for r in rows:
            print(f"  {r['run_id'] or '-':<32} {r['status']:<11} {_d(r['rto_s']):>8} "
                  f"{_d(r['targets'].get('rto_s')):>8} {_d(r['rpo_s']):>8}  "
                  f"{'ok' if r['baseline'].get('ok') else 'FAILED':<8}  {r['verdict']}"
                  + _bar(r["rto_s"], max(rtos, default=0)))
            for text in r["regressions"]:
                print(f"      - {text}")


def _bar(rto: float | None, top: float) -> str:
    """A small bar of the RTO against the largest shown: the trend at a glance."""
    if rto is None or top <= 0:
        return ""
    return "  " + "#" * max(1, round(20 * rto / top))


@task(positional=["run_id"], help={
    "run_id": "the run to draft the post-incident record of (`drkit status` lists runs)",
    "force": "replace a postmortem.md that exists (it may hold edits)"})
@maps_errors
def postmortem(c, run_id, force=False):
    """Draft the post-incident record of a run from its journal (timeline, decisions,
    RTO/RPO against targets, what failed, action items), beside its reports."""
    from drkit import postmortem as pm

    project = find_project()
    run_dir = find_run(project.runs_dir, check_run_id(run_id))
    target = run_dir / pm.FILE_NAME
    if target.exists() and not force:
        raise ConfigError(f"{target} exists (it may hold edits)",
                          hint="pass --force to draft it again over it")
    first = read_events(run_dir / "journal.jsonl")[0]
    runbook = _runbook_of(first, project)
    targets = {"rto_s": getattr(runbook, "rto_s", 0.0), "rpo_s": getattr(runbook, "rpo_s", 0.0)}
    try:
        override = load_environment(project, first["env"]).targets_for(first["runbook"])
    except ConfigError:  # the run's environment is gone or broken: the runbook's targets
        override = {}
    targets["rto_s"] = override.get("rto", targets["rto_s"])
    targets["rpo_s"] = override.get("rpo", targets["rpo_s"])
    path, text = pm.write(run_dir, runbook=runbook, targets=targets)
    print(text)
    print(f"written: {path}")


def _runbook_of(first: dict, project):
    """The run's runbook: its file if still there, else the project's of that id."""
    path = Path(first["runbook_path"])
    try:
        return load_runbook(path if path.is_file()
                            else resolve_runbook(first["runbook"], project.runbooks_dir))
    except ConfigError:
        return None
