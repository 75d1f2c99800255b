"""Notification settings, templates, severities and the update cadence, without a
network: what is refused when an environment loads (dotted paths, all at once),
what every seed template renders to in strict mode, and the ticker."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from drkit.env import validate_settings
from drkit.notify import SEVERITIES, normalize_severity, render_template
from drkit.notify.cadence import Ticker
from drkit.notify.settings import problems
from drkit.notify.templates import BUILTIN, check_template, event_of, sample_context

REPO = Path(__file__).resolve().parents[2]
REGIONS = {"local": {"cloud_region": "local", "role": "primary"}}


def _problems(notify=None, severities=None, root: Path | None = REPO) -> list[str]:
    s = {"regions": REGIONS}
    if notify is not None:
        s["notify"] = notify
    if severities is not None:
        s["severities"] = severities
    return validate_settings(s, root)


SEED_TEMPLATES = ["status-investigating", "status-identified", "status-resolved",
                  "exec-update", "validator-alert", "initial-notification", "ongoing-update",
                  "resolution"]


@pytest.mark.parametrize("name", SEED_TEMPLATES)
def test_every_seed_template_renders_strictly_with_what_every_notification_has(name):
    assert (BUILTIN / f"{name}.md.j2").is_file()
    assert check_template(name, REPO) is None
    text = render_template(name, sample_context(), REPO)
    assert text.strip() and "{{" not in text


def test_templates_show_the_severity_the_plans_way_and_the_run():
    ctx = sample_context()
    text = render_template("exec-update", ctx, REPO)
    assert text.startswith("Incident Update - SEV-1 - RB-SAMPLE on sample")
    assert "Severity: SEV-1" in text
    assert "20260101T000000Z-RB-SAMPLE" in text


def test_each_template_opens_updates_or_resolves_an_incident():
    assert [event_of(n) for n in ("status-investigating", "initial-notification",
                                  "status-identified", "ongoing-update", "exec-update",
                                  "status-resolved", "resolution")] == [
        "trigger", "trigger", "update", "update", "update", "resolve", "resolve"]


GOOD_CHANNELS = {
    "status-page": {"type": "file", "path": ".drkit/notifications.log"},
    "console": {"type": "stdout"},
    "hook": {"type": "webhook", "url": "http://127.0.0.1:9/hook"},
    "slack": {"type": "slack", "url_env": "DRKIT_SLACK_URL"},
    "pager": {"type": "pagerduty", "routing_key_secret": "drkit/pd-routing-key"},
    "statuspage": {"type": "statuspage", "page_id": "p1", "api_key_env": "SP_KEY",
                   "url": "http://127.0.0.1:9/v1"},
    "execs": {"type": "email", "host": "127.0.0.1", "port": 2525, "from": "drkit@example.org",
              "to": ["cto@example.org"], "templates": {"update": "exec-update"}},
}
GOOD_SEVERITIES = {
    "SEV1": {"criteria": [">50% of users affected"], "activation": "automatic",
             "response": "all hands", "notify": ["status-page", "pager", "execs"],
             "updates": {"status-page": "5m", "execs": "30m"}},
    "SEV4": {"criteria": ["no user impact"], "notify": ["status-page"]},
}


def test_every_channel_type_and_the_severities_validate():
    assert _problems({"channels": GOOD_CHANNELS, "timeout": "5s", "retries": 2,
                      "backoff": 0.5}, GOOD_SEVERITIES) == []


def test_the_lab_and_example_settings_validate():
    import yaml

    for env in ("lab", "example-aws"):
        path = REPO / "inventory" / env / "group_vars" / "all" / "drkit.yml"
        if path.is_file():
            s = yaml.safe_load(path.read_text())["drkit"]
            assert problems(s, REPO) == [], env


BAD = [
    ({"x": {"type": "carrier-pigeon"}}, None,
     "drkit.notify.channels.x.type: 'carrier-pigeon' is not one of email, file, pagerduty"),
    ({"x": {"type": "file"}}, None, "drkit.notify.channels.x.path: missing; a file channel"),
    ({"x": {"type": "slack"}}, None,
     "drkit.notify.channels.x.url: missing; a slack channel needs url_env or url_secret"),
    ({"x": {"type": "slack", "url": "https://hooks.example/T/B/secret"}}, None,
     "drkit.notify.channels.x.url: a credential is never written in a settings file"),
    ({"x": {"type": "pagerduty", "routing_key": "R0123456789"}}, None,
     "drkit.notify.channels.x.routing_key: a credential is never written"),
    ({"x": {"type": "statuspage", "api_key_env": "K"}}, None,
     "drkit.notify.channels.x.page_id: missing; a statuspage channel needs page_id"),
    ({"x": {"type": "email", "host": "h", "from": "a@b"}}, None,
     "drkit.notify.channels.x.to: missing; an email channel needs to"),
    ({"x": {"type": "email", "host": "h", "from": "a@b", "to": "c@d", "username": "u"}}, None,
     "drkit.notify.channels.x.password: missing"),
    ({"x": {"type": "webhook", "url": "http://h", "url_env": "U"}}, None,
     "drkit.notify.channels.x.url: give one of url, url_env"),
    ({"x": {"type": "stdout", "colour": "red"}}, None,
     "drkit.notify.channels.x.colour: unknown key for a stdout channel"),
    ({"x": {"type": "stdout", "templates": {"update": "no-such-template"}}}, None,
     "drkit.notify.channels.x.templates.update: unknown template 'no-such-template'"),
    ({"x": {"type": "stdout", "templates": {"escalate": "exec-update"}}}, None,
     "drkit.notify.channels.x.templates.escalate: unknown event"),
    ({"x": {"type": "stdout"}}, {"SEV5": {}}, "drkit.severities.SEV5: not a severity"),
    ({"x": {"type": "stdout"}}, {"SEV1": {"notify": ["y"]}},
     "drkit.severities.SEV1.notify: 'y' is not a channel (x)"),
    ({"x": {"type": "stdout"}}, {"SEV1": {"notify": ["x"], "updates": {"x": "often"}}},
     "drkit.severities.SEV1.updates.x: 'often' is not a duration"),
    ({"x": {"type": "stdout"}}, {"SEV1": {"notify": [], "updates": {"x": "5m"}}},
     "drkit.severities.SEV1.updates.x: not among drkit.severities.SEV1.notify"),
    ({"x": {"type": "stdout"}}, {"SEV2": {"activation": "sometimes"}},
     "drkit.severities.SEV2.activation: 'sometimes' is not automatic or manual"),
]


@pytest.mark.parametrize(("channels", "severities", "expected"), BAD)
def test_bad_channel_and_severity_settings_name_their_dotted_path(channels, severities,
                                                                   expected):
    found = _problems({"channels": channels}, severities)
    assert any(p.startswith(expected) for p in found), found


def test_a_template_variable_missing_is_refused_when_the_environment_loads(tmp_path):
    (tmp_path / "runbooks" / "templates").mkdir(parents=True)
    (tmp_path / "runbooks" / "templates" / "war-room.md.j2").write_text(
        "Commander: {{ incident.commander }}\n")
    found = _problems({"channels": {"x": {"type": "stdout", "templates": {
        "update": "war-room"}}}}, root=tmp_path)
    assert found == ["drkit.notify.channels.x.templates.update: template war-room: "
                     "'incident' is undefined"]


def test_delivery_policy_is_checked():
    found = _problems({"channels": {}, "timeout": "0s", "retries": -1, "backoff": "soon"})
    assert found[0] == "drkit.notify.timeout: expected a duration greater than 0"
    assert found[1].startswith("drkit.notify.backoff: 'soon' is not a duration")
    assert found[2] == "drkit.notify.retries: expected a whole number 0-10, got -1"


@pytest.mark.parametrize(("text", "level"), [
    ("SEV1", "SEV1"), ("SEV-2", "SEV2"), ("sev3", "SEV3"), ("4", "SEV4"), ("sev_1", "SEV1"),
    ("SEV5", None), ("critical", None), ("0", None), ("", None)])
def test_severities_are_spelled_as_the_plans_and_runbooks_do(text, level):
    assert normalize_severity(text) == level
    assert SEVERITIES == ("SEV1", "SEV2", "SEV3", "SEV4")


def test_the_ticker_sends_each_channel_on_its_own_interval_until_stopped():
    calls: list[str] = []
    enough = threading.Event()

    def send(name: str) -> None:
        calls.append(name)
        if calls.count("fast") >= 3:
            enough.set()

    ticker = Ticker({"fast": 0.02, "slow": 3600}, send)
    ticker.start()
    assert enough.wait(10)
    ticker.stop()
    stopped_at = len(calls)
    assert set(calls) == {"fast"}  # the hourly one is not due
    assert not ticker._thread.is_alive()
    assert len(calls) == stopped_at
