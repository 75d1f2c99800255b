"""A rebuild rehearsal's scratch estate (drkit.scratch): derived from the live
environment apart from it in every name it changes, and a mis-set one refused
before anything is written (pure logic and the CLI, no cloud)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from drkit.cli import program
from drkit.scratch import confinement_problems, derive

REPO = Path(__file__).resolve().parents[2]
LIVE = yaml.safe_load((REPO / "inventory/lab/group_vars/all/drkit.yml").read_text())["drkit"]


def test_the_scratch_estate_is_the_live_one_renamed_reading_its_backups_archiving_nothing():
    s = derive(LIVE, "lab")
    assert s["estate"] == "lab-rehearsal" and s["dns"]["zone"] == "rehearsal.lab.internal"
    assert s["terraform"]["backend_config"]["key"] == "envs/lab-rehearsal/terraform.tfstate"
    assert s["terraform"]["backend_config"]["bucket"] == "drkit-lab-tfstate"
    assert s["terraform"]["vars"]["estate"] == "lab-rehearsal" and s["terraform"]["vars"]["scratch"]
    assert s["terraform"]["vars"]["vpc_cidrs"]["ap-south"] == "10.130.0.0/16"
    assert s["backup"]["estate"] == "lab" and s["postgres"]["archive"] is False
    secrets = [i["secret"] for i in s["keys"]["items"] if i.get("secret")]
    assert secrets == ["drkit/lab-rehearsal/REGION/db-credentials",
                       "drkit/lab-rehearsal/REGION/app-secret"]
    # The key backup's passphrase is read from the live estate's copies, never written.
    assert s["keys"]["passphrase_secret"] == LIVE["keys"]["passphrase_secret"]
    assert s["rehearsals"] == {"live": {"env": "lab", "estate": "lab", "zone": "lab.internal",
                                        "state_key": "envs/lab/terraform.tfstate"}}
    assert confinement_problems(LIVE, s) == []
    assert LIVE["estate"] == "lab"  # the live settings are not changed


@pytest.mark.parametrize("scratch, problem", [
    ({"estate": "lab"}, "the rehearsal's estate name equals the live one (lab)"),
    ({"zone": "lab.internal"}, "the rehearsal's DNS zone equals the live one (lab.internal)"),
    ({"state_key": "envs/lab/terraform.tfstate"},
     "the rehearsal's Terraform state is the live one (envs/lab/terraform.tfstate)"),
])
def test_a_scratch_estate_that_shares_a_name_with_the_live_one_is_refused(scratch, problem):
    live = {**LIVE, "rehearsals": {**LIVE["rehearsals"],
                                   "scratch": {**LIVE["rehearsals"]["scratch"], **scratch}}}
    found = confinement_problems(live, derive(live, "lab"))
    assert any(f.startswith(problem) for f in found), found


def test_a_scratch_estate_that_would_archive_into_the_live_repositories_is_refused():
    s = derive(LIVE, "lab")
    s["postgres"]["archive"] = True
    assert confinement_problems(LIVE, s) == [
        "the rehearsal's database would archive into the live estate's repositories "
        "(drkit.postgres.archive must be false)"]


def test_a_mis_set_rehearsal_is_refused_with_exit_2_before_anything_is_written(
        tmp_path, monkeypatch, capsys):
    root = tmp_path / "project"
    shutil.copytree(REPO / "runbooks", root / "runbooks")
    shutil.copytree(REPO / "inventory" / "lab", root / "inventory" / "lab")
    settings = root / "inventory/lab/group_vars/all/drkit.yml"
    doc = yaml.safe_load(settings.read_text())
    doc["drkit"]["rehearsals"]["scratch"]["estate"] = "lab"
    settings.write_text(yaml.safe_dump(doc))
    monkeypatch.setenv("DRKIT_PROJECT", str(root))
    monkeypatch.setenv("DRKIT_STATE_DIR", str(root / ".drkit"))
    monkeypatch.chdir(root)
    with pytest.raises(SystemExit) as exc:
        program().run(["drkit", "rehearse", "rebuild", "--env", "lab"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "the rebuild rehearsal could touch the live estate; nothing was changed" in err
    assert "the rehearsal's estate name equals the live one (lab)" in err
    assert not (root / ".drkit").exists() or not list((root / ".drkit").rglob("scratch-*"))


class _Calls:
    def __init__(self) -> None:
        self.torn = 0


@pytest.fixture
def flow(tmp_path, monkeypatch):
    """rehearse_rebuild with the cloud and the run replaced: what it tears down when."""
    from drkit import rehearse as rehearse_mod
    from drkit import scratch
    from drkit.env import load_environment
    from drkit.project import find_project

    root = tmp_path / "project"
    shutil.copytree(REPO / "runbooks", root / "runbooks")
    shutil.copytree(REPO / "inventory" / "lab", root / "inventory" / "lab")
    monkeypatch.setenv("DRKIT_STATE_DIR", str(root / ".drkit"))
    project = find_project(root)
    live = load_environment(project, "lab")
    calls = _Calls()

    def teardown(project, live, say):
        calls.torn += 1
        return {"ok": True, "duration_s": 0.0, "detail": "destroyed"}

    monkeypatch.setattr(scratch, "teardown", teardown)
    monkeypatch.setattr(scratch, "networks_problems", lambda live, s: [])
    return project, live, calls, monkeypatch, rehearse_mod


@pytest.mark.parametrize("raised", [KeyboardInterrupt, RuntimeError])
def test_the_scratch_estate_is_torn_down_when_the_run_fails_or_is_interrupted(flow, raised):
    from drkit import scratch

    project, live, calls, monkeypatch, rehearse_mod = flow

    def run(*args, **kwargs):
        raise raised("stopped")

    monkeypatch.setattr(rehearse_mod, "rehearse", run)
    with pytest.raises(raised):
        scratch.rehearse_rebuild(project, live, {}, say=lambda line: None)
    assert calls.torn == 1


def test_a_kept_scratch_estate_is_not_torn_down_and_the_run_gets_the_schedules_region(flow):
    from drkit import scratch

    project, live, calls, monkeypatch, rehearse_mod = flow
    seen = {}

    def run(project, environment, ref, params, *, restore, **kwargs):
        seen.update(env=environment.name, ref=ref, params=params, baseline=restore())
        return "outcome"

    monkeypatch.setattr(rehearse_mod, "rehearse", run)
    assert scratch.rehearse_rebuild(project, live, {}, keep=True,
                                    say=lambda line: None) == "outcome"
    assert calls.torn == 0 and seen["env"] == "lab-rehearsal" and seen["ref"] == "RB-DR-007"
    assert seen["params"] == {"region": "ap-south", "rehearsal": True}
    assert seen["baseline"]["detail"].startswith("kept (--keep)")
    # The next rehearsal finds the ledger and tears the kept estate down first.
    assert scratch.pending(project, live)
    scratch.rehearse_rebuild(project, live, {}, say=lambda line: None)
    assert calls.torn == 2  # the leftover, then this rehearsal's own (its baseline)
