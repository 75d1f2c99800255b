"""Rehearsals through the real `drkit` command: the baseline restored, the history
recorded, a regression against it failing the rehearsal and notifying; the
schedule written for systemd, cron and CI; the history file's format."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from drkit.errors import ConfigError, ExitCode
from drkit.history import append_record, read_history
from drkit.schedule import parse_cron_line

SETTINGS = {
    "estate": "test",
    "regions": {"local": {"cloud_region": "local", "role": "primary"}},
    "notify": {"channels": {"status-page": {"type": "file",
                                            "path": ".drkit/notifications.log"}}},
    "rehearsals": {
        "baseline": [sys.executable, "-c",
                     "open('baseline.txt', 'a').write('restored\\n')"],
        "compare": {"last": 3, "margin": "50%"},
        "schedule": [
            {"name": "daily-readiness", "runbook": "RB-TEST-001", "when": "daily", "at": "01:30"},
            {"name": "weekly-node", "runbook": "RB-TEST-001", "params": {"hold": 0},
             "when": "weekly", "at": "02:00"},
            {"name": "monthly-zone", "runbook": "RB-TEST-004", "when": "monthly", "at": "02:30"},
            {"name": "region-failover", "runbook": "RB-TEST-001", "params": {"fail": False},
             "when": "quarterly", "at": "03:00"},
            {"name": "rebuild", "runbook": "RB-TEST-001", "when": "yearly", "at": "04:00"},
        ],
    },
}


def _write_settings(workspace, settings: dict) -> None:
    path = workspace.root / "inventory" / "test" / "group_vars" / "all" / "drkit.yml"
    path.write_text(yaml.safe_dump({"drkit": settings}))


@pytest.fixture
def project(workspace):
    _write_settings(workspace, SETTINGS)
    return workspace


def _history(project) -> Path:
    return project.root / ".drkit" / "history" / "test.jsonl"


def _record(rto: float, step_s: float, middle_s: float | None = None, **extra) -> dict:
    rec = {"v": 1, "rehearsal": "daily-readiness", "runbook": "RB-TEST-001", "env": "test",
           "run_id": "20261101T010000Z-RB-TEST-001", "started_at": "2026-11-01T01:00:00Z",
           "status": "succeeded", "rto_s": rto, "rpo_s": 0.0,
           "targets": {"rto_s": 300.0, "rpo_s": 0.0}, "met": {"rto": True, "rpo": True},
           "steps": [{"id": s, "status": "ok",
                      "duration_s": middle_s if s == "middle" and middle_s is not None
                      else step_s} for s in ("first", "middle", "restored")],
           "baseline": {"ok": True}, "verdict": "passed", "regressions": []}
    rec.update(extra)
    return rec


# ----------------------------------------------------------------------------- rehearse


def test_a_rehearsal_runs_unattended_restores_the_baseline_and_records_its_result(project):
    out = project.drkit("rehearse", "daily-readiness")

    assert out.returncode == 0, out.stdout + out.stderr
    assert (project.root / "baseline.txt").read_text() == "restored\n"
    [rec] = read_history(_history(project))
    run = project.only_run()
    assert rec["rehearsal"] == "daily-readiness" and rec["run_id"] == run.name
    assert rec["verdict"] == "passed" and rec["baseline"]["ok"] is True
    assert rec["rto_s"] is not None and rec["targets"]["rto_s"] == 300.0
    assert [s["id"] for s in rec["steps"]] == ["first", "middle", "restored", "last"]
    assert all("duration_s" in s for s in rec["steps"])
    html = (run / "report.html").read_text()
    assert 'class="rto-trend"' in html and "Rehearsal daily-readiness: passed" in html
    assert json.loads((run / "report.json").read_text())["rehearsal"]["trend"][0]["run_id"] \
        == run.name


def test_a_slower_rto_than_the_history_fails_and_notifies_naming_runbook_step_regression(
        project):
    # A history of fast results (RTO 1 ms) whose middle step took no time; the
    # other steps' 5 s there keep them from looking grown on a loaded machine.
    for _ in range(3):
        append_record(_history(project), _record(0.001, 5.0, middle_s=0.0))

    # The middle step now waits 0.3 s: the RTO is at least 300 times the median.
    out = project.drkit("rehearse", "daily-readiness", "-p", "hold=0.3")

    assert out.returncode == ExitCode.REHEARSAL_FAILED, out.stdout + out.stderr
    err = out.stderr.strip()
    assert err.count("\n") == 0, err
    for says in ("RB-TEST-001", "step middle", "worse than the median", "last 3"):
        assert says in err, err
    notes = (project.root / ".drkit" / "notifications.log").read_text()
    assert "daily-readiness" in notes and "step middle" in notes and "RB-TEST-001" in notes
    last = read_history(_history(project))[-1]
    assert last["verdict"] == "failed"
    assert any("step middle" in r for r in last["regressions"])
    assert (project.root / "baseline.txt").is_file()


def test_a_failed_step_fails_the_rehearsal_with_the_runs_own_exit_code(project):
    out = project.drkit("rehearse", "daily-readiness", "-p", "fail=true")

    assert out.returncode == ExitCode.STEP_FAILED, out.stdout + out.stderr
    assert "RB-TEST-001 step last failed" in out.stderr
    assert (project.root / "baseline.txt").is_file()  # restored after a failure too
    [rec] = read_history(_history(project))
    assert rec["verdict"] == "failed" and rec["status"] == "failed"


def test_json_mode_prints_only_json_on_stdout_ending_with_the_rehearsal(project):
    out = project.drkit("rehearse", "daily-readiness", "--json")
    assert out.returncode == 0, out.stderr
    events = [json.loads(line) for line in out.stdout.splitlines()]
    assert events[-1]["event"] == "rehearsal" and events[-1]["verdict"] == "passed"
    assert "baseline:" in out.stderr


def test_a_runbook_can_be_rehearsed_without_a_schedule_entry(project):
    out = project.drkit("rehearse", "RB-TEST-001", "-p", "hold=0")
    assert out.returncode == 0, out.stderr
    assert read_history(_history(project))[0]["rehearsal"] == "RB-TEST-001 hold=0"


def test_history_shows_the_trend_per_rehearsal(project):
    for rto in (10.0, 12.0, 11.0):
        append_record(_history(project), _record(rto, 1.0))
    out = project.drkit("history", "--rehearsal", "daily-readiness")
    assert out.returncode == 0, out.stderr
    assert "daily-readiness: 3 result(s), RTO 10.0s..12.0s" in out.stdout
    assert out.stdout.count("20261101T010000Z-RB-TEST-001") == 3


def test_a_corrupt_history_is_refused_with_its_line_number_and_nothing_runs(project):
    append_record(_history(project), _record(1.0, 0.1))
    with _history(project).open("a") as fh:
        fh.write('{"v": 1, "rehearsal": "x"}\n')
    for argv in (("rehearse", "daily-readiness"), ("history",)):
        out = project.drkit(*argv)
        assert out.returncode == ExitCode.BAD_INPUT, out.stderr
        assert "line 2: missing 'runbook'" in out.stderr
    assert not project.runs.exists()
    assert not (project.root / "baseline.txt").exists()


@pytest.mark.parametrize(("rehearsals", "says"), [
    ({"schedule": [{"name": "x", "runbook": "RB-TEST-001", "when": "fortnightly"}]},
     "drkit.rehearsals.schedule[0].when: 'fortnightly' is not one of"),
    ({"schedule": [{"name": "x", "runbook": "RB-TEST-001", "when": "daily", "at": "25:00"}]},
     "drkit.rehearsals.schedule[0].at: '25:00' is not a time of day"),
    ({"schedule": [{"name": "Bad Name", "runbook": "RB-TEST-001", "when": "daily"}]},
     "drkit.rehearsals.schedule[0].name"),
    ({"compare": {"margin": "lots"}}, "drkit.rehearsals.compare.margin"),
    ({"notify": ["pager"]}, "drkit.rehearsals.notify: 'pager' is not one of the channels"),
    ({"schedule": [{"name": "x", "runbook": "RB-TEST-001", "when": "daily",
                    "params": {"hold": "soon"}}], "baseline": ["true"]},
     "drkit.rehearsals.schedule[0].params.hold"),
    ({"schedule": [{"name": "x", "runbook": "RB-NOPE-009", "when": "daily"}]},
     "drkit.rehearsals.schedule[0].runbook: no runbook 'RB-NOPE-009'"),
])
def test_a_schedule_that_does_not_parse_is_refused_with_its_dotted_path(workspace, rehearsals,
                                                                      says):
    _write_settings(workspace, {**SETTINGS, "rehearsals": rehearsals})
    out = workspace.drkit("rehearse", "x")
    assert out.returncode == ExitCode.BAD_INPUT, out.stderr
    assert says in out.stderr
    assert not workspace.runs.exists()


def test_a_rehearsal_needs_a_baseline_command(workspace):
    _write_settings(workspace, {**SETTINGS, "rehearsals": {"schedule": []}})
    out = workspace.drkit("rehearse", "RB-TEST-001")
    assert out.returncode == ExitCode.BAD_INPUT
    assert "drkit.rehearsals.baseline: missing" in out.stderr


# ----------------------------------------------------------------------------- history file


def test_a_torn_last_line_is_ignored_then_cut_by_the_next_append(tmp_path):
    path = tmp_path / "h.jsonl"
    append_record(path, _record(1.0, 0.1))
    with path.open("a") as fh:
        fh.write('{"v": 1, "rehea')  # a crash in the middle of an append
    assert len(read_history(path)) == 1
    append_record(path, _record(2.0, 0.1))
    assert [r["rto_s"] for r in read_history(path)] == [1.0, 2.0]


def test_a_line_that_is_not_json_names_its_line(tmp_path):
    path = tmp_path / "h.jsonl"
    path.write_text(json.dumps(_record(1.0, 0.1)) + "\n\nnot json\n")
    with pytest.raises(ConfigError, match=r"line 3: not JSON"):
        read_history(path)


# ----------------------------------------------------------------------------- install


def _install(project, target: str, out: Path) -> list[Path]:
    result = project.drkit("rehearse.install", target, "--out", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    return sorted(out.iterdir())


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_install_systemd_writes_units_systemd_analyze_accepts(project, tmp_path):
    files = _install(project, "systemd", tmp_path / "units")

    assert [f.name for f in files if f.suffix == ".timer"] == sorted(
        f"drkit-rehearse-test-{n}.timer" for n in
        ("daily-readiness", "weekly-node", "monthly-zone", "region-failover", "rebuild"))
    verify = subprocess.run(["systemd-analyze", "verify", *map(str, files)],
                            capture_output=True, text=True, cwd=tmp_path)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert verify.stderr.strip() == "", verify.stderr
    timer = (tmp_path / "units" / "drkit-rehearse-test-region-failover.timer").read_text()
    assert "OnCalendar=*-01,04,07,10-01 03:00:00 UTC" in timer
    calendar = subprocess.run(["systemd-analyze", "calendar", "*-01,04,07,10-01 03:00:00 UTC"],
                              capture_output=True, text=True)
    assert calendar.returncode == 0, calendar.stderr
    service = (tmp_path / "units" / "drkit-rehearse-test-region-failover.service").read_text()
    assert "rehearse region-failover --env test" in service


def test_install_cron_writes_lines_that_parse(project, tmp_path):
    [crontab] = _install(project, "cron", tmp_path / "cron")

    jobs = [parsed for line in crontab.read_text().splitlines()
            if (parsed := parse_cron_line(line)) is not None]
    assert [" ".join(fields) for fields, _ in jobs] == [
        "30 1 * * *", "0 2 * * 1", "30 2 1 * *", "0 3 1 1,4,7,10 *", "0 4 1 1 *"]
    assert all("-m drkit rehearse" in command for _, command in jobs)


@pytest.mark.parametrize(("line", "says"), [
    ("60 1 * * * x", "minute '60': 60 is outside 0-59"),
    ("0 24 * * * x", "hour '24'"),
    ("0 1 0 * * x", "day of month '0'"),
    ("0 1 * 13 * x", "month '13'"),
    ("0 1 * * 8 x", "day of week '8'"),
    ("*/0 1 * * * x", "step '0'"),
    ("5-1 1 * * * x", "runs backwards"),
    ("0 1 * * x", "expected 5 time fields and a command"),
    ("a 1 * * * x", "'a' is not a number"),
])
def test_cron_lines_that_do_not_parse_say_which_field(line, says):
    with pytest.raises(ValueError, match=None) as info:
        parse_cron_line(line)
    assert says in str(info.value)


def test_cron_names_steps_and_variables_parse():
    assert parse_cron_line("*/15 0-6/2 1,15 jan-mar mon-fri run") is not None
    assert parse_cron_line("CRON_TZ=UTC") is None and parse_cron_line("# c") is None


#: The parts of GitHub's documented workflow syntax the generated workflow uses
#: ("Workflow syntax for GitHub Actions"), closed where the docs list every key.
WORKFLOW_SCHEMA = {
    "type": "object",
    "required": ["on", "jobs"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string"},
        "permissions": {"type": "object",
                        "additionalProperties": {"enum": ["read", "write", "none"]}},
        "on": {"type": "object", "additionalProperties": False, "properties": {
            "schedule": {"type": "array", "minItems": 1, "items": {
                "type": "object", "required": ["cron"], "additionalProperties": False,
                "properties": {"cron": {"type": "string"}}}},
            "workflow_dispatch": {"type": ["object", "null"], "properties": {
                "inputs": {"type": "object", "additionalProperties": {
                    "type": "object", "required": ["description"],
                    "properties": {"type": {"enum": ["string", "choice", "boolean",
                                                     "number", "environment"]},
                                   "options": {"type": "array", "items": {"type": "string"}},
                                   "required": {"type": "boolean"}}}}}}}},
        "jobs": {"type": "object", "minProperties": 1,
                 "propertyNames": {"pattern": "^[_a-zA-Z][a-zA-Z0-9_-]*$"},
                 "additionalProperties": {
                     "type": "object", "required": ["runs-on", "steps"],
                     "additionalProperties": False,
                     "properties": {
                         "name": {"type": "string"}, "if": {"type": "string"},
                         "runs-on": {"type": ["string", "array"]},
                         "timeout-minutes": {"type": "number"},
                         "concurrency": {"type": "object", "required": ["group"]},
                         "steps": {"type": "array", "minItems": 1, "items": {
                             "type": "object", "additionalProperties": False,
                             "oneOf": [{"required": ["uses"]}, {"required": ["run"]}],
                             "properties": {"name": {"type": "string"},
                                            "if": {"type": "string"},
                                            "uses": {"type": "string",
                                                     "pattern": "^[^@ ]+@[^@ ]+$"},
                                            "run": {"type": "string"},
                                            "with": {"type": "object"}}}}}}},
    },
}


def test_install_ci_writes_a_workflow_the_schema_accepts(project, tmp_path):
    [workflow] = _install(project, "ci", tmp_path / "ci")

    doc = yaml.safe_load(workflow.read_text())
    jsonschema.validate(doc, WORKFLOW_SCHEMA)
    crons = [s["cron"] for s in doc["on"]["schedule"]]
    for cron in crons:
        assert parse_cron_line(f"{cron} x") is not None
    assert set(doc["jobs"]) == {"daily-readiness", "weekly-node", "monthly-zone",
                                "region-failover", "rebuild"}
    job = doc["jobs"]["region-failover"]
    assert "github.event.schedule == '0 3 1 1,4,7,10 *'" in job["if"]
    assert any("drkit rehearse region-failover --env test" in s.get("run", "")
               for s in job["steps"])
    if shutil.which("check-jsonschema"):  # SchemaStore's github-workflow schema, vendored
        full = subprocess.run(["check-jsonschema", "--builtin-schema",
                               "vendor.github-workflows", str(workflow)],
                              capture_output=True, text=True)
        assert full.returncode == 0, full.stdout + full.stderr


def test_an_unknown_install_target_writes_nothing(project, tmp_path):
    out = project.drkit("rehearse.install", "launchd", "--out", str(tmp_path / "x"))
    assert out.returncode == ExitCode.BAD_INPUT
    assert "'launchd': not a scheduler; use one of: systemd, cron, ci" in out.stderr
    assert not (tmp_path / "x").exists()
