"""Drive the Terraform CLI with machine-readable (``-json``) output.

python-terraform is broken on Terraform 1.x (DESIGN.md), and the CLI's JSON UI
is a stable, documented stream of events, so drkit runs ``terraform`` itself:

- argument lists are built by the pure ``*_args`` functions below (tested as
  tables of kwargs -> argv);
- :class:`Terraform` runs them with ``-chdir=<module>`` and a private
  ``TF_DATA_DIR``, streams every JSON message to ``<log_dir>/<command>.jsonl``
  and to an ``on_event`` callback, and returns a :class:`DriverResult`. A failed
  command is a result with ``ok=False``, never an exception.

Secrets: variable values never appear in argv (visible in ``ps`` and journaled
``argv``). They are written to a 0600 ``*.tfvars.json`` inside the data dir for
the duration of the plan and deleted afterwards. Note that Terraform itself stores
variable values in a saved plan file: treat the plan file as secret.
"""

from __future__ import annotations

import contextlib
import getpass
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from drkit.drivers.result import DriverResult, last_lines
from drkit.fsutil import atomic_write_json, atomic_write_text
from drkit.procinfo import start_time, still_running

LOCK_TIMEOUT = "60s"

#: The JSON UI message types forwarded to ``on_event``; the rest go to the log only.
FORWARDED_TYPES = frozenset({
    "planned_change", "apply_start", "apply_progress", "apply_complete",
    "apply_errored", "change_summary", "diagnostic", "outputs",
})

#: Message types whose text helps an operator understand a failure.
_TAIL_TYPES = frozenset({"provision_progress", "provision_errored", "apply_errored"})

SENSITIVE = "<sensitive>"

#: File in the data dir naming the terraform process running on it (pid, start).
RUNNING_FILE = "drkit-running.json"

#: Seconds between looks at a terraform left running by an interrupted run.
_SURVIVOR_POLL_S = 0.5

#: File in the data dir naming the inputs of its last successful init (a hash).
INIT_STAMP = "drkit-init.sha256"

#: Phrases of Terraform errors that mean the data dir needs ``terraform init``.
_INIT_REQUIRED = ("terraform init", "Backend initialization required",
                  "Module not installed", "Inconsistent dependency lock file",
                  "Missing required provider", "Required plugins are not installed")

_ANSI = re.compile(r"\x1b\[[0-9;]*m")

#: The lock info in Terraform's "Error acquiring the state lock" diagnostic.
_LOCK_FIELD = re.compile(r"^\s*(ID|Who|Created):\s+(.+?)\s*$", re.MULTILINE)

# Seconds between SIGTERM (terraform stops gracefully and releases its state
# lock) and SIGKILL when a call times out.
_KILL_GRACE_S = 10.0


# --- pure argv builders ---------------------------------------------------------


def init_args(
    *,
    backend_config: Mapping[str, Any] | None = None,
    backend_config_file: str | None = None,
    reconfigure: bool = False,
) -> list[str]:
    """Arguments for ``terraform init`` (``-json`` exists since Terraform 1.9).

    ``backend_config`` values go on the command line as ``-backend-config=k=v``;
    values that are secret belong in ``backend_config_file`` instead.
    """
    args = ["init", "-input=false", "-json"]
    if backend_config_file:
        args.append(f"-backend-config={backend_config_file}")
    for key, value in (backend_config or {}).items():
        args.append(f"-backend-config={key}={_scalar(value)}")
    if reconfigure:
        args.append("-reconfigure")
    return args


def plan_args(
    *,
    out: str,
    vars_file: str | None = None,
    var_files: Iterable[str] = (),
    targets: Iterable[str] = (),
    destroy: bool = False,
    refresh: bool = True,
) -> list[str]:
    """Arguments for ``terraform plan`` to a saved plan file.

    ``vars_file`` is the ``*.tfvars.json`` drkit writes from a step's ``vars``
    (so values stay out of argv); ``var_files`` are the step's own var files,
    passed after it so that they win, as on the Terraform command line.
    Exit code (``-detailed-exitcode``): 0 no changes, 1 error, 2 changes.
    """
    args = ["plan", "-json", "-input=false", f"-lock-timeout={LOCK_TIMEOUT}",
            "-detailed-exitcode", f"-out={out}"]
    if destroy:
        args.append("-destroy")
    if not refresh:
        args.append("-refresh=false")
    return args + _input_args(vars_file, var_files, targets)


def _input_args(vars_file: str | None, var_files: Iterable[str],
                targets: Iterable[str]) -> list[str]:
    """Variable files (drkit's first, so the step's own win) and targets."""
    args = [f"-var-file={vars_file}"] if vars_file else []
    args += [f"-var-file={f}" for f in var_files]
    return args + [f"-target={t}" for t in targets]


def apply_args(plan_file: str) -> list[str]:
    """Arguments for applying a saved plan (no approval prompt: the plan is the approval)."""
    return ["apply", "-json", "-input=false", f"-lock-timeout={LOCK_TIMEOUT}", str(plan_file)]


def apply_now_args(
    *,
    vars_file: str | None = None,
    var_files: Iterable[str] = (),
    targets: Iterable[str] = (),
    destroy: bool = False,
) -> list[str]:
    """Arguments for ``terraform apply -auto-approve``: refresh, plan and apply in one
    process. The runbook step is the approval; a dry run plans instead."""
    args = ["apply", "-json", "-input=false", f"-lock-timeout={LOCK_TIMEOUT}", "-auto-approve"]
    if destroy:
        args.append("-destroy")
    return args + _input_args(vars_file, var_files, targets)


def output_args() -> list[str]:
    """Arguments for reading all root outputs as one JSON object."""
    return ["output", "-json"]


def show_plan_args(plan_file: str) -> list[str]:
    """Arguments for rendering a saved plan as JSON."""
    return ["show", "-json", str(plan_file)]


def workspace_args(name: str | None = None, *, create: bool = True) -> list[str]:
    """Arguments for selecting (by default creating if missing) a workspace.

    Without a name: ``workspace show`` (the current one).
    """
    if name is None:
        return ["workspace", "show"]
    args = ["workspace", "select"]
    if create:
        args.append("-or-create")
    args.append(name)
    return args


def command_line(module_dir: str, args: list[str], *, binary: str = "terraform") -> list[str]:
    """The full argv: terraform run against ``module_dir`` without changing our cwd."""
    return [binary, f"-chdir={module_dir}", *args]


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def own_lost_lock(messages: Iterable[dict], started: float, who: str) -> str | None:
    """The id of a state lock that the failed command itself took, or None (pure).

    Under load the backend's lock request can succeed on the server while the
    client never sees the answer; its retry then finds the lock taken, by itself,
    and the command fails with "Error acquiring the state lock", leaving the lock
    behind for every later command. That lock is recognisable: held by this user
    on this host, created after the command started (``started``, epoch seconds).
    A lock of anyone else, or older, is never touched.
    """
    for message in messages:
        diag = message.get("diagnostic") or {}
        if message.get("type") != "diagnostic" or \
                diag.get("summary") != "Error acquiring the state lock":
            continue
        fields = dict(_LOCK_FIELD.findall(diag.get("detail") or ""))
        created = re.match(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)(\.\d+)? \+0000 UTC",
                           fields.get("Created", ""))
        if not fields.get("ID") or fields.get("Who") != who or not created:
            return None
        at = datetime.strptime(created.group(1), "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
        seconds = at.timestamp() + float("0" + (created.group(2) or ""))
        return fields["ID"] if seconds >= started else None
    return None


def lock_holder() -> str:
    """How Terraform names this process in a state lock's Who: user@host."""
    return f"{getpass.getuser()}@{socket.gethostname()}"


# --- running terraform ----------------------------------------------------------


class _Run:
    """What one terraform process printed, gathered while streaming."""

    def __init__(self) -> None:
        self.messages: list[dict] = []  # parsed JSON UI messages
        self.text: list[str] = []  # operator-meaningful lines, in order
        self.text_raw: list[str] = []  # lines that were not JSON messages
        self.errors: list[str] = []  # error diagnostics, rendered
        self.rc: int = -1
        self.timed_out: float | None = None
        self.log_path: Path | None = None
        self.notes: list[str] = []  # what drkit did about the command, for the summary


class Terraform:
    """One Terraform root module, run with drkit's data dir, CLI config and logs.

    ``data_dir`` (TF_DATA_DIR) keeps ``.terraform`` out of the module directory, so
    one module can be used by many runs and environments. ``on_event`` receives
    each forwarded JSON message (see FORWARDED_TYPES) as it arrives.
    """

    def __init__(
        self,
        module_dir: Path,
        *,
        data_dir: Path,
        log_dir: Path,
        env: Mapping[str, str] | None = None,
        cli_config: Path | None = None,
        on_event: Callable[[dict], None] | None = None,
        binary: str = "terraform",
    ) -> None:
        self.module_dir = Path(module_dir).resolve()
        self.data_dir = Path(data_dir).resolve()
        self.log_dir = Path(log_dir).resolve()
        self.cli_config = Path(cli_config).resolve() if cli_config else None
        self.extra_env = dict(env or {})
        self.on_event = on_event
        self.binary = binary

    # -- public commands --

    def init(
        self,
        backend_config: Mapping[str, Any] | None = None,
        *,
        reconfigure: bool = False,
        reuse: bool = True,
        timeout: float | None = None,
    ) -> DriverResult:
        """``terraform init``. Backend settings go through a 0600 file, not argv.

        With ``reuse``, an init is skipped when this data dir was initialised with
        the same inputs (backend settings, root module files, lock file, CLI config,
        terraform binary): init starts the provider and reads the backend, ~1.7 s on
        the lab, on the critical path of every terraform step. A command that still
        finds the data dir stale is retried after a real init (:meth:`ensure_init`).
        """
        stamp = self.data_dir / INIT_STAMP
        fingerprint = self._init_fingerprint(backend_config, reconfigure)
        if reuse and not reconfigure and _read(stamp) == fingerprint:
            return DriverResult(ok=True, rc=0, summary="init: up to date (reused)")
        stamp.unlink(missing_ok=True)
        cfg_file = None
        if backend_config:
            cfg_file = self._private_file(
                "backend.tfbackend",
                "".join(f"{k} = {json.dumps(v)}\n" for k, v in backend_config.items()),
            )
        try:
            run = self._run("init", init_args(
                backend_config_file=str(cfg_file) if cfg_file else None,
                reconfigure=reconfigure), timeout=timeout)
        finally:
            if cfg_file:
                cfg_file.unlink(missing_ok=True)
        if run.rc == 0:
            atomic_write_text(stamp, fingerprint + "\n")
        return self._result("init", run, ok=run.rc == 0,
                            summary="init: ok" if run.rc == 0 else None)

    def ensure_init(self, command: Callable[[], DriverResult],
                    backend_config: Mapping[str, Any] | None = None, *,
                    timeout: float | None = None) -> DriverResult:
        """Run ``command``; when it fails because the data dir needs an init that
        was reused (a module added, a provider changed behind drkit's back), run a
        real init and ``command`` once more."""
        result = command()
        if result.ok or not init_required(result):
            return result
        init = self.init(backend_config, reuse=False, timeout=timeout)
        return command() if init.ok else init

    def _init_fingerprint(self, backend_config: Mapping[str, Any] | None,
                          reconfigure: bool) -> str:
        digest = hashlib.sha256()
        binary = shutil.which(self.binary) or self.binary
        with contextlib.suppress(OSError):
            st = os.stat(binary)
            digest.update(f"{os.path.realpath(binary)}:{st.st_size}:{st.st_mtime_ns}".encode())
        digest.update(json.dumps(dict(backend_config or {}), sort_keys=True,
                                 default=str).encode())
        digest.update(str(reconfigure).encode())
        inputs = sorted(p for p in self.module_dir.glob("*")
                        if p.name.endswith((".tf", ".tf.json", ".terraform.lock.hcl")))
        if self.cli_config is not None:
            inputs.append(self.cli_config)
        for path in inputs:
            digest.update(path.name.encode())
            with contextlib.suppress(OSError):
                digest.update(path.read_bytes())
        return digest.hexdigest()

    def select_workspace(self, name: str, *, timeout: float | None = None) -> DriverResult:
        """Select workspace ``name``, creating it when it does not exist."""
        run = self._run("workspace", workspace_args(name), timeout=timeout)
        return self._result("workspace", run, ok=run.rc == 0,
                            summary=f"workspace: {name}" if run.rc == 0 else None)

    def plan(
        self,
        *,
        plan_file: Path,
        vars: Mapping[str, Any] | None = None,
        var_files: Iterable[Path | str] = (),
        targets: Iterable[str] = (),
        destroy: bool = False,
        refresh: bool = True,
        timeout: float | None = None,
    ) -> DriverResult:
        """Plan to ``plan_file``. Nothing changes: no resource, no state written.

        ``changes`` lists ``{"address", "action"}`` per planned change; ``ok`` is
        true for "no changes" (rc 0) and "changes" (rc 2) alike.
        """
        plan_file = Path(plan_file).resolve()
        plan_file.parent.mkdir(parents=True, exist_ok=True)
        # A plan file left by an earlier attempt must never be applied by mistake.
        plan_file.unlink(missing_ok=True)
        vars_file = None
        if vars:
            vars_file = self._private_file("step-vars.tfvars.json", json.dumps(dict(vars)))
        try:
            run = self._run("plan", plan_args(
                out=str(plan_file),
                vars_file=str(vars_file) if vars_file else None,
                var_files=[str(Path(f).resolve()) for f in var_files],
                targets=targets, destroy=destroy, refresh=refresh), timeout=timeout)
        finally:
            if vars_file:
                vars_file.unlink(missing_ok=True)
        ok = run.rc in (0, 2)
        changes = [
            {"address": m["change"]["resource"]["addr"], "action": m["change"]["action"]}
            for m in run.messages if m.get("type") == "planned_change"
        ]
        summary = None
        if ok:
            summary = "plan: " + _change_counts(run, past=False)
        result = self._result("plan", run, ok=ok, summary=summary)
        result.changes = changes
        return result

    def apply(self, plan_file: Path, *, timeout: float | None = None) -> DriverResult:
        """Apply a saved plan. ``changes`` lists ``{"address", "action"}`` per completed
        change; ``outputs`` holds the root outputs (sensitive ones redacted)."""
        run = self._run("apply", apply_args(str(Path(plan_file).resolve())), timeout=timeout)
        return self._applied(run)

    def apply_now(
        self,
        *,
        vars: Mapping[str, Any] | None = None,
        var_files: Iterable[Path | str] = (),
        targets: Iterable[str] = (),
        destroy: bool = False,
        timeout: float | None = None,
    ) -> DriverResult:
        """Plan and apply in one ``terraform apply -auto-approve`` (the AWS provider
        starts once instead of twice: ~4 s less per apply on the lab). Same result
        as :meth:`apply`; the plan's changes are in the log."""
        vars_file = None
        if vars:
            vars_file = self._private_file("step-vars.tfvars.json", json.dumps(dict(vars)))
        try:
            run = self._run("apply", apply_now_args(
                vars_file=str(vars_file) if vars_file else None,
                var_files=[str(Path(f).resolve()) for f in var_files],
                targets=targets, destroy=destroy), timeout=timeout)
        finally:
            if vars_file:
                vars_file.unlink(missing_ok=True)
        return self._applied(run)

    def _applied(self, run: _Run) -> DriverResult:
        ok = run.rc == 0
        result = self._result("apply", run, ok=ok,
                              summary="apply: " + _change_counts(run, past=True) if ok else None)
        result.changes = [
            {"address": m["hook"]["resource"]["addr"], "action": m["hook"]["action"]}
            for m in run.messages if m.get("type") == "apply_complete"
        ]
        for m in run.messages:
            if m.get("type") == "outputs":
                result.outputs = {
                    k: SENSITIVE if v.get("sensitive") else v.get("value")
                    for k, v in m.get("outputs", {}).items()
                }
        return result

    def output(self, *, timeout: float | None = None) -> DriverResult:
        """The root module's outputs as ``{name: value}``.

        Sensitive outputs are replaced by ``"<sensitive>"`` here too, not only in
        logs: outputs are journaled and feed later steps' templates, and on resume
        they come back from the journal, so a secret must never enter them. Steps
        that need a secret fetch it from the secret store themselves.
        """
        run = self._run("output", output_args(), timeout=timeout, stream_json=False,
                        log_text=False)
        outputs: dict[str, Any] = {}
        ok = run.rc == 0
        if ok:
            try:
                raw = json.loads("\n".join(run.text_raw)) if run.text_raw else {}
                outputs = {k: SENSITIVE if v.get("sensitive") else v.get("value")
                           for k, v in raw.items()}
            except (ValueError, AttributeError) as exc:
                ok = False
                run.errors.append(f"could not parse terraform output -json: {exc}")
        log_path = self.log_dir / "output.json"
        log_path.write_text(json.dumps(outputs, indent=2, sort_keys=True) + "\n")
        result = self._result("output", run, ok=ok,
                              summary=f"output: {len(outputs)} values" if ok else None)
        result.outputs = outputs
        result.log_path = log_path
        return result

    def show_plan(self, plan_file: Path, *, timeout: float | None = None) -> DriverResult:
        """The saved plan as Terraform's JSON plan representation, in ``outputs["plan"]``.

        The JSON holds variable values (sensitive ones are marked, not removed);
        it is returned, not logged.
        """
        run = self._run("show", show_plan_args(str(Path(plan_file).resolve())),
                        timeout=timeout, stream_json=False, log_text=False)
        result = self._result("show", run, ok=run.rc == 0,
                              summary="show: ok" if run.rc == 0 else None)
        if result.ok:
            try:
                result.outputs = {"plan": json.loads("\n".join(run.text_raw))}
            except ValueError as exc:
                result.ok = False
                result.summary = f"show failed: {exc}"
        return result

    # -- internals --

    def environment(self) -> dict[str, str]:
        """The process environment terraform runs with."""
        env = dict(os.environ)
        env.update({
            "TF_DATA_DIR": str(self.data_dir),
            "TF_IN_AUTOMATION": "1",
            "TF_INPUT": "0",
            # No call home to checkpoint-api.hashicorp.com: unreachable from a
            # bastion in a failed region, and a hang is worse than no update notice.
            "CHECKPOINT_DISABLE": "1",
        })
        if self.cli_config is not None:
            env["TF_CLI_CONFIG_FILE"] = str(self.cli_config)
        env.update(self.extra_env)
        return env

    def _private_file(self, name: str, text: str) -> Path:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        path = self.data_dir / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        return path

    def _run(self, command: str, args: list[str], **options: Any) -> _Run:
        """Run one terraform command (``options`` as :meth:`_run_once`), streaming its
        output; never raises on failure. A command that failed on a state lock it took
        itself (``own_lost_lock``) releases that lock and runs once more."""
        started = time.time()
        run = self._run_once(command, args, **options)
        lock_id = own_lost_lock(run.messages, started - 1.0, lock_holder()) \
            if run.rc != 0 and run.timed_out is None else None
        if lock_id is None:
            return run
        note = (f"released state lock {lock_id}, which this {command} had taken itself and "
                "then lost (a lock request retried under load), and ran it again")
        if self.on_event is not None:
            self.on_event({"type": "drkit_wait", "@message": note})
        unlock = self._run_once("force-unlock", ["force-unlock", "-force", lock_id],
                                timeout=60, stream_json=False, log_text=False)
        if unlock.rc != 0:
            run.errors.append(f"could not release state lock {lock_id}: "
                              + " ".join(unlock.text_raw[-3:]))
            return run
        again = self._run_once(command, args, **options)
        again.notes.append(note)
        return again

    def _run_once(
        self,
        command: str,
        args: list[str],
        *,
        timeout: float | None,
        stream_json: bool = True,
        log_text: bool = True,
    ) -> _Run:
        """Run one terraform command once, streaming its output."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        run = _Run()
        argv = command_line(str(self.module_dir), args, binary=self.binary)
        log_path = self.log_dir / f"{command}.jsonl"
        run.log_path = log_path if log_text else None
        # A logged command writes to a file that drkit follows, not to a pipe: if
        # drkit dies (kill -9, a dropped bastion session), terraform is in its own
        # session and finishes, and releases the state lock, instead of dying on a
        # broken pipe half-way through an apply with the lock held. The resumed
        # step waits for that lock (-lock-timeout). Commands whose output may hold
        # secrets (output, show) are not logged: they use a pipe.
        # That survivor may still run when the step is resumed (or another run
        # starts): wait for it rather than start a second terraform on the same
        # data dir and state. Each process writes its own raw file, kept when
        # drkit dies, so a survivor's output is never mixed into, or deleted
        # with, a later attempt's.
        if not self._wait_for_survivor(command, timeout, run):
            return run
        raw_path = None
        try:
            with contextlib.ExitStack() as files:
                out: Any = subprocess.PIPE
                if log_text:
                    fd, tmp = tempfile.mkstemp(prefix=f"{command}.", suffix=".out",
                                               dir=self.log_dir)
                    out = files.enter_context(os.fdopen(fd, "w", encoding="utf-8"))
                    raw_path = Path(tmp)
                proc = subprocess.Popen(
                    argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                    env=self.environment(), text=True, bufsize=1, start_new_session=True,
                )
        except OSError as exc:
            if raw_path is not None:
                raw_path.unlink(missing_ok=True)
            run.rc = 127
            run.errors.append(f"could not start {argv[0]}: {exc}")
            return run
        if raw_path is not None:
            raw_path = raw_path.rename(self.log_dir / f"{command}.{proc.pid}.out")
            self._mark_running(command, proc.pid, raw_path)
        watchdog = None
        if timeout is not None:
            watchdog = threading.Thread(target=_watch, args=(proc, timeout, run), daemon=True)
            watchdog.start()
        with contextlib.ExitStack() as stack:
            log = stack.enter_context(open(log_path, "a", encoding="utf-8")) if log_text else None
            if raw_path is not None:
                lines: Iterable[str] = _follow(raw_path, proc)
            else:
                assert proc.stdout is not None
                lines = proc.stdout
            for line in lines:
                self._handle_line(line, run, log, stream_json=stream_json)
        run.rc = proc.wait()
        if raw_path is not None:
            raw_path.unlink(missing_ok=True)  # its lines are in the .jsonl log
            self._clear_running(proc.pid)
        if watchdog is not None:
            watchdog.join()
        return run

    # -- a terraform that outlived the drkit that started it --

    @property
    def _running_path(self) -> Path:
        return self.data_dir / RUNNING_FILE

    def _mark_running(self, command: str, pid: int, raw_path: Path) -> None:
        atomic_write_json(self._running_path, {
            "pid": pid, "started": start_time(pid), "command": command,
            "output": str(raw_path), "drkit_pid": os.getpid(),
            "drkit_started": start_time(os.getpid())})

    def _clear_running(self, pid: int) -> None:
        marker = _read_json(self._running_path)
        if marker is not None and marker.get("pid") == pid:
            self._running_path.unlink(missing_ok=True)

    def _wait_for_survivor(self, command: str, timeout: float | None, run: _Run) -> bool:
        """Wait for a terraform that an earlier, killed drkit left running on this
        data dir; False (with the error in ``run``) when it is still running after
        ``timeout`` seconds."""
        marker = _read_json(self._running_path)
        if marker is None:
            return True
        pid, started = marker.get("pid"), marker.get("started")
        if not isinstance(pid, int) or not still_running(pid, started):
            self._running_path.unlink(missing_ok=True)  # it has exited
            return True
        owner_alive = (isinstance(marker.get("drkit_pid"), int)
                       and still_running(marker["drkit_pid"], marker.get("drkit_started")))
        what = (f"terraform {marker.get('command', '?')} (pid {pid}), "
                + ("started by another step" if owner_alive
                   else "left running by an interrupted run,"))
        if self.on_event is not None:
            self.on_event({"type": "drkit_wait", "@message": f"waiting for {what} to finish"})
        deadline = None if timeout is None else time.monotonic() + timeout
        while still_running(pid, started):
            if deadline is not None and time.monotonic() >= deadline:
                run.rc = 1
                run.errors.append(
                    f"{what} is still running after "
                    f"{timeout:g}s (its output: {marker.get('output')}); let it finish or "
                    f"stop it with `kill -TERM {pid}`, then run {command} again")
                return False
            time.sleep(_SURVIVOR_POLL_S)
        self._running_path.unlink(missing_ok=True)
        return True

    def _handle_line(self, line: str, run: _Run, log: TextIO | None, *,
                     stream_json: bool) -> None:
        stripped = line.rstrip("\n")
        message = None
        if stream_json and stripped.startswith("{"):
            with contextlib.suppress(ValueError):
                message = json.loads(stripped)
        if not isinstance(message, dict):
            run.text_raw.append(stripped)
            if log is not None:
                # Keep the log valid JSON lines even for the CLI's plain-text
                # output (stderr warnings, init's backend banner).
                log.write(json.dumps({"type": "drkit_text", "line": stripped}) + "\n")
            if stream_json:
                run.text.append(_strip_ansi(stripped))
            return
        if log is not None:
            log.write(stripped + "\n")
            log.flush()
        run.messages.append(message)
        kind = message.get("type")
        if kind == "diagnostic":
            diag = message.get("diagnostic", {})
            if diag.get("severity") == "error":
                run.errors.append(_render_diagnostic(diag))
        elif kind in _TAIL_TYPES:
            run.text.append(str(message.get("@message", "")))
        if self.on_event is not None and kind in FORWARDED_TYPES:
            self.on_event(message)

    def _result(self, command: str, run: _Run, *, ok: bool, summary: str | None) -> DriverResult:
        log_path = run.log_path
        if run.timed_out is not None:
            ok = False
            summary = f"{command}: timed out after {run.timed_out:g}s"
        elif not ok:
            first = run.errors[0].splitlines()[0] if run.errors else f"exit code {run.rc}"
            summary = f"{command} failed: {first}"
        tail: list[str] = []
        if not ok:
            text = run.text or run.text_raw
            tail = last_lines(text, 20 - min(len(run.errors), 10)) + [
                line for err in run.errors[-10:] for line in err.splitlines() if line.strip()
            ]
        summary = summary or f"{command}: ok"
        if run.notes:
            summary += " (" + "; ".join(run.notes) + ")"
        return DriverResult(ok=ok, rc=run.rc, summary=summary, log_path=log_path, tail=tail)


def init_required(result: DriverResult) -> bool:
    """True when a failed command asks for ``terraform init`` first."""
    return any(phrase in line for line in result.tail for phrase in _INIT_REQUIRED)


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _change_counts(run: _Run, *, past: bool) -> str:
    counts = {"add": 0, "change": 0, "remove": 0}
    for m in run.messages:
        if m.get("type") == "change_summary":
            counts.update({k: v for k, v in m.get("changes", {}).items() if k in counts})
    if past:
        return (f"{counts['add']} added, {counts['change']} changed, "
                f"{counts['remove']} destroyed")
    return (f"{counts['add']} to add, {counts['change']} to change, "
            f"{counts['remove']} to destroy")


def _render_diagnostic(diag: Mapping[str, Any]) -> str:
    text = f"Error: {diag.get('summary', '')}"
    if diag.get("address"):
        text += f" ({diag['address']})"
    rng = diag.get("range") or {}
    if rng.get("filename"):
        text += f" at {rng['filename']}:{rng.get('start', {}).get('line', '?')}"
    detail = str(diag.get("detail") or "").strip()
    if detail:
        text += "\n" + detail
    return text


def _read_json(path: Path) -> dict | None:
    text = _read(path)
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


def _follow(path: Path, proc: subprocess.Popen, poll_s: float = 0.05) -> Iterator[str]:
    """The lines ``proc`` writes to ``path``, as they come, until it has exited and
    everything it wrote was read (a last line without a newline included)."""
    pending = ""
    with open(path, encoding="utf-8", errors="replace") as fh:
        while True:
            exited = proc.poll() is not None  # before reading: nothing written after is lost
            chunk = fh.read()
            if chunk:
                pending += chunk
                *complete, pending = pending.split("\n")
                for line in complete:
                    yield line + "\n"
            elif exited:
                if pending:
                    yield pending
                return
            else:
                time.sleep(poll_s)


def _watch(proc: subprocess.Popen, timeout: float, run: _Run) -> None:
    """Kill the process group once ``timeout`` has passed (terraform and its children)."""
    try:
        proc.wait(timeout=timeout)
        return
    except subprocess.TimeoutExpired:
        pass
    run.timed_out = timeout
    _signal_group(proc, signal.SIGTERM)
    deadline = time.monotonic() + _KILL_GRACE_S
    while proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    if proc.poll() is None:
        _signal_group(proc, signal.SIGKILL)


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)
