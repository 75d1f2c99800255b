"""Wrong command lines are refused before anything runs: exit 2, one line saying what
is wrong and what to do, and nothing written. And a run its preflight refuses says
so, not that it missed its targets.

The CLI runs in-process (the `drkit` program with its task tree) in a throwaway
project whose lab directory is empty: no lab is needed, and none is touched.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from drkit.cli import program
from drkit.errors import ExitCode
from drkit.journal import Journal, read_events
from drkit.runbook import load_runbook

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "engine"

A_DR_RUN = "20261122T030112Z-RB-DR-003"
A_TEST_RUN = "20261122T030112Z-RB-TEST-001"
A_RESTORE_RUN = "20261122T030112Z-RB-DR-006"
FUTURE = "2999-01-01T00:00:00Z"
LAB = ("--env", "lab")


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project with the fixture runbooks, RB-DR-003 and the `test` and `lab`
    environments; its state and lab directories do not exist yet."""
    root = tmp_path / "project"
    (root / "runbooks").mkdir(parents=True)
    for rb in [*FIXTURES.glob("RB-*.yml"), *(REPO / "runbooks").glob("RB-*.yml")]:
        shutil.copy(rb, root / "runbooks" / rb.name)
    shutil.copytree(FIXTURES / "inventory", root / "inventory" / "test")
    shutil.copytree(REPO / "inventory" / "lab", root / "inventory" / "lab")
    monkeypatch.setenv("DRKIT_PROJECT", str(root))
    monkeypatch.setenv("DRKIT_STATE_DIR", str(root / ".drkit"))
    monkeypatch.setenv("DRKIT_LAB_DIR", str(tmp_path / "lab"))
    monkeypatch.setenv("DRKIT_ENV", "test")
    return root


def drkit(*args: str) -> int:
    """Run `drkit ARGS` in-process; its exit code."""
    try:
        program().run(["drkit", *args])
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def _files(root: Path) -> set[Path]:
    return {p for p in root.parent.rglob("*")}


BAD_INPUT = [
    # run
    (["run"], "did not receive required positional arguments: 'runbook'"),
    (["run", "RB-NOPE"], "no runbook 'RB-NOPE'"),
    (["run", "RB-TEST-001", "-p", "hold=soon"], "params.hold: 'soon' is not a number"),
    (["run", "RB-TEST-001", "-p", "hold"], "'hold' is not name=value"),
    (["run", "RB-TEST-001", "-p", "hold=1", "-p", "hold=2"], "hold given twice"),
    (["run", "RB-TEST-001", "--from", "nope"], "--from nope: no such step in RB-TEST-001"),
    (["run", "RB-TEST-001", "--from", "middle", "--only", "last"],
     "--from middle and --only last together"),
    (["run", "RB-TEST-001", "--dry-run", "--break-lock"], "--break-lock with --dry-run"),
    (["run", "RB-TEST-001", "--env", "nope"], "unknown environment 'nope'"),
    (["run", "RB-TEST-001", "--incident-start", "yesterday"], "not an ISO-8601 time"),
    (["run", "RB-TEST-001", "--incident-start", FUTURE], "in the future"),
    (["run", "RB-TEST-001", "--bogus"], "No idea what '--bogus' is"),
    (["run", "RB-TEST-001", "--severity", "SEV5"], "--severity 'SEV5': not a severity"),
    # resume, report
    (["resume"], "did not receive required positional arguments: 'run_id'"),
    (["resume", "last-tuesday"], "'last-tuesday' is not a run id"),
    (["resume", "../../etc"], "'../../etc' is not a run id"),
    (["resume", A_TEST_RUN], f"no run '{A_TEST_RUN}'"),
    (["resume", A_TEST_RUN, "--only", "a", "--from", "b"], "--from b and --only a together"),
    (["report", "garbage"], "'garbage' is not a run id"),
    (["report", A_TEST_RUN], f"no run '{A_TEST_RUN}'"),
    # runbooks, show, validate, status
    (["runbooks", "extra"], "No idea what 'extra' is"),
    (["show", "RB-NOPE"], "no runbook 'RB-NOPE'"),
    (["validate", "--env", "nope"], "unknown environment 'nope'"),
    (["status", "--limit", "0"], "--limit '0': expected a whole number greater than 0"),
    (["status", "--limit", "ten"], "--limit 'ten': expected a whole number greater than 0"),
    (["status", "--env", "nope"], "unknown environment 'nope'"),
    # replace-node (refused before the estate is asked)
    (["replace-node", *LAB], "replace-node needs exactly one of --host and --auto"),
    (["replace-node", "--host", "i-0123", "--auto", *LAB], "(both were given)"),
    (["replace-node", "--auto", "--force", *LAB], "--force applies to --host only"),
    (["replace-node", "--resume", A_DR_RUN, "--host", "i-0123"], "--host cannot change them"),
    # zone-failover (an unknown zone is refused before the estate is asked)
    (["zone-failover", *LAB], "zone-failover needs --zone"),
    (["zone-failover", "--zone", "mars-1a", *LAB], "zone 'mars-1a' is not one of the estate's"),
    (["zone-failover", "--zone", "us-east-1b", "--mode", "sideways", *LAB],
     "--mode must be one of planned, unplanned"),
    (["zone-failover", "--zone", "us-east-1b", "--restore", "--mode", "planned", *LAB],
     "--mode applies to a shift, not to --restore"),
    (["zone-failover", "--resume", A_DR_RUN, "--zone", "us-east-1b"],
     "--zone cannot change them"),
    (["zone-failover", "--resume", A_DR_RUN], "not a run of RB-DR-002"),
    # app-recovery
    (["app-recovery", *LAB], "app-recovery needs --type"),
    (["app-recovery", "--type", "reboot", *LAB], "--type 'reboot': not a recovery type"),
    (["app-recovery", "--type", "complete-rebuild", *LAB], "needs --target-region"),
    (["app-recovery", "--type", "complete-rebuild", "--target-region", "mars", *LAB],
     "unknown region 'mars' in environment lab"),
    (["app-recovery", "--type", "region-failover", *LAB], "needs --target-region"),
    (["app-recovery", "--type", "region-failover", "--target-region", "mars", *LAB],
     "unknown region 'mars' in environment lab"),
    (["app-recovery", "--type", "service-failure", "--target-region", "eu-west", *LAB],
     "--target-region applies to --type region-failover and complete-rebuild only"),
    (["app-recovery", "--resume", A_DR_RUN, "--type", "service-failure"],
     "--type cannot change them"),
    # rebuild (refused before the estate is asked)
    (["rebuild", *LAB], "rebuild needs --region"),
    (["rebuild", "--region", "mars", *LAB], "unknown region 'mars' in environment lab"),
    (["rebuild", "--region", "ap-south", "--backup", "yesterday", *LAB],
     "--backup 'yesterday' is not a backup label"),
    (["rebuild", "--region", "ap-south", "--target-time", FUTURE, *LAB],
     "--target-time 2999-01-01T00:00:00Z: in the future"),
    (["rebuild", "--region", "ap-south", "--shares", "/nonexistent/share-1.txt", *LAB],
     "--shares: /nonexistent/share-1.txt is not a readable file"),
    (["rebuild", "--region", "ap-south", "--app-capacity", "0", *LAB],
     "--app-capacity '0': expected a whole number greater than 0"),
    (["rebuild", "--resume", A_DR_RUN, "--region", "ap-south"], "--region cannot change them"),
    (["rebuild", "--resume", A_DR_RUN], "not a run of RB-DR-007"),
    # rehearse rebuild (refused before anything is built)
    (["rehearse", "RB-DR-003", "--keep", *LAB], "--keep and --cleanup apply to `rehearse "
                                                 "rebuild` only"),
    (["rehearse", "rebuild", "--cleanup", "--keep", *LAB], "--cleanup only destroys"),
    (["rehearse", "rebuild", "-p", "region=mars", *LAB], "unknown region 'mars'"),
    # db-recovery
    (["db-recovery", *LAB], "db-recovery needs --scenario"),
    (["db-recovery", "--scenario", "meteor", *LAB], "--scenario 'meteor': not a recovery scenario"),
    (["db-recovery", "--scenario", "corruption", *LAB],
     "--scenario corruption needs --backup-time"),
    (["db-recovery", "--scenario", "corruption", "--backup-time", FUTURE, *LAB],
     "--backup-time 2999-01-01T00:00:00Z: in the future"),
    (["db-recovery", "--scenario", "corruption", "--backup-time", "yesterday", *LAB],
     "--backup-time 'yesterday': not an ISO-8601 time"),
    (["db-recovery", "--scenario", "corruption", "--backup-time", "2026-12-01T00:00:00Z",
      "--target-region", "eu-west", *LAB],
     "--target-region does not apply to --scenario corruption"),
    (["db-recovery", "--scenario", "region-failure", *LAB],
     "--scenario region-failure needs --target-region"),
    (["db-recovery", "--scenario", "region-failure", "--target-region", "mars", *LAB],
     "unknown region 'mars' in environment lab"),
    (["db-recovery", "--scenario", "primary-failure", "--backup-time", "2026-12-01T00:00:00Z",
      *LAB], "--backup-time applies to --scenario corruption"),
    (["db-recovery", "--resume", A_DR_RUN, "--scenario", "region-failure"],
     "--scenario cannot change them"),
    # failover, failback
    (["failover", *LAB], "failover needs --region"),
    (["failover", "--region", "mars", *LAB], "unknown region 'mars' in environment lab"),
    (["failover", "--region", "eu-west-1", *LAB], "unknown region 'eu-west-1'"),
    (["failover", "--region", "eu-west", "--mode", "sideways", *LAB], "--mode 'sideways'"),
    (["failover", "--region", "eu-west", "--mode", "unplanned", "--source", "tape", *LAB],
     "--source 'tape': not a source"),
    (["failover", "--region", "eu-west", "--source", "backup", *LAB],
     "--source backup restores the database from the backups, for a lost primary only"),
    (["failover", "--region", "eu-west", "--allow-data-loss", *LAB],
     "--allow-data-loss applies to an unplanned failover only"),
    (["failover", "--region", "eu-west", "--only", "nope", *LAB],
     "--only nope: no such step in RB-DR-003"),
    (["failover", "--region", "eu-west", "--incident-start", FUTURE, *LAB], "in the future"),
    (["failover", "--region", "eu-west", "--severity", "critical", *LAB],
     "--severity 'critical': not a severity"),
    (["failback", "--region", "us-east", "--severity", "0", *LAB],
     "--severity '0': not a severity"),
    (["failover", "--resume", A_DR_RUN, "--region", "eu-west"], "--region cannot change them"),
    (["failover", "--resume", A_DR_RUN, "--mode", "unplanned", "--allow-data-loss"],
     "--mode, --allow-data-loss cannot change them"),
    (["failover", "--resume", A_DR_RUN, "--dry-run"], "--dry-run with --resume"),
    (["failover", "--resume", A_TEST_RUN], "not a run of RB-DR-003"),
    (["failover", "--resume", "yesterday"], "'yesterday' is not a run id"),
    (["failback", *LAB], "failback needs --region"),
    (["failback", "--region", "pluto", *LAB], "unknown region 'pluto' in environment lab"),
    (["failback", "--resume", A_DR_RUN, "--region", "us-east"], "--region cannot change them"),
    # backup
    (["backup", "--type", "weekly", *LAB], "--type 'weekly': not a backup type"),
    (["backup", "--what", "everything", *LAB], "--what 'everything': not something to back up"),
    # readiness
    (["readiness", "--backup-max-age", "soon", *LAB], "--backup-max-age 'soon' is not a duration"),
    (["readiness", "--failover-region", "mars", *LAB], "unknown region 'mars' in environment lab"),
    # keys
    (["keys.backup", "--shares", "5", *LAB], "--shares needs --shares-out DIR"),
    (["keys.backup", "--shares", "2", "--threshold", "3", "--shares-out", "{project}/s", *LAB],
     "need 2 <= threshold <= shares <= 16"),
    (["keys.backup", "--shares", "five", *LAB], "--shares 'five': expected a whole number"),
    (["keys.backup", "--shares-out", "{project}/s", *LAB], "--shares-out without --shares"),
    (["keys.backup", "--shares", "5", "--shares-out", "{project}/runbooks", *LAB],
     "exists and is not an empty directory"),
    (["keys.verify", "--backup", "yesterday", *LAB], "is not a key backup label"),
    (["keys.restore", *LAB], "keys.restore needs --out DIR"),
    (["keys.restore", "--out", "{project}/k", "--shares", "a,b", "--passphrase-file", "p", *LAB],
     "--shares and --passphrase-file together"),
    (["keys.restore", "--out", "{project}/k", "--region", "mars", *LAB],
     "unknown region 'mars'"),
    (["keys.restore", "--out", "{project}/runbooks", *LAB], "exists and is not an empty"),
    # the lab
    (["lab.up", "--no-configur"], "No idea what '--no-configur' is"),
    (["lab.down", "now"], "No idea what 'now' is"),
    (["lab.status", "--yaml"], "No idea what '--yaml' is"),
    (["lab.reset", "--hard"], "No idea what '--hard' is"),
    (["lab.chaos"], "did not receive required positional arguments: 'kind'"),
    (["lab.chaos", "meteor"], "unknown chaos kind 'meteor'"),
    (["lab.chaos", "region-outage"], "region-outage needs --region"),
    (["lab.chaos", "region-outage", "--region", "pluto"], "unknown region 'pluto'"),
    (["lab.chaos", "region-lost"], "region-lost needs --region"),
    (["lab.chaos", "region-lost", "--region", "pluto"], "unknown region 'pluto'"),
    (["lab.chaos", "zone-outage", "--zone", "us-east-1z"], "unknown zone 'us-east-1z'"),
    (["lab.chaos", "zone-outage", "--zone", "us-east-1a", "--region", "us-east"],
     "zone-outage does not take --region"),
    (["lab.chaos", "node-kill", "--host", "nosuch"], "no running host matches 'nosuch'"),
    (["lab.chaos", "app-kill"], "app-kill needs --host"),
    (["lab.chaos", "app-kill", "--host", "nosuch"], "no running host matches 'nosuch'"),
    (["lab.chaos", "corrupt", "--table", 'x"; drop'], "not a plain table name"),
    (["lab.chaos", "restore", "--table", "orders"], "restore does not take --table"),
    (["lab.chaos", "restore", "--region", "mars-west-9"], "unknown region 'mars-west-9'"),
    (["lab.chaos", "api-outage"], "api-outage needs --region"),
    (["lab.chaos", "api-outage", "--region", "eu-west", "--service", "s3;rm"],
     "--service 's3;rm' is not an AWS service name"),
    (["lab.chaos", "node-kill", "--host", "x", "--service", "s3"],
     "node-kill does not take --service"),
    (["lab.canary", "--rate", "0"], "--rate '0': expected a number greater than 0"),
    (["lab.canary", "--rate", "-5"], "--rate '-5': expected a number greater than 0"),
    (["lab.canary", "--rate", "fast"], "--rate 'fast': expected a number greater than 0"),
    (["lab.canary", "--for", "forever"], "--for 'forever' is not a duration"),
    (["lab.canary", "--out", "{project}/runbooks/RB-TEST-001-steps.yml"],
     "exists and is not a directory"),
    # restore
    (["restore", "--into", "web", *LAB],
     "--into 'web': nothing to restore into by that name; use one of: scratch, db"),
    (["restore", "--resume", A_RESTORE_RUN, "--into", "db"], "--into cannot change them"),
    (["restore", "--resume", A_DR_RUN], "not a run of RB-DR-006"),
    # rehearse, rehearse.install, history, postmortem
    (["rehearse"], "did not receive required positional arguments: 'rehearsal'"),
    (["rehearse", "RB-NOPE"], "no rehearsal or runbook 'RB-NOPE'"),
    (["rehearse", "RB-TEST-001", "-p", "hold=soon"], "params.hold: 'soon' is not a number"),
    (["rehearse", "RB-TEST-001"], "drkit.rehearsals.baseline: missing"),
    (["rehearse.install", "launchd"], "'launchd': not a scheduler"),
    (["rehearse.install", "cron"], "has no rehearsals to schedule"),
    (["history", "--last", "0"], "--last '0': expected a whole number greater than 0"),
    (["history", "--env", "nope"], "unknown environment 'nope'"),
    (["postmortem", "garbage"], "'garbage' is not a run id"),
    (["postmortem", A_TEST_RUN], f"no run '{A_TEST_RUN}'"),
    # the program itself
    (["--nope"], "No idea what '--nope' is"),
    (["nosuchtask"], "No idea what 'nosuchtask' is"),
]


@pytest.mark.parametrize(("argv", "says"), BAD_INPUT, ids=[" ".join(a) for a, _ in BAD_INPUT])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(project, monkeypatch, capsys,
                                                             argv, says):
    def must_not_run(*_args, **_kwargs):
        raise AssertionError(f"drkit {' '.join(argv)} went past its checks")

    # Past the checks a run takes the lock and the lab tasks reach the lab: neither may
    # happen (and if one did, it must not touch a lab someone else is using).
    monkeypatch.setattr("drkit.engine.Engine._locked", must_not_run)
    monkeypatch.setattr("drkit.cli.lab._controller", must_not_run)
    monkeypatch.setattr("drkit.lab.database.canary_config", must_not_run)
    before = _files(project)

    code = drkit(*(a.format(project=project) for a in argv))

    out, err = capsys.readouterr()
    assert code == ExitCode.BAD_INPUT, (code, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("drkit: "), err
    assert says in lines[0], lines[0]
    assert out == ""
    assert _files(project) == before  # no run directory, no lock, no lab state


def test_restore_into_db_without_a_terminal_or_yes_is_refused_before_anything_runs(
        project, monkeypatch, capsys):
    def must_not_run(*_args, **_kwargs):
        raise AssertionError("restore --into db went past its approval check")

    monkeypatch.setattr("drkit.engine.Engine._locked", must_not_run)
    before = _files(project)

    code = drkit("restore", "--into", "db", *LAB)

    err = capsys.readouterr().err
    assert code == ExitCode.APPROVAL_REQUIRED, err
    assert "RB-DR-006 needs approval at step(s) approve" in err and "--yes" in err
    assert _files(project) == before


# ----------------------------------------------------------------------------- preflight


def _refused_run(project: Path, marker: Path) -> tuple[int, str]:
    code = drkit("run", "RB-TEST-005", "-p", f"marker={marker}")
    return code, next((project / ".drkit" / "runs").iterdir()).name


def test_a_preflight_refusal_says_so_and_not_that_targets_were_missed(project, tmp_path,
                                                                      capsys):
    marker = tmp_path / "changed"
    code, run_id = _refused_run(project, marker)

    out, err = capsys.readouterr()
    assert code == ExitCode.PREFLIGHT_FAILED
    assert f"{run_id}: refused by preflight; nothing changed" in out
    assert "NOT met" not in out + err
    assert "no-such-file does not exist" in err
    assert not marker.exists()
    run = project / ".drkit" / "runs" / run_id
    report = json.loads((run / "report.json").read_text())
    assert report["outcome"] == "refused by preflight; nothing changed"
    assert report["preflight_findings"] == ["needed-exists: no-such-file does not exist"]
    markdown = (run / "report.md").read_text()
    assert "REFUSED BY PREFLIGHT" in markdown and "NOT met" not in markdown
    assert "refused by preflight" in (run / "report.html").read_text()
    assert '<testcase classname="RB-TEST-005" name="preflight">' in (
        run / "junit.xml").read_text()


def test_a_refused_run_cannot_be_resumed_past_its_preflight(project, tmp_path, capsys):
    marker = tmp_path / "changed"
    _, run_id = _refused_run(project, marker)
    journal = project / ".drkit" / "runs" / run_id / "journal.jsonl"
    events = read_events(journal)
    capsys.readouterr()

    code = drkit("resume", run_id)

    assert code == ExitCode.BAD_INPUT
    assert "was refused by its preflight; nothing to resume" in capsys.readouterr().err
    assert read_events(journal) == events
    assert not marker.exists()


def test_a_run_killed_during_its_preflight_checks_again_on_resume(project, tmp_path, capsys):
    marker = tmp_path / "changed"
    runbook = load_runbook(project / "runbooks" / "RB-TEST-005-refused.yml")
    run_id = "20261122T030112Z-RB-TEST-005"
    Journal.create(project / ".drkit" / "runs" / run_id, run_id=run_id, runbook=runbook.id,
                   runbook_path=str(runbook.path), runbook_sha256=runbook.sha256, env="test",
                   params={"marker": str(marker), "needed": "no-such-file"}, dry_run=False,
                   user="test", host="test", pid=1, argv=["drkit"])

    code = drkit("resume", run_id)

    out = capsys.readouterr().out
    assert code == ExitCode.PREFLIGHT_FAILED
    assert "preflight again: it never finished" in out
    assert f"{run_id}: refused by preflight; nothing changed" in out
    assert not marker.exists()


@pytest.mark.parametrize("task", ["show", "report", "resume", "rehearse", "zone-failover",
                                  "replace-node", "app-recovery", "db-recovery"])
def test_task_help_after_the_task_name_prints_the_tasks_help(project, capsys, task):
    """`drkit show --help` is the task's help, not a runbook named --help (invoke
    would hand --help to a positional argument)."""
    assert drkit(task, "--help") == 0
    out = capsys.readouterr().out
    assert out.startswith(f"Usage: drkit [--core-opts] {task} "), out[:200]
