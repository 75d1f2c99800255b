"""Notification templates: Jinja2 files rendered in strict mode.

Looked up in the project's ``runbooks/templates/<name>.md.j2`` first, then in
drkit's own (``drkit/templates/notify``: the seeds' STATUS-PAGE, EXEC-UPDATE,
VALIDATOR-ALERT, initial notification, ongoing update and resolution). A name
a template uses that the context does not hold is an error, found when the
environment is loaded (``check_template``) rather than mid-incident.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2

from drkit.errors import ConfigError
from drkit.redact import redact

BUILTIN = Path(__file__).resolve().parent.parent / "templates" / "notify"

#: What each built-in template means to a channel with incident semantics
#: (PagerDuty, a status page): open the incident, update it, or resolve it.
#: A project's own template is an update unless its name says otherwise.
EVENTS: dict[str, str] = {
    "status-investigating": "trigger",
    "initial-notification": "trigger",
    "validator-alert": "trigger",
    "status-identified": "update",
    "ongoing-update": "update",
    "exec-update": "update",
    "status-resolved": "resolve",
    "resolution": "resolve",
}
EVENT_KINDS = ("trigger", "update", "resolve")


def event_of(template: str) -> str:
    """``trigger``, ``update`` or ``resolve`` for a template name."""
    if template in EVENTS:
        return EVENTS[template]
    return "resolve" if "resolv" in template else "update"


def template_dirs(project_root: Path) -> list[Path]:
    return [project_root / "runbooks" / "templates", BUILTIN]


def known_templates(project_root: Path) -> list[str]:
    return sorted({p.name.removesuffix(".md.j2") for d in template_dirs(project_root)
                   for p in d.glob("*.md.j2")})


def _environment(project_root: Path) -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader([str(d) for d in template_dirs(project_root)]),
        undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False,
    )


def render_template(name: str, context: dict[str, Any], project_root: Path) -> str:
    """Render a notification template in strict mode (an unknown variable is an
    error) with secrets masked. ``now`` is the UTC time; the rest is ``context``."""
    try:
        template = _environment(project_root).get_template(f"{name}.md.j2")
    except jinja2.TemplateNotFound:
        raise ConfigError(
            f"unknown notification template '{name}'",
            hint=f"known templates: {', '.join(known_templates(project_root))}",
        ) from None
    except jinja2.TemplateSyntaxError as exc:
        raise ConfigError(f"template {name}: line {exc.lineno}: {exc.message}") from None
    ctx = {"now": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S"), **context}
    try:
        return redact(template.render(**ctx))
    except jinja2.UndefinedError as exc:
        raise ConfigError(f"template {name}: {exc.message}") from None


def sample_context() -> dict[str, Any]:
    """The names every notification can use, with placeholder values: what a
    template is checked against when the environment loads. A runbook's notify
    step adds its own (params, steps, env, targets); the cadence's updates have
    only these."""
    return {
        "run": {"id": "20260101T000000Z-RB-SAMPLE", "runbook": "RB-SAMPLE", "env": "sample",
                "started_at": "2026-01-01T00:00:00.000000Z", "dry_run": False},
        "severity": severity_context("SEV1", {}),
        "progress": {"elapsed": "0s", "running": [], "completed": [], "failed": [],
                     "decisions": [], "rto_target": "30m"},
        "vars": {},
    }


def severity_context(level: str, settings: dict[str, Any], next_update: str | None = None
                     ) -> dict[str, Any]:
    """What templates see as ``severity``: the level, the plans' spelling (SEV-1),
    its criteria and response from the environment's settings."""
    return {"level": level, "label": f"SEV-{level.removeprefix('SEV')}",
            "criteria": list(settings.get("criteria") or []),
            "response": settings.get("response") or "",
            "next_update": next_update}


def check_template(name: str, project_root: Path) -> str | None:
    """A problem rendering ``name`` with the sample context, or None."""
    try:
        render_template(name, sample_context(), project_root)
    except ConfigError as exc:
        return exc.message
    return None
