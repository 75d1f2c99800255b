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
