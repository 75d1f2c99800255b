"""Notification receivers for a real lab failover (issue 17): the lab's
environment, copied with its channels pointed at local receivers. An HTTP
receiver stands in for Slack, PagerDuty, a Statuspage-style API and a webhook,
aiosmtpd for email; a dead channel (connection refused) is retried and
reported, and the failover still succeeds. The committed lab settings are never
edited: the copy lives in tmp.

test_failover's planned failover runs with this environment, so one failover
proves both the zero-loss switchover and the notifications (a failover and a
failback of their own cost the suite 97 s).
"""

from __future__ import annotations

import json
import shutil
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from email import message_from_bytes
from pathlib import Path

import yaml

from drkit.journal import read_events
from tests.lab.runs import PROJECT, RUNS
from tests.unit.test_notify_delivery import Receiver

SLACK_PATH = "/services/TLAB/BLAB/LABSECRETLAB"
ROUTING_KEY = "LABROUTINGKEY0123456789"
API_KEY = "lab-statuspage-key-0123"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def receivers() -> Iterator[tuple]:
    """The HTTP receiver, the SMTP server and its mailbox, running."""
    from aiosmtpd.controller import Controller

    class Mailbox:
        def __init__(self) -> None:
            self.mails: list = []

        async def handle_DATA(self, server, session, envelope):  # aiosmtpd calls it so
            self.mails.append((envelope.rcpt_tos, message_from_bytes(envelope.content)))
            return "250 OK"

    http = Receiver()
    http.thread.start()
    mailbox = Mailbox()
    smtp = Controller(mailbox, hostname="127.0.0.1", port=_free_port())
    smtp.start()
    try:
        yield http, smtp, mailbox
    finally:
        smtp.stop()
        http.server.shutdown()
        http.server.server_close()


def _environment(tmp_path: Path, http: Receiver, smtp_port: int) -> Path:
    """A copy of inventory/lab whose channels are the local receivers."""
    env_dir = tmp_path / "lab-notify"
    shutil.copytree(PROJECT / "inventory" / "lab", env_dir)
    path = env_dir / "group_vars" / "all" / "drkit.yml"
    doc = yaml.safe_load(path.read_text())
    channels = {
        "slack": {"type": "slack", "url_env": "LAB_TEST_SLACK_URL"},
        "pager": {"type": "pagerduty", "routing_key_env": "LAB_TEST_PD_KEY",
                  "url": f"{http.url}/v2/enqueue"},
        "status": {"type": "statuspage", "page_id": "lab", "api_key_env": "LAB_TEST_SP_KEY",
                   "url": f"{http.url}/v1"},
        "hook": {"type": "webhook", "url": f"{http.url}/hook"},
        "execs": {"type": "email", "host": "127.0.0.1", "port": smtp_port,
                  "from": "drkit@lab.internal", "to": ["cto@lab.internal"],
                  "templates": {"trigger": "exec-update", "update": "exec-update",
                                "resolve": "resolution"}},
        "dead": {"type": "webhook", "url": f"http://127.0.0.1:{_free_port()}/gone"},
    }
    channels = {**doc["drkit"]["notify"]["channels"], **channels}  # the lab's stay
    doc["drkit"]["notify"] = {"channels": channels, "timeout": "3s", "retries": 2,
                              "backoff": "200ms"}
    doc["drkit"]["severities"]["SEV1"]["notify"] = sorted(channels)
    doc["drkit"]["severities"]["SEV1"]["updates"] = {"status": "10s"}
    path.write_text(yaml.safe_dump(doc))
    return env_dir


def notify_environment(tmp_path: Path, http: Receiver, smtp_port: int, monkeypatch) -> Path:
    """The copy of inventory/lab with every channel on a local receiver, its
    secrets in the environment variables the channels name."""
    monkeypatch.setenv("LAB_TEST_SLACK_URL", f"{http.url}{SLACK_PATH}")
    monkeypatch.setenv("LAB_TEST_PD_KEY", ROUTING_KEY)
    monkeypatch.setenv("LAB_TEST_SP_KEY", API_KEY)
    return _environment(tmp_path, http, smtp_port)


def assert_every_channel_notified(result: dict, http: Receiver, mailbox, printed: str) -> None:
    """A failover run's notifications: every channel got its trigger and its
    resolution in its own format, the dead one was retried and reported without
    stopping the run, and no channel secret is in anything the run wrote or printed."""
    run = RUNS / result["run_id"]
    slack = [r["body"] for r in http.on("/services/")]
    assert slack[0]["text"].startswith("[INVESTIGATING] Region failover to eu-west")
    assert slack[-1]["text"].startswith("[RESOLVED]")
    assert all({"text", "blocks"} <= set(b) for b in slack)

    pd = [r["body"] for r in http.on("/v2/enqueue")]
    assert pd[0]["event_action"] == "trigger" and pd[-1]["event_action"] == "resolve"
    assert pd[0]["payload"]["severity"] == "critical"
    assert {"summary", "source", "severity"} <= set(pd[0]["payload"])
    assert pd[-1]["dedup_key"] == pd[0]["dedup_key"] and run.name in pd[0]["dedup_key"]

    sp = http.on("/v1/pages/lab/incidents")
    assert sp[0]["method"] == "POST" and sp[0]["body"]["incident"]["status"] == "investigating"
    assert sp[-1]["method"] == "PATCH" and sp[-1]["body"]["incident"]["status"] == "resolved"
    assert sp[0]["headers"]["Authorization"] == f"OAuth {API_KEY}"

    hook = [r["body"] for r in http.on("/hook")]
    assert hook[0]["event"] == "trigger" and hook[-1]["event"] == "resolve"
    assert hook[0]["run"]["id"] == run.name

    subjects = [m["Subject"] for _, m in mailbox.mails]
    assert subjects[0].startswith("[SEV1] Incident Update - SEV-1 - Region failover")
    assert subjects[-1].startswith("[SEV1] INCIDENT RESOLVED")

    rows = [e for e in read_events(run / "journal.jsonl") if e["event"] == "notification"]
    dead = [r for r in rows if r["channel"] == "dead"]
    assert dead and all(not r["ok"] and r["attempts"] == 3 for r in dead)
    assert all(r["ok"] for r in rows if r["channel"] != "dead")
    report = json.loads((run / "report.json").read_text())
    assert report["status"] == "succeeded"
    assert "**dead**" in (run / "report.md").read_text()
    written = "".join(p.read_text(errors="replace") for p in run.rglob("*")
                      if p.is_file() and p.suffix in (".jsonl", ".json", ".md", ".html"))
    for secret in (SLACK_PATH, ROUTING_KEY, API_KEY):
        assert secret not in written + printed
