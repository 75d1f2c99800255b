"""A runbook as an operator reads it (``drkit show``), in Markdown."""

from __future__ import annotations

import json
from typing import Any

from drkit.durations import format_duration
from drkit.runbook.model import Runbook, Step
from drkit.runbook.params import show_value


def _code(text: Any) -> str:
    text = str(text).strip()
    fence = "``" if "`" in text else "`"
    pad = " " if fence == "``" else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _describe_step(step: Step) -> list[str]:
    spec = step.spec
    lines: list[str] = []
    if step.kind == "ansible":
        what = f"ansible: playbook {_code(spec['playbook'])}"
        if "limit" in spec:
            what += f" limited to {_code(spec['limit'])}"
        lines.append(what)
        if spec.get("tags"):
            lines.append(f"tags: {_code(_compact(spec['tags']))}")
        if spec.get("extra_vars"):
            lines.append(f"extra vars: {_code(_compact(spec['extra_vars']))}")
    elif step.kind == "terraform":
        what = f"terraform {spec['action']} in {_code(spec['dir'])}"
        if "workspace" in spec:
            what += f" (workspace {_code(spec['workspace'])})"
        lines.append(what)
        for key, label in (("targets", "targets"), ("vars", "vars"), ("var_files", "var files")):
            if spec.get(key):
                lines.append(f"{label}: {_code(_compact(spec[key]))}")
    elif step.kind == "check":
        source = f"probe {_code(spec['probe'])}" if "probe" in spec \
            else f"the result of step {_code(spec['of'])}"
        lines.append(f"check: {source}, expect {_code(spec['expect'])}")
        if spec.get("args"):
            lines.append(f"args: {_code(_compact(spec['args']))}")
        if spec.get("message"):
            lines.append(f"on failure says: {_code(spec['message'])}")
    elif step.kind == "approval":
        lines.append(f"approval: asks {_code(spec['prompt'])}")
    elif step.kind == "notify":
        what = f"notify: template {_code(spec['template'])}"
        if spec.get("channels"):
            what += f" to {_code(_compact(spec['channels']))}"
        lines.append(what)
    elif step.kind == "action":
        lines.append(f"action: {_code(spec['name'])}")
        if spec.get("args"):
            lines.append(f"args: {_code(_compact(spec['args']))}")
    if step.when:
        lines.append(f"only when {_code(step.when)}")
    if step.timeout_s is not None:
        lines.append(f"timeout: {format_duration(step.timeout_s)}")
    if step.marks_start:
        lines.append(f"marks at start: {', '.join(step.marks_start)}")
    if step.marks_finish:
        lines.append(f"marks at finish: {', '.join(step.marks_finish)}")
    return lines


def _compact(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return ", ".join(value)
    return json.dumps(value, sort_keys=False, default=str)


def _step_section(steps: tuple[Step, ...]) -> list[str]:
    out: list[str] = []
    for number, step in enumerate(steps, start=1):
        heading = step.title if step.title == step.id else f"{step.title} ({_code(step.id)})"
        if step.title == step.id:
            heading = _code(step.id)
        lane = f" (lane {_code(step.lane)}, alongside the block's other lanes)" \
            if step.lane else ""
        out.append(f"{number}. **{heading}**{lane}")
        out.extend(f"   - {line}" for line in _describe_step(step))
    return out


def to_markdown(runbook: Runbook) -> str:
    """The runbook as an operator reads it (``drkit show``): what it is for, its
    targets and parameters, then every check and step in order with what it
    runs. Templates are shown as written, so the page matches what will run."""
    out = [
        f"# {runbook.id}: {runbook.title}",
        "",
        f"- **Severity:** {runbook.severity}",
        f"- **RTO target:** {format_duration(runbook.rto_s)}",
        f"- **RPO target:** {format_duration(runbook.rpo_s)}",
        f"- **File:** {_code(runbook.path)} (sha256 {runbook.sha256[:12]})",
        "",
        "## Why",
        "",
        runbook.why.strip(),
        "",
        "## Parameters",
        "",
    ]
    if runbook.params:
        out += ["| Name | Type | Required | Default | Choices | Help |",
                "|---|---|---|---|---|---|"]
        for param in runbook.params.values():
            default = "" if param.default is None else _code(show_value(param.type, param.default))
            choices = ", ".join(show_value(param.type, c) for c in param.choices or ())
            out.append(f"| {_code(param.name)} | {param.type} | "
                       f"{'yes' if param.required else 'no'} | {_cell(default)} | "
                       f"{_cell(choices)} | {_cell(param.help)} |")
    else:
        out.append("None.")
    sections = (("Preflight checks", runbook.preflight), ("Steps", runbook.steps),
                ("On failure", runbook.on_failure))
    for heading, steps in sections:
        if not steps and heading != "Steps":
            continue
        out += ["", f"## {heading}", ""]
        if heading == "Steps" and runbook.keep_going:
            out += ["Every step runs even when one fails; the run fails at the end, "
                    "naming each that failed.", ""]
        out += _step_section(steps)
    return "\n".join(out) + "\n"
