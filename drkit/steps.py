"""How each kind of step runs: one function per kind, each returning a StepOutcome.

The engine renders a step's spec, then calls ``execute``. Executors never decide
what a failure means for the run; they describe what happened (ok or not, a
one-line summary, outputs for later steps, the tail of the tool's output, what
changed or would change in a dry run, RPO evidence).
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from drkit import inventory_cache, notify, registry
from drkit.drivers import ansible as ansible_driver
from drkit.drivers.terraform import Terraform
from drkit.drivers.tfconfig import find_provider_mirror, write_cli_config
from drkit.errors import ApprovalRequired, DrkitError
from drkit.runbook import Step
from drkit.templating import evaluate, render


@dataclass
class StepOutcome:
    ok: bool
    summary: str = ""
    outputs: dict[str, Any] = field(default_factory=dict)
    tail: list[str] = field(default_factory=list)
    changes: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    approval: dict[str, Any] | None = None
    notifications: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Runtime:
    """What executors need from the engine for one step."""

    ctx: registry.StepContext
    template_ctx: dict[str, Any]
    yes: bool
    interactive: bool
    timeout_s: float | None
    activity: Callable[[str], None]
    ask: Callable[[str], bool]
    #: The run's notifications (drkit.notify.Notifier); None outside the engine.
    notifier: Any = None


def execute(step: Step, spec: dict[str, Any], rt: Runtime) -> StepOutcome:
    """Run one rendered step. Only a DrkitError for bad input or a refused approval
    escapes; a failing tool or action becomes ``StepOutcome(ok=False)``."""
    runner = _EXECUTORS[step.kind]
    try:
        return runner(step, spec, rt)
    except (ApprovalRequired, KeyboardInterrupt):
        raise
    except DrkitError as exc:
        return StepOutcome(ok=False, summary=str(exc).splitlines()[0], error=str(exc))
    except Exception as exc:  # an action or probe raised: the step failed, say why
        return StepOutcome(ok=False, summary=f"{type(exc).__name__}: {exc}",
                           error=f"{type(exc).__name__}: {exc}")


def open_root(project: Any, env: Any, root: str, log_dir: Any,
              on_event: Callable[[dict[str, Any]], None] | None = None
              ) -> tuple[Terraform, dict[str, Any] | None, dict[str, Any]]:
    """A Terraform driver for the root module ``root`` of ``env`` (its own data
    directory per environment), with the environment's backend settings and
    variables when ``root`` is its Terraform directory (else None and {})."""
    module_dir = project.path(root)
    slug = hashlib.sha256(str(module_dir).encode()).hexdigest()[:10]
    state_dir = project.state_dir
    cli_config = write_cli_config(
        state_dir / "terraform" / "terraformrc",
        mirror=find_provider_mirror(), plugin_cache=state_dir / "terraform" / "plugin-cache",
    )
    tf = Terraform(module_dir, data_dir=state_dir / "terraform" / env.name /
                   f"{module_dir.name}-{slug}", log_dir=log_dir, env=env.process_env(),
                   cli_config=cli_config, on_event=on_event)
    tf_settings = env.settings.get("terraform") or {}
    if tf_settings.get("dir") != root:
        return tf, None, {}
    # The environment's own variables (a scratch estate's name, networks) go with
    # every run of its Terraform root.
    return tf, tf_settings.get("backend_config"), dict(tf_settings.get("vars") or {})


def _terraform(step: Step, spec: dict[str, Any], rt: Runtime) -> StepOutcome:
    ctx = rt.ctx
    tf, backend, env_vars = open_root(
        ctx.project, ctx.env, spec["dir"], ctx.run_dir / "terraform" / step.id,
        on_event=lambda m: rt.activity(str(m.get("@message", m.get("type", "")))))
    result = tf.init(backend_config=backend, timeout=rt.timeout_s)
    if result.ok and spec.get("workspace"):
        result = tf.select_workspace(spec["workspace"], timeout=rt.timeout_s)
    if not result.ok:
        return _from_driver(result)
    inputs = {"vars": {**env_vars, **(spec.get("vars") or {})},  # the step's win
              "var_files": [ctx.project.path(f) for f in spec.get("var_files") or []],
              "targets": spec.get("targets") or [], "destroy": spec.get("action") == "destroy"}
    if ctx.dry_run or spec.get("action") == "plan":
        plan_file = ctx.run_dir / "terraform" / step.id / "tfplan"
        plan = tf.ensure_init(lambda: tf.plan(plan_file=plan_file, timeout=rt.timeout_s, **inputs),
                              backend, timeout=rt.timeout_s)
        plan_file.unlink(missing_ok=True)  # a saved plan may hold variable values
        return _from_driver(plan)
    return _from_driver(tf.ensure_init(lambda: tf.apply_now(timeout=rt.timeout_s, **inputs),
                                       backend, timeout=rt.timeout_s))


def _ansible(step: Step, spec: dict[str, Any], rt: Runtime) -> StepOutcome:
    ctx = rt.ctx

    def on_event(ev: dict[str, Any]) -> None:
        text = " ".join(str(ev.get(k)) for k in ("type", "host", "task") if ev.get(k))
        rt.activity(text)

    result = ansible_driver.run_playbook(
        ctx.project.path(spec["playbook"]),
        inventory=ctx.env.inventory, limit=spec.get("limit"),
        extra_vars=spec.get("extra_vars") or {}, tags=spec.get("tags") or (),
        check=ctx.dry_run, diff=ctx.dry_run,
        private_data_dir=ctx.run_dir / "ansible" / step.id,
        env={**ctx.env.process_env(),
             **inventory_cache.prepare(ctx.env, ctx.run_dir / "inventory-cache")},
        on_event=on_event, timeout=rt.timeout_s,
    )
    # A play states a choice it made (where a backup runs, and why) as
    # drkit_outputs.decision: journaled as a decision, like the engine's own.
    for published in (result.outputs or {}).get("facts", {}).values():
        if isinstance(published, dict) and isinstance(published.get("decision"), str):
            ctx.decide(" ".join(published["decision"].split()))
    return _from_driver(result)


def _check(step: Step, spec: dict[str, Any], rt: Runtime) -> StepOutcome:
    if "of" in spec:  # what an earlier step found, not asked again
        source = spec["of"]
        result = (rt.template_ctx.get("steps", {}).get(source) or {}).get("outputs")
        if result is None:
            error = (f"step {source} left no result to check (it failed before its probe "
                     "answered); its own error says why")
            return StepOutcome(ok=False, summary=error, error=error)
        outputs: dict[str, Any] = {}
    else:
        source = spec["probe"]
        result = registry.call(registry.get_probe(source), rt.ctx, spec.get("args") or {})
        outputs = result
    passed = bool(evaluate(spec["expect"], {**rt.template_ctx, "result": result}))
    summary = f"{source}: {'pass' if passed else 'FAIL'} ({spec['expect']})"
    error = None
    if not passed:
        message = spec.get("message")
        if message:
            message = render(message, {**rt.template_ctx, "result": result})
        error = message or f"{source} returned {result}, expected {spec['expect']}"
        summary = error
    return StepOutcome(ok=passed, summary=summary, outputs=outputs, error=error)


def _approval(step: Step, spec: dict[str, Any], rt: Runtime) -> StepOutcome:
    prompt = spec["prompt"]
    if rt.ctx.dry_run:
        return StepOutcome(ok=True, summary=f"would ask: {prompt}",
                           approval={"how": "dry-run", "by": None, "prompt": prompt})
    if rt.yes:
        return StepOutcome(ok=True, summary="approved by --yes",
                           approval={"how": "yes-flag", "by": _user(), "prompt": prompt})
    if not rt.interactive:
        raise ApprovalRequired(
            f"step {step.id} needs approval ({prompt}) but there is no terminal to ask",
            hint="re-run with --yes to approve non-interactively",
        )
    if rt.ask(prompt):
        return StepOutcome(ok=True, summary="approved interactively",
                           approval={"how": "interactive", "by": _user(), "prompt": prompt})
    return StepOutcome(ok=False, summary="approval refused", error="the operator refused")


def _notify(step: Step, spec: dict[str, Any], rt: Runtime) -> StepOutcome:
    """Render the template and queue it for the channels (the step's, else the
    severity's). Delivery happens in the background and never fails the step: each
    delivery is journaled as a ``notification`` and failures are in the report."""
    notifier = rt.notifier
    if notifier is None:  # outside the engine: a notifier for this one message
        run = dict(rt.template_ctx.get("run") or {})
        notifier = notify.Notifier(rt.ctx.env, rt.ctx.project.root, run=run,
                                   severity=str(run.get("severity") or "SEV4"),
                                   dry_run=rt.ctx.dry_run, record=lambda rec: None)
    text, targets = notifier.notify(spec["template"],
                                    {**rt.template_ctx, "vars": spec.get("vars") or {}},
                                    spec.get("channels"), step=step.id)
    if notifier is not rt.notifier:
        notifier.close()
    verb = "would send" if rt.ctx.dry_run else "sending"
    return StepOutcome(
        ok=True, summary=f"{verb} {spec['template']} to {', '.join(targets) or 'no channel'}",
        notifications=[{"template": spec["template"], "channels": targets, "text": text}],
    )


def _action(step: Step, spec: dict[str, Any], rt: Runtime) -> StepOutcome:
    fn = registry.get_action(spec["name"])
    if rt.ctx.dry_run:
        args = ", ".join(f"{k}={v!r}" for k, v in (spec.get("args") or {}).items())
        return StepOutcome(ok=True, summary=f"would run {spec['name']}({args})",
                           changes=[{"action": spec["name"], "args": spec.get("args") or {}}])
    outputs = registry.call(fn, rt.ctx, spec.get("args") or {})
    return StepOutcome(ok=True, summary=str(outputs.get("summary") or f"{spec['name']}: done"),
                       outputs=outputs)


def _from_driver(result: Any) -> StepOutcome:
    return StepOutcome(
        ok=result.ok, summary=result.summary, outputs=dict(result.outputs),
        tail=list(result.tail), changes=list(result.changes),
        error=None if result.ok else (result.summary or "failed"),
    )


def _user() -> str:
    import getpass
    import socket
    return f"{getpass.getuser()}@{socket.gethostname()}"


def ask_on_terminal(prompt: str) -> bool:
    """Ask a yes/no question on the controlling terminal."""
    sys.stderr.write(f"{prompt} [y/N] ")
    sys.stderr.flush()
    answer = sys.stdin.readline().strip().lower()
    return answer in ("y", "yes")


_EXECUTORS: dict[str, Callable[[Step, dict[str, Any], Runtime], StepOutcome]] = {
    "terraform": _terraform, "ansible": _ansible, "check": _check,
    "approval": _approval, "notify": _notify, "action": _action,
}
