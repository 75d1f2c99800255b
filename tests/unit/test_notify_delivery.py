"""Notifications reach real local servers in each API's documented shape, and a
channel that fails never fails the run.

An HTTP receiver (http.server in a thread) stands in for Slack's incoming
webhook, PagerDuty's Events API v2, a Statuspage-style incident API and a
generic webhook; aiosmtpd receives the email. Runs go through the real `drkit`
command in a throwaway project (tests/conftest.py's workspace).
"""

from __future__ import annotations

import json
import socket
import threading
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from drkit.errors import ExitCode
from drkit.journal import read_events

SLACK_PATH = "/services/T000/B000/XXXXSECRETXXXX"
ROUTING_KEY = "R0UTINGKEY0123456789abcdef"
API_KEY = "sp-api-key-0123456789"
SMTP_PASSWORD = "smtp-pass-0123456789"


class Receiver:
    """An HTTP server that records every request and answers like the real APIs."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"null")
                with receiver.lock:
                    receiver.requests.append({"method": self.command, "path": self.path,
                                              "headers": dict(self.headers), "body": body})
                    n = len(receiver.requests)
                if self.path == "/v2/enqueue":
                    self._answer(202, {"status": "success", "message": "Event processed",
                                       "dedup_key": body.get("dedup_key")})
                elif self.path.endswith("/incidents") and self.command == "POST":
                    self._answer(201, {"id": f"inc{n}", **body["incident"]})
                elif "/incidents/" in self.path:
                    self._answer(200, {"id": self.path.rsplit("/", 1)[1], **body["incident"]})
                elif self.path == "/broken":
                    self._answer(500, {"error": "down"})
                else:
                    self.send_response(200)
                    self.end_headers()
                    self.wfile.write(b"ok")

            def _answer(self, code: int, data: dict[str, Any]) -> None:
                raw = json.dumps(data).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            do_POST = do_PATCH = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def on(self, path_prefix: str) -> list[dict[str, Any]]:
        with self.lock:
            return [r for r in self.requests if r["path"].startswith(path_prefix)]


@pytest.fixture
def receiver():
    r = Receiver()
    r.thread.start()
    yield r
    r.server.shutdown()
    r.server.server_close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


RUNBOOK = """\
id: RB-NOTIFY-001
title: Declare, recover, resolve
why: Exercises every notification channel.
severity: SEV1
targets: {rto: 5m, rpo: 0s}
params:
  hold: {type: float, default: 0, help: seconds the recovery takes}
  flag: {type: str, default: runbooks, help: a path that must exist to recover}
steps:
  - id: declare
    notify: {template: status-investigating, vars: {title: "Failover drill", issue: "a drill"}}
  - id: recover
    action: {name: local.wait, args: {seconds: "{{ params.hold }}"}}
  - id: verify
    marks: {finish: service_restored}
    check: {probe: local.path, args: {path: "{{ params.flag }}"}, expect: "result.exists"}
  - id: resolved
    notify: {template: status-resolved, vars: {resolution: "the drill is over"}}
"""


def _project(workspace, channels: dict[str, Any], severities: dict[str, Any] | None = None,
             **notify: Any) -> None:
    (workspace.root / "runbooks" / "RB-NOTIFY-001-drill.yml").write_text(RUNBOOK)
    settings = {"drkit": {"estate": "test",
                          "regions": {"local": {"cloud_region": "local", "role": "primary"}},
                          "notify": {"channels": channels, "timeout": "2s", "retries": 2,
                                     "backoff": 0.05, **notify}}}
    if severities:
        settings["drkit"]["severities"] = severities
    path = workspace.root / "inventory" / "test" / "group_vars" / "all" / "drkit.yml"
    path.write_text(yaml.safe_dump(settings))


def _all_channels(receiver: Receiver, smtp_port: int) -> dict[str, Any]:
    return {
        "slack": {"type": "slack", "url_env": "TEST_SLACK_URL"},
        "pager": {"type": "pagerduty", "routing_key_env": "TEST_PD_KEY",
                  "url": f"{receiver.url}/v2/enqueue", "source": "drkit-test"},
        "status": {"type": "statuspage", "page_id": "page1", "api_key_env": "TEST_SP_KEY",
                   "url": f"{receiver.url}/v1"},
        "hook": {"type": "webhook", "url": f"{receiver.url}/hook"},
        "execs": {"type": "email", "host": "127.0.0.1", "port": smtp_port,
                  "from": "drkit@example.org", "to": ["cto@example.org", "vp@example.org"],
                  "username": "drkit", "password_env": "TEST_SMTP_PASSWORD",
                  "templates": {"trigger": "exec-update", "update": "exec-update",
                                "resolve": "resolution"}},
        "log": {"type": "file", "path": ".drkit/notifications.log"},
    }


@pytest.fixture
def secrets(monkeypatch, receiver):
    monkeypatch.setenv("TEST_SLACK_URL", f"{receiver.url}{SLACK_PATH}")
    monkeypatch.setenv("TEST_PD_KEY", ROUTING_KEY)
    monkeypatch.setenv("TEST_SP_KEY", API_KEY)
    monkeypatch.setenv("TEST_SMTP_PASSWORD", SMTP_PASSWORD)


def _notifications(run: Path) -> list[dict[str, Any]]:
    return [e for e in read_events(run / "journal.jsonl") if e["event"] == "notification"]


@pytest.fixture
def smtp_auth():
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult

    class Handler:
        def __init__(self) -> None:
            self.mails: list[Any] = []
            self.logins: list[tuple[str, str]] = []

        async def handle_DATA(self, server, session, envelope):  # aiosmtpd calls it so
            self.mails.append((envelope.rcpt_tos, message_from_bytes(envelope.content)))
            return "250 OK"

    handler = Handler()

    def authenticator(server, session, envelope, mechanism, auth_data):
        handler.logins.append((auth_data.login.decode(), auth_data.password.decode()))
        return AuthResult(success=auth_data.password.decode() == SMTP_PASSWORD)

    controller = Controller(handler, hostname="127.0.0.1", port=_free_port(),
                            authenticator=authenticator, auth_require_tls=False)
    controller.start()
    yield controller, handler
    controller.stop()


def test_a_run_notifies_every_channel_in_its_documented_shape(workspace, receiver, smtp_auth,
                                                             secrets):
    controller, mailbox = smtp_auth
    _project(workspace, _all_channels(receiver, controller.port))
    out = workspace.drkit("run", "RB-NOTIFY-001")
    assert out.returncode == 0, out.stdout + out.stderr
    run = workspace.only_run()

    # Slack incoming webhook: text (the fallback) and blocks.
    slack = receiver.on("/services/")
    assert [r["method"] for r in slack] == ["POST", "POST"]
    assert slack[0]["body"]["text"].startswith("[INVESTIGATING] Failover drill")
    assert [b["type"] for b in slack[0]["body"]["blocks"]] == ["header", "section", "context"]
    assert slack[0]["body"]["blocks"][0]["text"] == {
        "type": "plain_text", "text": "[INVESTIGATING] Failover drill"}
    assert slack[1]["body"]["text"].startswith("[RESOLVED]")

    # PagerDuty Events API v2: trigger, then resolve with the same dedup_key.
    trigger, resolve = (r["body"] for r in receiver.on("/v2/enqueue"))
    assert trigger["routing_key"] == ROUTING_KEY and trigger["event_action"] == "trigger"
    assert set(trigger["payload"]) >= {"summary", "source", "severity"}
    assert trigger["payload"]["summary"] == "[INVESTIGATING] Failover drill"
    assert trigger["payload"]["source"] == "drkit-test"
    assert trigger["payload"]["severity"] == "critical"  # SEV1
    assert resolve == {"routing_key": ROUTING_KEY, "event_action": "resolve",
                       "dedup_key": trigger["dedup_key"]}
    assert run.name in trigger["dedup_key"]

    # Statuspage: create the incident, then update it by its id.
    create, update = receiver.on("/v1/pages/page1/incidents")
    assert create["method"] == "POST" and create["path"] == "/v1/pages/page1/incidents"
    assert create["headers"]["Authorization"] == f"OAuth {API_KEY}"
    assert set(create["body"]["incident"]) >= {"name", "status", "body"}
    assert create["body"]["incident"]["status"] == "investigating"
    incident_id = "inc" + str(receiver.requests.index(create) + 1)
    assert update["method"] == "PATCH"
    assert update["path"] == f"/v1/pages/page1/incidents/{incident_id}"
    assert update["body"]["incident"]["status"] == "resolved"
    assert "[RESOLVED]" in update["body"]["incident"]["body"]

    # The generic webhook: one JSON object per message.
    hook = [r["body"] for r in receiver.on("/hook")]
    assert [(h["event"], h["template"], h["severity"]) for h in hook] == [
        ("trigger", "status-investigating", "SEV1"), ("resolve", "status-resolved", "SEV1")]
    assert hook[0]["run"]["id"] == run.name

    # Email: the executives' own templates, after logging in with the password.
    assert mailbox.logins and mailbox.logins[0] == ("drkit", SMTP_PASSWORD)
    subjects = [m["Subject"] for _, m in mailbox.mails]
    assert subjects[0].startswith("[SEV1] Incident Update - SEV-1 - Failover drill")
    assert subjects[1].startswith("[SEV1] INCIDENT RESOLVED")
    assert mailbox.mails[0][0] == ["cto@example.org", "vp@example.org"]

    # Every delivery is journaled, ok; the report lists them; no secret anywhere.
    rows = _notifications(run)
    assert {(r["channel"], r["ok"]) for r in rows} == {
        (c, True) for c in ("slack", "pager", "status", "hook", "execs", "log")}
    assert len(rows) == 12
    report = (run / "report.md").read_text()
    assert "## Notifications" in report and "12 delivered, 0 failed" in report
    written = "".join(p.read_text(errors="replace") for p in run.rglob("*") if p.is_file())
    for secret in (SLACK_PATH, ROUTING_KEY, API_KEY, SMTP_PASSWORD):
        assert secret not in written + out.stdout + out.stderr


def test_a_dead_channel_is_retried_reported_and_the_run_still_succeeds(workspace, receiver):
    dead = _free_port()  # nothing listens: connection refused
    _project(workspace, {"dead": {"type": "webhook", "url": f"http://127.0.0.1:{dead}/x"},
                         "broken": {"type": "webhook", "url": f"{receiver.url}/broken"},
                         "hook": {"type": "webhook", "url": f"{receiver.url}/hook"},
                         "unset": {"type": "slack", "url_env": "DRKIT_TEST_NEVER_SET"}})
    out = workspace.drkit("run", "RB-NOTIFY-001")
    assert out.returncode == 0, out.stdout + out.stderr
    run = workspace.only_run()
    rows = _notifications(run)
    dead_rows = [r for r in rows if r["channel"] == "dead"]
    assert [(r["ok"], r["attempts"]) for r in dead_rows] == [(False, 3), (False, 3)]
    assert "connection refused" in dead_rows[0]["detail"]
    broken = [r for r in rows if r["channel"] == "broken"]
    assert broken[0]["attempts"] == 3 and "HTTP 500" in broken[0]["detail"]
    assert len(receiver.on("/broken")) == 6  # 2 messages x 3 attempts
    assert [r["ok"] for r in rows if r["channel"] == "hook"] == [True, True]
    unset = [r for r in rows if r["channel"] == "unset"]  # not worth retrying
    assert [(r["ok"], r["attempts"]) for r in unset] == [(False, 1), (False, 1)]
    assert "environment variable DRKIT_TEST_NEVER_SET is not set" in unset[0]["detail"]
    report = json.loads((run / "report.json").read_text())
    assert report["status"] == "succeeded"
    md = (run / "report.md").read_text()
    assert "2 delivered, 6 failed" in md and "**dead**" in md
    assert "notification to dead" in out.stdout + out.stderr


def test_the_severity_decides_who_hears_and_severity_overrides_it(workspace, receiver):
    channels = {"pager": {"type": "webhook", "url": f"{receiver.url}/pager"},
                "users": {"type": "webhook", "url": f"{receiver.url}/users"}}
    severities = {"SEV1": {"notify": ["pager", "users"]}, "SEV4": {"notify": ["users"]}}
    _project(workspace, channels, severities)
    assert workspace.drkit("run", "RB-NOTIFY-001", "--severity", "SEV-4").returncode == 0
    assert len(receiver.on("/users")) == 2 and receiver.on("/pager") == []
    assert receiver.on("/users")[0]["body"]["severity"] == "SEV4"
    assert workspace.drkit("run", "RB-NOTIFY-001").returncode == 0  # the runbook's SEV1
    assert len(receiver.on("/pager")) == 2


def test_a_long_run_sends_ongoing_updates_on_the_severity_cadence(workspace, receiver):
    channels = {"status": {"type": "webhook", "url": f"{receiver.url}/status"},
                "execs": {"type": "webhook", "url": f"{receiver.url}/execs",
                          "templates": {"update": "exec-update"}},
                "quiet": {"type": "webhook", "url": f"{receiver.url}/quiet"}}
    severities = {"SEV1": {"notify": ["status", "execs", "quiet"],
                           "updates": {"status": 0.1, "execs": 0.1}}}
    _project(workspace, channels, severities)
    out = workspace.drkit("run", "RB-NOTIFY-001", "--param", "hold=1.5")
    assert out.returncode == 0, out.stdout + out.stderr
    status = [r["body"] for r in receiver.on("/status")]
    assert status[0]["template"] == "status-investigating"
    assert status[-1]["template"] == "status-resolved"
    updates = [b for b in status if b["template"] == "ongoing-update"]
    assert updates and all(b["event"] == "update" for b in updates)
    assert updates[0]["text"].startswith("INCIDENT UPDATE")
    assert "Severity: SEV-1" in updates[0]["text"]
    assert any(b["template"] == "exec-update" for b in
               (r["body"] for r in receiver.on("/execs")))
    quiet = [r["body"]["template"] for r in receiver.on("/quiet")]
    assert quiet == ["status-investigating", "status-resolved"]  # no cadence for it
    # The ticker stopped with the run: every delivery was journaled before it ended.
    events = read_events(workspace.only_run() / "journal.jsonl")
    assert events[-1]["event"] == "run_finished"
    assert sum(e["event"] == "notification" for e in events) == len(receiver.requests)


def test_a_resumed_run_resolves_what_it_triggered(workspace, receiver, secrets, tmp_path):
    channels = {"pager": {"type": "pagerduty", "routing_key_env": "TEST_PD_KEY",
                          "url": f"{receiver.url}/v2/enqueue"},
                "status": {"type": "statuspage", "page_id": "p", "api_key_env": "TEST_SP_KEY",
                           "url": f"{receiver.url}/v1"}}
    _project(workspace, channels)
    flag = tmp_path / "recovered"
    out = workspace.drkit("run", "RB-NOTIFY-001", "--param", f"flag={flag}")
    assert out.returncode == ExitCode.STEP_FAILED
    run = workspace.only_run()
    flag.write_text("yes")
    out = workspace.drkit("resume", run.name)
    assert out.returncode == 0, out.stdout + out.stderr
    trigger, resolve = (r["body"] for r in receiver.on("/v2/enqueue"))
    assert trigger["event_action"] == "trigger" and resolve["event_action"] == "resolve"
    assert resolve["dedup_key"] == trigger["dedup_key"]
    create, update = receiver.on("/v1/")
    assert create["method"] == "POST" and update["method"] == "PATCH"
    opened = f"inc{receiver.requests.index(create) + 1}"  # the receiver's id for it
    assert update["path"] == f"/v1/pages/p/incidents/{opened}"  # the first run's incident


def test_a_dry_run_renders_but_sends_nothing(workspace, receiver):
    _project(workspace, {"hook": {"type": "webhook", "url": f"{receiver.url}/hook"}})
    out = workspace.drkit("run", "RB-NOTIFY-001", "--dry-run")
    assert out.returncode == 0, out.stdout + out.stderr
    assert receiver.requests == []
    assert "would send status-investigating to hook" in out.stdout


@pytest.mark.parametrize(("channels", "severity", "expected"), [
    ({"x": {"type": "fax"}}, "", "drkit.notify.channels.x.type: 'fax' is not one of"),
    ({"x": {"type": "pagerduty"}}, "",
     "drkit.notify.channels.x.routing_key: missing; a pagerduty channel needs"),
    ({"x": {"type": "stdout", "templates": {"update": "nope"}}}, "",
     "drkit.notify.channels.x.templates.update: unknown template 'nope'"),
    ({"x": {"type": "stdout"}}, "SEV9", "--severity 'SEV9': not a severity"),
])
def test_bad_notification_input_is_refused_with_exit_2_and_nothing_written(
        workspace, channels, severity, expected):
    _project(workspace, channels)
    args = ["run", "RB-NOTIFY-001"] + (["--severity", severity] if severity else [])
    out = workspace.drkit(*args)
    assert out.returncode == ExitCode.BAD_INPUT, out.stdout + out.stderr
    assert expected in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert not workspace.runs.exists()


def test_a_credential_comes_from_secrets_manager_and_is_masked_from_then_on(receiver,
                                                                           tmp_path):
    import boto3
    from moto import mock_aws

    from drkit.notify import Notifier
    from drkit.redact import MASK, redact

    class Env:  # what a Notifier uses of an Environment
        name = "test"
        settings = {"control_region": "us-west-2",
                    "notify": {"retries": 0, "channels": {
                        "slack": {"type": "slack", "url_secret": "drkit/slack-webhook"}}}}

        def region(self, name):
            return {"cloud_region": "eu-west-1"}

        def boto3_session(self, region=None):
            return boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                                 region_name=region)

    url = f"{receiver.url}/services/FROM/SECRETS/MANAGER0123"
    records = []
    with mock_aws():
        boto3.client("secretsmanager", region_name="us-west-2").create_secret(
            Name="drkit/slack-webhook", SecretString=json.dumps({"url": url}))
        notifier = Notifier(Env(), tmp_path, run={"id": "20260101T000000Z-RB-X", "runbook":
                            "RB-X", "env": "test", "started_at": "2026-01-01T00:00:00.000000Z"},
                            severity="SEV2", dry_run=False, record=records.append)
        notifier.notify("status-investigating", {"vars": {"title": "from a secret"}})
        assert notifier.close() == []
    assert [r.ok for r in records] == [True], records
    assert receiver.on("/services/FROM/")[0]["body"]["text"].startswith("[INVESTIGATING]")
    assert redact(f"posted to {url}") == f"posted to {MASK}"


def test_a_template_that_fails_at_run_time_is_reported_and_the_run_goes_on(workspace,
                                                                          receiver):
    _project(workspace, {"hook": {"type": "webhook", "url": f"{receiver.url}/hook"}})
    (workspace.root / "runbooks" / "templates").mkdir()
    (workspace.root / "runbooks" / "templates" / "war-room.md.j2").write_text(
        "Commander: {{ vars.commander }}\n")  # the step below gives no commander
    rb = workspace.root / "runbooks" / "RB-NOTIFY-001-drill.yml"
    rb.write_text(rb.read_text().replace("template: status-resolved", "template: war-room"))
    out = workspace.drkit("run", "RB-NOTIFY-001")
    assert out.returncode == 0, out.stdout + out.stderr
    rows = _notifications(workspace.only_run())
    assert [(r["template"], r["ok"]) for r in rows] == [("status-investigating", True),
                                                        ("war-room", False)]
    assert "'dict object' has no attribute 'commander'" in rows[1]["detail"]
