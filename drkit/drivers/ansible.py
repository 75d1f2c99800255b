"""Run Ansible playbooks through ansible-runner and return a DriverResult.

ansible-runner streams one event per task and host (DESIGN.md: ~0.1 s over the
CLI); drkit turns each into a compact event for the live display and journal,
and gathers the run's stats, changed tasks and failures into the result. A failed
playbook is a result with ``ok=False``, never an exception.

Secrets: extra vars go to ansible through the runner's ``env/extravars`` file in
the private data dir (``-e @file``), never on the command line, and that file
(with ``env/envvars``, which may hold cloud credentials) is deleted after the
run, so run directories hold no secrets. Tasks marked ``no_log`` are already
censored by Ansible in every event.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import ansible_runner

from drkit.drivers.reaper import RUN_TOKEN_ENV, Guard
from drkit.drivers.result import DriverResult, last_lines
from drkit.fsutil import atomic_write_text
from drkit.journal import utc_now_iso
from drkit.redact import redact

#: Environment every playbook runs with: no prompts, no clutter, plain text.
BASE_ENVVARS: dict[str, str] = {
    "ANSIBLE_HOST_KEY_CHECKING": "False",
    "ANSIBLE_RETRY_FILES_ENABLED": "False",
    "ANSIBLE_NOCOLOR": "1",
    "ANSIBLE_FORCE_COLOR": "0",
}

#: Set to 0 to run playbooks with Ansible's own linear strategy instead of Mitogen's.
MITOGEN_ENV = "DRKIT_ANSIBLE_MITOGEN"


def strategy_envvars(environ: Mapping[str, str]) -> dict[str, str]:
    """Mitogen's linear strategy, as drkit's ``drkit_mitogen_linear`` (it lists the
    installed collections once per playbook, not once per task:
    ansible_plugins/strategy), when ansible_mitogen is installed and not turned off
    with DRKIT_ANSIBLE_MITOGEN=0; else nothing (Ansible's default).

    Mitogen keeps one Python interpreter per host for the whole playbook and runs
    modules in it: a task costs ~0.07 s instead of ~0.45 s (a new interpreter that
    compiles module_utils from the AnsiballZ zip), measured on the lab
    (docs/internals.md, "Ansible speed"). It only changes how modules reach a host,
    not what they do; plays, check mode, no_log and callbacks are Ansible's own.
    """
    if environ.get(MITOGEN_ENV, "1") == "0":
        return {}
    try:
        import ansible_mitogen
    except ImportError:
        return {}
    plugins = [Path(__file__).parent / "ansible_plugins" / "strategy",
               Path(ansible_mitogen.__file__).parent / "plugins" / "strategy"]
    return {"ANSIBLE_STRATEGY_PLUGINS": os.pathsep.join(map(str, plugins)),
            "ANSIBLE_STRATEGY": "drkit_mitogen_linear",
            # Ansible warns on every run that third-party strategies are deprecated.
            "ANSIBLE_DEPRECATION_WARNINGS": "False"}

#: set_stats key under which a play hands data to later runbook steps.
OUTPUTS_KEY = "drkit_outputs"

# Files ansible-runner writes into <private_data_dir>/env from its kwargs. It only
# writes them when absent and otherwise reuses them, so stale ones from an earlier
# run would silently win: they are removed before and after every run (after a
# killed run, by its guard).
_ENV_FILES = ("extravars", "envvars", "cmdline", "passwords", "settings", "ssh_key")

_STAT_KEYS = {"ok": "ok", "changed": "changed", "failures": "failed", "dark": "unreachable",
              "skipped": "skipped", "rescued": "rescued", "ignored": "ignored"}


def _scrub_commands(private_data_dir: Path) -> None:
    """Mask secret-looking variables (PGPASSWORD, AWS_SECRET_ACCESS_KEY, ...) in the
    environment ansible-runner records in each run's ``artifacts/<id>/command``: it
    copies drkit's whole environment there (found by the lab's secret scan: a
    PGPASSWORD in the environment of a lab reset)."""
    for command in private_data_dir.glob("artifacts/*/command"):
        try:
            data = json.loads(command.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and isinstance(data.get("env"), dict):
            scrubbed = {**data, "env": redact(data["env"])}
            if scrubbed != data:
                atomic_write_text(command, json.dumps(scrubbed))


def runner_kwargs(
    *,
    playbook: str,
    inventory: str,
    private_data_dir: str,
    limit: str | None = None,
    extra_vars: Mapping[str, Any] | None = None,
    tags: Iterable[str] = (),
    check: bool = False,
    diff: bool = False,
    verbosity: int = 0,
    envvars: Mapping[str, str] | None = None,
    timeout: float | None = None,
) -> dict[str, Any]:
    """Keyword arguments for ``ansible_runner.run`` (pure; no file is touched).

    ``envvars`` are added to (and may override) BASE_ENVVARS. ``timeout`` is in
    seconds (the runner counts whole seconds; at least 1); the runner then kills
    the playbook and reports status "timeout".
    """
    flags: list[str] = []
    if check:
        flags.append("--check")
    if diff:
        flags.append("--diff")
    tags = list(tags)
    if tags:
        flags += ["--tags", ",".join(tags)]
    kwargs: dict[str, Any] = {
        "private_data_dir": private_data_dir,
        "playbook": playbook,
        "inventory": inventory,
        "quiet": True,
        "json_mode": False,
        "envvars": {**BASE_ENVVARS, **strategy_envvars(os.environ), **dict(envvars or {})},
    }
    if flags:
        kwargs["cmdline"] = shlex.join(flags)
    if limit:
        kwargs["limit"] = limit
    if extra_vars:
        kwargs["extravars"] = dict(extra_vars)
    if verbosity:
        kwargs["verbosity"] = verbosity
    if timeout is not None:
        kwargs["timeout"] = max(1, round(timeout))
    return kwargs


def job_events(private_data_dir: Path) -> list[dict[str, Any]]:
    """Every event ansible-runner recorded under ``private_data_dir`` (each attempt
    of a step has its own ``artifacts/<id>/``), in no particular order. It writes
    each as it happens: one being written is skipped, not an error."""
    events = []
    for path in Path(private_data_dir).glob("artifacts/*/job_events/*.json"):
        try:
            events.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue
    return events


def _compact(event: Mapping[str, Any]) -> dict[str, Any] | None:
    """The compact form of a runner event, or None for events drkit ignores."""
    kind = event.get("event")
    data = event.get("event_data") or {}
    res = data.get("res") or {}
    base = {"host": data.get("host"), "task": data.get("task"), "msg": None}
    if kind == "playbook_on_play_start":
        return {**base, "type": "play_start", "task": None, "msg": data.get("play")}
    if kind == "playbook_on_task_start":
        return {**base, "type": "task_start"}
    if kind == "runner_on_ok":
        return {**base, "type": "task_changed" if res.get("changed") else "task_ok",
                "msg": _message(res) if res.get("changed") else None}
    if kind == "runner_on_failed":
        kind_name = "task_failed" if not data.get("ignore_errors") else "task_ok"
        return {**base, "type": kind_name, "msg": _message(res)}
    if kind == "runner_on_skipped":
        return {**base, "type": "task_skipped"}
    if kind == "runner_on_unreachable":
        return {**base, "type": "unreachable", "msg": _message(res)}
    return None


def _message(res: Mapping[str, Any]) -> str | None:
    """The most useful one-line explanation in a task result.

    A failed command says only "non-zero return code"; its stderr says why.
    """
    if res.get("censored"):
        return str(res["censored"])
    parts = [str(res["msg"]).strip()] if res.get("msg") else []
    failed_command = res.get("rc") not in (None, 0)
    if failed_command:
        parts = [f"{parts[0] if parts else 'failed'} (rc={res['rc']})"]
    if failed_command or not parts:
        for key in ("stderr", "stdout", "reason"):
            if res.get(key):
                parts.append(str(res[key]).strip())
                break
    text = ": ".join(p for p in parts if p)
    if not text:
        return None
    return text if len(text) <= 2000 else text[:2000] + "..."


def _clean_env_files(private_data_dir: Path) -> None:
    for name in _ENV_FILES:
        with contextlib.suppress(FileNotFoundError):
            (private_data_dir / "env" / name).unlink()


def run_playbook(
    playbook: Path,
    *,
    inventory: Path | str,
    private_data_dir: Path,
    limit: str | None = None,
    extra_vars: Mapping[str, Any] | None = None,
    tags: Iterable[str] = (),
    check: bool = False,
    diff: bool = False,
    env: Mapping[str, str] | None = None,
    on_event: Callable[[dict], None] | None = None,
    timeout: float | None = None,
    verbosity: int = 0,
) -> DriverResult:
    """Run ``playbook`` with ansible-runner; artifacts stay under ``private_data_dir``.

    ``outputs``: ``{"stats": {host: {ok, changed, failed, unreachable, skipped,
    rescued, ignored}}, "facts": {host: {...}}, "plays": [{name, started_at,
    duration_s}]}`` where ``facts`` holds whatever a task published with
    ``ansible.builtin.set_stats: {data: {drkit_outputs: {...}}}`` and ``plays``
    says when each play started and how long it ran (the report's sub-rows).
    ``changes``: ``[{host, task, diff?}]`` per changed task (in check mode: what
    would change). ``tail``: the failed tasks' messages, then the last output lines.
    ``inventory`` is a path or an inventory source string (e.g. ``"localhost,"``).
    """
    private_data_dir = Path(private_data_dir).resolve()
    private_data_dir.mkdir(parents=True, exist_ok=True)
    playbook = Path(playbook).resolve()
    inv = str(Path(inventory).resolve()) if isinstance(inventory, Path) else inventory
    kwargs = runner_kwargs(
        playbook=str(playbook), inventory=inv, private_data_dir=str(private_data_dir),
        limit=limit, extra_vars=extra_vars, tags=tags, check=check, diff=diff,
        verbosity=verbosity, envvars=env, timeout=timeout,
    )

    stats: dict[str, dict[str, int]] = {}
    facts: dict[str, dict[str, Any]] = {}
    changes: list[dict[str, Any]] = []
    failures: list[str] = []
    play_starts: list[tuple[str, str]] = []  # (play, created)
    last_event_at: str | None = None

    def handle(event: dict) -> bool:
        nonlocal last_event_at
        kind = event.get("event")
        data = event.get("event_data") or {}
        res = data.get("res") or {}
        if event.get("created"):
            last_event_at = event["created"]
            if kind == "playbook_on_play_start":
                play_starts.append((data.get("play") or "", event["created"]))
        if kind == "runner_on_ok":
            published = (res.get("ansible_stats") or {}).get("data") or {}
            if isinstance(published.get(OUTPUTS_KEY), Mapping):
                facts.setdefault(data.get("host"), {}).update(published[OUTPUTS_KEY])
            if res.get("changed"):
                change = {"host": data.get("host"), "task": data.get("task")}
                if res.get("diff"):
                    change["diff"] = res["diff"]
                changes.append(change)
        elif kind in ("runner_on_failed", "runner_on_unreachable") and not data.get(
                "ignore_errors"):
            what = "unreachable" if kind == "runner_on_unreachable" else "failed"
            failures.append(f"{what}: {data.get('host')} | {data.get('task')} | "
                            f"{_message(res) or ''}".rstrip(" |"))
        elif kind == "playbook_on_stats":
            for key, name in _STAT_KEYS.items():
                for host, count in (data.get(key) or {}).items():
                    stats.setdefault(host, {n: 0 for n in _STAT_KEYS.values()})[name] = count
        compact = _compact(event)
        if compact is not None and on_event is not None:
            on_event(compact)
        return True  # keep the event in the runner's artifacts

    _clean_env_files(private_data_dir)
    # Every process of this run inherits the token; the guard kills whatever still
    # carries it when the run ends, times out, or drkit dies (drivers/reaper.py).
    token = uuid.uuid4().hex
    kwargs["envvars"][RUN_TOKEN_ENV] = token
    try:
        with Guard(token, remove=[private_data_dir / "env" / name for name in _ENV_FILES]):
            runner = ansible_runner.run(event_handler=handle, **kwargs)
        status, rc = runner.status, runner.rc
        stdout_lines = _read_stdout(runner)
    except Exception as exc:  # a driver reports, the engine decides (STYLE.md)
        return DriverResult(ok=False, rc=-1, summary=f"playbook could not run: {exc}",
                            tail=[f"{type(exc).__name__}: {exc}"])
    finally:
        _clean_env_files(private_data_dir)
        _scrub_commands(private_data_dir)

    totals = {n: sum(h[n] for h in stats.values()) for n in ("ok", "changed", "failed",
                                                            "unreachable")}
    summary = (f"playbook: ok={totals['ok']} changed={totals['changed']} "
               f"failed={totals['failed']}")
    if totals["unreachable"]:
        summary += f" unreachable={totals['unreachable']}"
    if check:
        summary += " (check mode)"
    ok = status == "successful" and rc == 0
    if status == "timeout":
        summary = f"playbook: timed out after {timeout:g}s"
    elif not ok and not failures:
        # Ansible stopped before any task failed (syntax error, missing file).
        errors = [line for line in stdout_lines if line.startswith(("[ERROR]", "ERROR!"))]
        summary = f"playbook {status} (rc={rc})"
        if errors:
            summary += ": " + errors[0].split(":", 1)[-1].strip()
    tail = [] if ok else failures[-10:] + last_lines(stdout_lines, 20 - len(failures[-10:]))
    artifact_dir = Path(runner.config.artifact_dir)
    log_path = artifact_dir / "stdout"
    return DriverResult(
        ok=ok, rc=rc if rc is not None else -1, summary=summary,
        outputs={"stats": stats, "facts": facts,
                 "plays": play_timings(play_starts, last_event_at)},
        changes=changes,
        log_path=log_path if log_path.exists() else artifact_dir, tail=tail,
    )


def play_timings(starts: list[tuple[str, str]], last_event_at: str | None = None
                 ) -> list[dict[str, Any]]:
    """Each play's name, start (journal format) and duration, from the
    ``(play, created)`` of each play's start event: a play ends where the next
    one starts, the last at the playbook's last event (the stats, or whatever came
    last when it was killed)."""
    times = [datetime.fromisoformat(created) for _, created in starts]
    last = datetime.fromisoformat(last_event_at) if last_event_at else None
    ends = [*times[1:], last]
    return [{"name": name, "started_at": utc_now_iso(at),
             "duration_s": round(((end or at) - at).total_seconds(), 3)}
            for (name, _), at, end in zip(starts, times, ends, strict=False)]


def _read_stdout(runner: Any) -> list[str]:
    """The run's stdout lines (ansible-runner opens the file; it is closed here)."""
    try:
        with runner.stdout as handle:
            return handle.read().splitlines()
    except (OSError, AttributeError, ValueError):
        return []
