"""Which history each restore follows, as the runbooks hand it to the playbooks:
the expressions rendered against the outputs the earlier steps really journal (the
shapes copied from lab runs), so a wrong path (a ``default('')`` hides one) fails
here rather than as a restore that silently follows the newest timeline archived."""

from __future__ import annotations

from pathlib import Path

import pytest

from drkit.runbook import load_runbook
from drkit.templating import render

RUNBOOKS = Path(__file__).resolve().parents[2] / "runbooks"


def extra_var(runbook: str, step: str, name: str) -> str:
    loaded = load_runbook(next(RUNBOOKS.glob(f"{runbook}-*.yml")))
    found = next(s for s in loaded.steps if s.id == step)
    return found.spec["extra_vars"][name]


def archive_now(archive: dict) -> dict:
    return {"archive-now": {"outputs": {"facts": {"localhost": {"archive": archive}}}}}


@pytest.mark.parametrize(("steps", "expected"), [
    (archive_now({"archived": True, "archived_by": "db-1", "timeline": "3"}), "3"),
    # The primary cut off: the newest a replica is on (archive-now reports it).
    (archive_now({"archived": False, "archived_by": "", "why": "...", "timeline": "2"}), "2"),
    (archive_now({"archived": False, "archived_by": "", "why": "...", "timeline": ""}), ""),
    ({"archive-now": {"outputs": {}}}, ""),
])
def test_a_scratch_restore_follows_the_timeline_archive_now_read(steps, expected):
    expr = extra_var("RB-DR-006", "restore", "restore_target_timeline")
    assert str(render(expr, {"steps": {**steps, "plan": {"outputs": {"archived_timeline": ""}}}})) \
        == expected
    # No node answered: the timeline the repository stored last, when it is known.
    with_archive = {**steps, "plan": {"outputs": {"archived_timeline": 7}}}
    assert str(render(expr, {"steps": with_archive})) == (expected or "7")


def test_the_corruption_copy_follows_the_timeline_its_wal_scan_read():
    contain = {"lab-us-east-db_i-1": {"host": "lab-us-east-db_i-1", "scan": {
        "scanned": {"timeline": 4, "from_lsn": "0/B000000", "to_lsn": "0/E000000"},
        "found": True}}}
    expr = extra_var("RB-DR-004", "restore", "restore_target_timeline")
    assert str(render(expr, {"steps": {"contain": {"outputs": {"facts": contain}}}})) == "4"


@pytest.mark.parametrize(("topology", "archived", "expected"), [
    ({"us-east": {"timeline": None}, "eu-west": {"timeline": 5}, "ap-south": {"timeline": 4}},
     11, "5"),
    # No node answers: the timeline the repository stored last, not the highest.
    ({"us-east": {"timeline": None}, "ap-south": {"timeline": None}}, 10, "10"),
    ({"us-east": {"timeline": None}, "ap-south": {"timeline": None}}, "", ""),
])
def test_a_restore_onto_an_empty_host_follows_the_answering_nodes_timeline(topology, archived,
                                                                         expected):
    expr = extra_var("RB-DR-003", "restore", "restore_into_timeline_hint")
    rendered = render(expr, {"steps": {"ready": {"outputs": {"topology": topology}},
                                       "plan": {"outputs": {"archived_timeline": archived}}}})
    assert str(rendered) == expected


@pytest.mark.parametrize(("hint", "archived", "expected"), [
    (4, 10, "4"), ("", 10, "10"), ("", "", "")])
def test_a_rebuild_follows_the_answering_nodes_else_the_last_archived_timeline(hint, archived,
                                                                               expected):
    expr = extra_var("RB-DR-007", "restore", "restore_into_timeline_hint")
    rendered = render(expr, {"steps": {"lost": {"outputs": {"timeline_hint": hint}},
                                       "plan": {"outputs": {"archived_timeline": archived}}}})
    assert str(rendered) == expected
