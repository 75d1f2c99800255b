"""Notifications: render a Jinja2 template and send it to the environment's channels.

Templates are looked up in the project's ``runbooks/templates/<name>.md.j2``
first, then in drkit's own (the seeds' status-page templates). Channels come
from the environment (``drkit.notify.channels``): ``file`` appends to a file,
``stdout`` prints, ``webhook`` POSTs JSON. A dry run renders and shows, sends
nothing.
"""

from __future__ import annotations

import json
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2

from drkit.errors import ConfigError
from drkit.redact import redact

_BUILTIN = Path(__file__).parent / "templates" / "notify"


@dataclass(frozen=True)
class Delivery:
    channel: str
    sent: bool
    detail: str


def template_dirs(project_root: Path) -> list[Path]:
    return [project_root / "runbooks" / "templates", _BUILTIN]


def render_template(name: str, context: dict[str, Any], project_root: Path) -> str:
    """Render a notification template in strict mode (an unknown variable is an error)."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader([str(d) for d in template_dirs(project_root)]),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    try:
        template = env.get_template(f"{name}.md.j2")
    except jinja2.TemplateNotFound:
        known = sorted(
            {p.name.removesuffix(".md.j2") for d in template_dirs(project_root)
             for p in d.glob("*.md.j2")}
        )
        raise ConfigError(
            f"unknown notification template '{name}'",
            hint=f"known templates: {', '.join(known)}",
        ) from None
    ctx = {"now": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S"), **context}
    try:
        return redact(template.render(**ctx))
    except jinja2.UndefinedError as exc:
        raise ConfigError(f"template {name}: {exc.message}") from None


def send(text: str, channels: dict[str, dict[str, Any]], names: list[str] | None, *,
         project_root: Path, dry_run: bool, subject: str) -> list[Delivery]:
    """Send ``text`` to the named channels (all when ``names`` is empty)."""
    chosen = names or sorted(channels)
    unknown = [n for n in chosen if n not in channels]
    if unknown:
        raise ConfigError(
            f"unknown notification channel(s): {', '.join(unknown)}",
            hint=f"channels of this environment: {', '.join(sorted(channels)) or 'none'}",
        )
    out = []
    for name in chosen:
        ch = channels[name]
        if dry_run:
            out.append(Delivery(name, False, "dry run: not sent"))
            continue
        kind = ch["type"]
        if kind == "file":
            path = Path(ch["path"])
            path = path if path.is_absolute() else project_root / path
            path.parent.mkdir(parents=True, exist_ok=True)
            stamp = datetime.now(UTC).isoformat(timespec="seconds")
            with path.open("a") as fh:
                fh.write(f"--- {stamp} {subject}\n{text.rstrip()}\n")
            out.append(Delivery(name, True, f"appended to {path}"))
        elif kind == "stdout":
            print(text)
            out.append(Delivery(name, True, "printed"))
        else:
            body = json.dumps({"subject": subject, "text": text}).encode()
            req = urllib.request.Request(
                ch["url"], data=body, headers={"Content-Type": "application/json"}
            )
            try:
                with urllib.request.urlopen(req, timeout=10) as resp:
                    out.append(Delivery(name, True, f"HTTP {resp.status}"))
            except OSError as exc:
                out.append(Delivery(name, False, f"failed: {exc}"))
    return out
