"""``drkit.notify`` (channels, delivery policy) and ``drkit.severities`` (SEV1..4:
the plans' activation criteria, who is notified, how often) in an environment's
settings: every problem with its dotted path (docs/internals.md, "Notifications").
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from drkit.durations import parse_duration

SEVERITIES = ("SEV1", "SEV2", "SEV3", "SEV4")
CHANNEL_TYPES = ("email", "file", "pagerduty", "slack", "statuspage", "stdout", "webhook")
#: Per type: required plain fields, optional plain fields, and secrets (each
#: given as <name>_env or <name>_secret; required unless listed optional).
_COMMON = {"type", "templates", "secret_region"}
_FIELDS: dict[str, dict[str, set[str]]] = {
    "file": {"required": {"path"}, "optional": set(), "secrets": set()},
    "stdout": {"required": set(), "optional": set(), "secrets": set()},
    "webhook": {"required": set(), "optional": set(), "secrets": {"url"}},
    "slack": {"required": set(), "optional": set(), "secrets": {"url"}},
    "pagerduty": {"required": set(), "optional": {"url", "source"}, "secrets": {"routing_key"}},
    "statuspage": {"required": {"page_id"}, "optional": {"url", "component_ids"},
                   "secrets": {"api_key"}},
    "email": {"required": {"host", "from", "to"},
              "optional": {"port", "starttls", "ssl", "username"}, "secrets": {"password"}},
}
#: A generic webhook's URL may be written out (an internal endpoint); the others
#: are credentials and never live in a file in the repository.
_PLAIN_ALLOWED = {("webhook", "url")}
_NOTIFY_KEYS = {"channels", "timeout", "retries", "backoff"}
_SEVERITY_KEYS = {"criteria", "response", "activation", "notify", "updates"}
DEFAULTS = {"timeout": 10.0, "retries": 2, "backoff": 1.0}


def normalize_severity(text: str) -> str | None:
    """``SEV1`` for SEV1, SEV-1, sev1 or 1; None when it is not a severity."""
    t = str(text).strip().upper().replace("-", "").replace("_", "")
    t = t if t.startswith("SEV") else f"SEV{t}"
    return t if t in SEVERITIES else None


def policy(settings: dict[str, Any]) -> dict[str, float]:
    """Delivery policy: timeout (s) per attempt, retries after the first, backoff (s)."""
    notify = settings.get("notify") or {}
    return {"timeout": parse_duration(notify.get("timeout", DEFAULTS["timeout"])),
            "retries": int(notify.get("retries", DEFAULTS["retries"])),
            "backoff": parse_duration(notify.get("backoff", DEFAULTS["backoff"]))}


def problems(settings: dict[str, Any], project_root: Path | None = None) -> list[str]:
    """Problems in ``drkit.notify`` and ``drkit.severities``. Templates a channel
    names are rendered with the sample context when ``project_root`` is given."""
    out: list[str] = []
    channels: dict[str, Any] = {}
    notify = settings.get("notify")
    if notify is not None:
        if not isinstance(notify, dict):
            return ["drkit.notify: expected a mapping"]
        out += [f"drkit.notify.{k}: unknown key; expected one of: {', '.join(sorted(_NOTIFY_KEYS))}"
                for k in notify if k not in _NOTIFY_KEYS]
        for key in ("timeout", "backoff"):
            if key in notify:
                out += _duration(notify[key], f"drkit.notify.{key}", allow_zero=key == "backoff")
        retries = notify.get("retries", 0)
        if not (isinstance(retries, int) and not isinstance(retries, bool) and 0 <= retries <= 10):
            out.append(f"drkit.notify.retries: expected a whole number 0-10, got {retries!r}")
        channels = notify.get("channels") or {}
        if not isinstance(channels, dict):
            out.append("drkit.notify.channels: expected a mapping of name -> channel")
            channels = {}
        for name, ch in channels.items():
            out += _channel_problems(str(name), ch, project_root)
    out += _severity_problems(settings.get("severities"), channels)
    return out


def _duration(value: Any, path: str, *, allow_zero: bool = False) -> list[str]:
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        return [f"{path}: {exc}"]
    if seconds < 0 or (seconds == 0 and not allow_zero):
        return [f"{path}: expected a duration greater than 0"]
    return []


def _channel_problems(name: str, ch: Any, project_root: Path | None) -> list[str]:
    from drkit.notify.templates import EVENT_KINDS, check_template, known_templates

    path = f"drkit.notify.channels.{name}"
    if not isinstance(ch, dict):
        return [f"{path}: expected a mapping with a type"]
    kind = ch.get("type")
    if kind not in _FIELDS:
        return [f"{path}.type: {kind!r} is not one of {', '.join(CHANNEL_TYPES)}"]
    spec = _FIELDS[kind]
    allowed = _COMMON | spec["required"] | spec["optional"]
    for secret in spec["secrets"]:
        allowed |= {f"{secret}_env", f"{secret}_secret"}
        if (kind, secret) in _PLAIN_ALLOWED:
            allowed.add(secret)
    out = []
    for key in ch:
        if key in spec["secrets"] and key not in allowed:
            out.append(f"{path}.{key}: a credential is never written in a settings file; "
                       f"give {key}_env (an environment variable) or {key}_secret "
                       "(a Secrets Manager secret id)")
        elif key not in allowed:
            out.append(f"{path}.{key}: unknown key for {_a(kind)} channel; expected one of: "
                       f"{', '.join(sorted(allowed))}")
    for key in sorted(spec["required"]):
        if ch.get(key) in (None, "", []):
            out.append(f"{path}.{key}: missing; {_a(kind)} channel needs {key}")
    for secret in sorted(spec["secrets"]):
        given = [k for k in (secret, f"{secret}_env", f"{secret}_secret")
                 if ch.get(k) not in (None, "")]
        optional = kind == "email" and not ch.get("username")
        if len(given) > 1:
            out.append(f"{path}.{secret}: give one of {', '.join(given)}")
        elif not given and not optional:
            how = f"{secret}_env or {secret}_secret" + (
                f" (or {secret})" if (kind, secret) in _PLAIN_ALLOWED else "")
            out.append(f"{path}.{secret}: missing; {_a(kind)} channel needs {how}")
    if kind == "email":
        to = ch.get("to")
        if to is not None and not (isinstance(to, str) or (
                isinstance(to, list) and to and all(isinstance(t, str) for t in to))):
            out.append(f"{path}.to: expected an address or a list of addresses")
        port = ch.get("port", 25)
        if not (isinstance(port, int) and not isinstance(port, bool) and 0 < port < 65536):
            out.append(f"{path}.port: expected a port 1-65535, got {port!r}")
    templates = ch.get("templates")
    if templates is not None:
        if not isinstance(templates, dict):
            out.append(f"{path}.templates: expected a mapping of event -> template "
                       f"({', '.join(EVENT_KINDS)})")
        else:
            for event, tname in templates.items():
                tpath = f"{path}.templates.{event}"
                if event not in EVENT_KINDS:
                    out.append(f"{tpath}: unknown event; expected one of: "
                               f"{', '.join(EVENT_KINDS)}")
                elif project_root is not None:
                    if tname not in known_templates(project_root):
                        out.append(f"{tpath}: unknown template {tname!r}; known: "
                                   f"{', '.join(known_templates(project_root))}")
                    elif problem := check_template(str(tname), project_root):
                        out.append(f"{tpath}: {problem}")
    return out


def _a(word: str) -> str:
    return f"an {word}" if word[0] in "aeiou" else f"a {word}"


def _severity_problems(sev: Any, channels: dict[str, Any]) -> list[str]:
    if sev is None:
        return []
    if not isinstance(sev, dict):
        return ["drkit.severities: expected a mapping SEV1..SEV4 -> {criteria, notify, updates}"]
    out = []
    for level, spec in sev.items():
        path = f"drkit.severities.{level}"
        if level not in SEVERITIES:
            out.append(f"{path}: not a severity; expected one of: {', '.join(SEVERITIES)}")
            continue
        if not isinstance(spec, dict):
            out.append(f"{path}: expected a mapping")
            continue
        out += [f"{path}.{k}: unknown key; expected one of: {', '.join(sorted(_SEVERITY_KEYS))}"
                for k in spec if k not in _SEVERITY_KEYS]
        crit = spec.get("criteria", [])
        if not (isinstance(crit, list) and all(isinstance(c, str) for c in crit)):
            out.append(f"{path}.criteria: expected a list of sentences")
        if spec.get("activation", "manual") not in ("automatic", "manual"):
            out.append(f"{path}.activation: {spec.get('activation')!r} is not automatic "
                       "or manual")
        names = spec.get("notify", [])
        if not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
            out.append(f"{path}.notify: expected a list of channel names")
            names = []
        for n in names:
            if n not in channels:
                out.append(f"{path}.notify: {n!r} is not a channel "
                           f"({', '.join(sorted(channels)) or 'none defined'})")
        updates = spec.get("updates", {})
        if not isinstance(updates, dict):
            out.append(f"{path}.updates: expected a mapping channel -> interval")
            continue
        for n, every in updates.items():
            if n not in names:
                out.append(f"{path}.updates.{n}: not among {path}.notify")
            out += _duration(every, f"{path}.updates.{n}")
    return out
