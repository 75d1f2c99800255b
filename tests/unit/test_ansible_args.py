"""ansible-runner keyword arguments and play timings, built by pure functions."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from drkit.drivers.ansible import (
    BASE_ENVVARS,
    MITOGEN_ENV,
    _compact,
    play_timings,
    runner_kwargs,
    strategy_envvars,
)

BASE = {"playbook": "/p/site.yml", "inventory": "/i/hosts.yml", "private_data_dir": "/r/a"}
EXPECTED_BASE = {**BASE, "quiet": True, "json_mode": False, "envvars": BASE_ENVVARS}

KWARGS_TABLE = [
    ({}, {}),
    ({"check": True}, {"cmdline": "--check"}),
    ({"check": True, "diff": True}, {"cmdline": "--check --diff"}),
    ({"diff": True}, {"cmdline": "--diff"}),
    ({"tags": ["promote", "verify"]}, {"cmdline": "--tags promote,verify"}),
    ({"check": True, "diff": True, "tags": ("dns",)}, {"cmdline": "--check --diff --tags dns"}),
    ({"limit": "region_eu_west:&role_db"}, {"limit": "region_eu_west:&role_db"}),
    ({"limit": None}, {}),
    ({"extra_vars": {"region": "eu-west", "lag_mb": 3}},
     {"extravars": {"region": "eu-west", "lag_mb": 3}}),
    ({"extra_vars": {}}, {}),
    ({"verbosity": 2}, {"verbosity": 2}),
    ({"timeout": 90.4}, {"timeout": 90}),
    ({"timeout": 0.2}, {"timeout": 1}),
    ({"envvars": {"AWS_DEFAULT_REGION": "eu-west-1"}},
     {"envvars": {**BASE_ENVVARS, "AWS_DEFAULT_REGION": "eu-west-1"}}),
    ({"envvars": {"ANSIBLE_NOCOLOR": "0"}},
     {"envvars": {**BASE_ENVVARS, "ANSIBLE_NOCOLOR": "0"}}),
]


@pytest.mark.parametrize(("given", "expected"), KWARGS_TABLE,
                         ids=[str(i) for i in range(len(KWARGS_TABLE))])
def test_runner_kwargs(given, expected, monkeypatch):
    monkeypatch.setenv(MITOGEN_ENV, "0")
    assert runner_kwargs(**BASE, **given) == {**EXPECTED_BASE, **expected}


def test_extra_vars_never_reach_the_command_line():
    # Passed as `extravars`, the runner writes env/extravars and uses -e @file.
    kwargs = runner_kwargs(**BASE, extra_vars={"db_password": "hunter2"}, check=True)
    assert "hunter2" not in kwargs.get("cmdline", "")


EVENT_TABLE = [
    ({"event": "playbook_on_play_start", "event_data": {"play": "Promote"}},
     {"type": "play_start", "host": None, "task": None, "msg": "Promote"}),
    ({"event": "playbook_on_task_start", "event_data": {"task": "Stop"}},
     {"type": "task_start", "host": None, "task": "Stop", "msg": None}),
    ({"event": "runner_on_ok", "event_data": {"host": "db1", "task": "Stop", "res": {}}},
     {"type": "task_ok", "host": "db1", "task": "Stop", "msg": None}),
    ({"event": "runner_on_ok",
      "event_data": {"host": "db1", "task": "Promote", "res": {"changed": True, "msg": "done"}}},
     {"type": "task_changed", "host": "db1", "task": "Promote", "msg": "done"}),
    ({"event": "runner_on_failed",
      "event_data": {"host": "db1", "task": "Promote", "res": {"msg": "boom"}}},
     {"type": "task_failed", "host": "db1", "task": "Promote", "msg": "boom"}),
    ({"event": "runner_on_failed",
      "event_data": {"host": "db1", "task": "Probe", "res": {"censored": "hidden"}}},
     {"type": "task_failed", "host": "db1", "task": "Probe", "msg": "hidden"}),
    ({"event": "runner_on_skipped", "event_data": {"host": "db2", "task": "Stop"}},
     {"type": "task_skipped", "host": "db2", "task": "Stop", "msg": None}),
    ({"event": "runner_on_unreachable",
      "event_data": {"host": "db3", "task": "Stop", "res": {"msg": "no route"}}},
     {"type": "unreachable", "host": "db3", "task": "Stop", "msg": "no route"}),
    ({"event": "runner_on_failed",
      "event_data": {"host": "db1", "task": "Cmd",
                     "res": {"msg": "non-zero return code", "rc": 2, "stderr": "no such file",
                             "stdout": "partial"}}},
     {"type": "task_failed", "host": "db1", "task": "Cmd",
      "msg": "non-zero return code (rc=2): no such file"}),
    ({"event": "runner_on_failed",
      "event_data": {"host": "db1", "task": "Sh", "res": {"rc": 1, "stdout": "only out"}}},
     {"type": "task_failed", "host": "db1", "task": "Sh", "msg": "failed (rc=1): only out"}),
    ({"event": "verbose", "event_data": {}}, None),
]


@pytest.mark.parametrize(("event", "compact"), EVENT_TABLE,
                         ids=[str(i) for i in range(len(EVENT_TABLE))])
def test_compact_events(event, compact):
    assert _compact(event) == compact


def test_playbooks_run_with_mitogen_unless_turned_off():
    on = strategy_envvars({})
    assert on["ANSIBLE_STRATEGY"] == "drkit_mitogen_linear"
    drkit_dir, mitogen_dir = on["ANSIBLE_STRATEGY_PLUGINS"].split(os.pathsep)
    assert (Path(drkit_dir) / "drkit_mitogen_linear.py").is_file()
    assert mitogen_dir.endswith("ansible_mitogen/plugins/strategy")
    assert strategy_envvars({MITOGEN_ENV: "0"}) == {}


def test_each_play_ends_where_the_next_starts_and_the_last_at_the_last_event():
    plays = play_timings([("estate", "2026-11-23T12:00:00.000000+00:00"),
                          ("fence", "2026-11-23T12:00:01.500000+00:00")],
                         "2026-11-23T12:00:04.250000+00:00")
    assert plays == [
        {"name": "estate", "started_at": "2026-11-23T12:00:00.000000Z", "duration_s": 1.5},
        {"name": "fence", "started_at": "2026-11-23T12:00:01.500000Z", "duration_s": 2.75},
    ]
    assert play_timings([]) == []


def test_job_events_reads_every_attempt_and_skips_one_being_written(tmp_path):
    import json

    from drkit.drivers.ansible import job_events

    for attempt, name in (("a1", "1-x.json"), ("a2", "1-y.json")):
        events = tmp_path / "artifacts" / attempt / "job_events"
        events.mkdir(parents=True)
        (events / name).write_text(json.dumps({"event": "playbook_on_task_start",
                                               "attempt": attempt}))
    (tmp_path / "artifacts" / "a2" / "job_events" / "2-z.json").write_text('{"event": "runn')
    assert sorted(e["attempt"] for e in job_events(tmp_path)) == ["a1", "a2"]
    assert job_events(tmp_path / "absent") == []
