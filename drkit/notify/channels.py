"""Notification channels: each turns one message into its API's documented shape.

No library does this job here: apprise (the broadest) builds Slack's and
PagerDuty's endpoints itself (hooks.slack.com, events.pagerduty.com), has no
Statuspage, sends its own JSON shape to a generic webhook, and does not hand back
what a status page's create returns (the incident id to update). Each API is a
single JSON POST (or PATCH), so the standard library does it: urllib for HTTP,
smtplib for email (docs/internals.md, "Notifications").

A channel's ``deliver`` either returns a one-line detail or raises (an OSError,
urllib's HTTPError, smtplib's errors, DeliveryError): retrying and reporting
are the dispatcher's job.
"""

from __future__ import annotations

import json
import os
import smtplib
import ssl
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from drkit.redact import register_secret


class DeliveryError(Exception):
    """A channel could not deliver (a missing secret, an unexpected answer)."""


@dataclass(frozen=True)
class Message:
    """One rendered notification for one channel."""

    template: str
    event: str  # trigger | update | resolve
    subject: str
    text: str
    severity: str  # SEV1..SEV4
    run_id: str
    runbook: str
    env: str
    step: str | None = None


#: drkit's severity -> PagerDuty's payload.severity.
PD_SEVERITY = {"SEV1": "critical", "SEV2": "error", "SEV3": "warning", "SEV4": "info"}
#: Event -> the status page incident's status.
STATUSPAGE_STATUS = {"trigger": "investigating", "update": "identified", "resolve": "resolved"}

SecretFetcher = Callable[[str, str | None], str]


@dataclass
class Channel:
    """A configured channel: its name, its settings, how to fetch its secrets."""

    name: str
    settings: dict[str, Any]
    project_root: Path
    fetch_secret: SecretFetcher | None = None
    #: What the channel remembers across messages of one run (a status page's
    #: incident id), seeded from the journal on resume.
    state: dict[str, Any] = field(default_factory=dict)
    _secrets: dict[str, str] = field(default_factory=dict)

    kind = "channel"

    def deliver(self, msg: Message, timeout: float) -> str:
        raise NotImplementedError

    def secret(self, key: str) -> str:
        """The secret ``key`` (a webhook URL, a routing key, a password) from the
        variable ``<key>_env`` names or the Secrets Manager id ``<key>_secret``;
        registered with drkit.redact the moment it is read."""
        if key in self._secrets:
            return self._secrets[key]
        value: str | None = None
        if self.settings.get(f"{key}_env"):
            var = str(self.settings[f"{key}_env"])
            value = os.environ.get(var)
            if not value:
                raise DeliveryError(f"{key}: environment variable {var} is not set")
        elif self.settings.get(f"{key}_secret"):
            if self.fetch_secret is None:
                raise DeliveryError(f"{key}: no Secrets Manager to read it from")
            value = self.fetch_secret(str(self.settings[f"{key}_secret"]),
                                      self.settings.get("secret_region"))
        elif self.settings.get(key):
            value = str(self.settings[key])
        if not value:
            raise DeliveryError(f"{key}: not configured")
        register_secret(value)
        self._secrets[key] = value
        return value


def _http_json(method: str, url: str, body: dict[str, Any], timeout: float,
               headers: dict[str, str] | None = None) -> tuple[int, Any]:
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), method=method,
        headers={"Content-Type": "application/json", "User-Agent": "drkit", **(headers or {})},
    )
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        raw = resp.read()
        try:
            data = json.loads(raw) if raw else None
        except ValueError:
            data = raw.decode(errors="replace")
        return resp.status, data


class FileChannel(Channel):
    kind = "file"

    def deliver(self, msg: Message, timeout: float) -> str:
        from datetime import UTC, datetime

        path = Path(self.settings["path"])
        path = path if path.is_absolute() else self.project_root / path
        path.parent.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        with path.open("a") as fh:
            fh.write(f"--- {stamp} {msg.subject}\n{msg.text.rstrip()}\n")
        return f"appended to {path}"


class StdoutChannel(Channel):
    kind = "stdout"

    def deliver(self, msg: Message, timeout: float) -> str:
        print(msg.text, flush=True)
        return "printed"


class WebhookChannel(Channel):
    """A generic JSON webhook: POST {subject, text, event, template, severity, run}."""

    kind = "webhook"

    def deliver(self, msg: Message, timeout: float) -> str:
        body = {"subject": msg.subject, "text": msg.text, "event": msg.event,
                "template": msg.template, "severity": msg.severity,
                "run": {"id": msg.run_id, "runbook": msg.runbook, "env": msg.env,
                        "step": msg.step}}
        status, _ = _http_json("POST", self.secret("url"), body, timeout)
        return f"HTTP {status}"


class SlackChannel(Channel):
    """A Slack incoming webhook: ``text`` (the notification's fallback) and
    ``blocks`` (a header and the body as mrkdwn)."""

    kind = "slack"

    def deliver(self, msg: Message, timeout: float) -> str:
        body = {
            "text": msg.text[:3000],
            "blocks": [
                {"type": "header", "text": {"type": "plain_text", "text": msg.subject[:150]}},
                {"type": "section", "text": {"type": "mrkdwn", "text": msg.text[:3000]}},
                {"type": "context", "elements": [{
                    "type": "mrkdwn",
                    "text": f"{msg.severity} · {msg.runbook} · run {msg.run_id} · {msg.env}"}]},
            ],
        }
        status, _ = _http_json("POST", self.secret("url"), body, timeout)
        return f"HTTP {status}"


class PagerDutyChannel(Channel):
    """PagerDuty Events API v2: a trigger opens (or, with the same dedup_key,
    updates) the alert; a resolve closes it. The dedup_key is the run's own, so
    a resumed run resolves what it triggered."""

    kind = "pagerduty"
    DEFAULT_URL = "https://events.pagerduty.com/v2/enqueue"

    def deliver(self, msg: Message, timeout: float) -> str:
        body: dict[str, Any] = {"routing_key": self.secret("routing_key"),
                                "dedup_key": dedup_key(msg.env, msg.run_id)}
        if msg.event == "resolve":
            body["event_action"] = "resolve"
        else:
            body["event_action"] = "trigger"
            body["payload"] = {
                "summary": msg.subject[:1024],
                "source": str(self.settings.get("source") or f"drkit/{msg.env}"),
                "severity": PD_SEVERITY.get(msg.severity, "error"),
                "component": msg.runbook,
                "custom_details": {"run_id": msg.run_id, "template": msg.template,
                                   "text": msg.text},
            }
            body["client"] = "drkit"
        url = str(self.settings.get("url") or self.DEFAULT_URL)
        status, data = _http_json("POST", url, body, timeout)
        return f"HTTP {status} {body['event_action']} dedup_key {body['dedup_key']}" + (
            f" ({data.get('message')})" if isinstance(data, dict) and data.get("message") else "")


def dedup_key(env: str, run_id: str) -> str:
    """The PagerDuty dedup_key of a run: derived from its id, the same on resume."""
    return f"drkit/{env}/{run_id}"


class StatusPageChannel(Channel):
    """A Statuspage-style incident API: the first message creates the incident
    (POST pages/{page_id}/incidents), later ones update it by id (PATCH
    .../incidents/{id}) with the status its event maps to."""

    kind = "statuspage"
    DEFAULT_URL = "https://api.statuspage.io/v1"

    def deliver(self, msg: Message, timeout: float) -> str:
        base = str(self.settings.get("url") or self.DEFAULT_URL).rstrip("/")
        page = str(self.settings["page_id"])
        headers = {"Authorization": f"OAuth {self.secret('api_key')}"}
        status_name = STATUSPAGE_STATUS[msg.event]
        incident_id = self.state.get("incident_id")
        if incident_id:
            body = {"incident": {"status": status_name, "body": msg.text}}
            status, _ = _http_json("PATCH", f"{base}/pages/{page}/incidents/{incident_id}",
                                   body, timeout, headers)
            return f"HTTP {status} updated incident {incident_id} ({status_name})"
        body = {"incident": {"name": msg.subject[:255], "status": status_name,
                             "body": msg.text}}
        if self.settings.get("component_ids"):
            body["incident"]["component_ids"] = list(self.settings["component_ids"])
        status, data = _http_json("POST", f"{base}/pages/{page}/incidents", body, timeout,
                                  headers)
        if not isinstance(data, dict) or not data.get("id"):
            raise DeliveryError(f"HTTP {status} but the answer holds no incident id")
        self.state["incident_id"] = str(data["id"])
        return f"HTTP {status} created incident {data['id']} ({status_name})"


class EmailChannel(Channel):
    """Email over SMTP (STARTTLS and login when configured)."""

    kind = "email"

    def deliver(self, msg: Message, timeout: float) -> str:
        s = self.settings
        to = [s["to"]] if isinstance(s["to"], str) else list(s["to"])
        mail = EmailMessage()
        mail["Subject"] = f"[{msg.severity}] {msg.subject}"
        mail["From"] = s["from"]
        mail["To"] = ", ".join(to)
        mail["X-Drkit-Run"] = msg.run_id
        mail.set_content(msg.text)
        port = int(s.get("port") or (465 if s.get("ssl") else 25))
        smtp_cls = smtplib.SMTP_SSL if s.get("ssl") else smtplib.SMTP
        with smtp_cls(str(s["host"]), port, timeout=timeout) as smtp:
            if s.get("starttls"):
                smtp.starttls(context=ssl.create_default_context())
            if s.get("username"):
                smtp.login(str(s["username"]), self.secret("password"))
            refused = smtp.send_message(mail, to_addrs=to)
        if refused:
            raise DeliveryError(f"refused recipients: {', '.join(sorted(refused))}")
        return f"sent to {len(to)} recipient(s) via {s['host']}:{port}"


CHANNEL_CLASSES: dict[str, type[Channel]] = {
    c.kind: c for c in (FileChannel, StdoutChannel, WebhookChannel, SlackChannel,
                        PagerDutyChannel, StatusPageChannel, EmailChannel)
}
