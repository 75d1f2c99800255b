"""RB-DR-004's decisions without a lab: which requests are refused and why, where
the WAL says the recovery point is, what recovering to it loses with each
strategy, and how pg_waldump's lines are read."""

from __future__ import annotations

import importlib.util
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from drkit import backups
from drkit.checks.corruption import (
    RecoveryTarget,
    assess_request,
    compare_tables,
    kept_name,
    parse_request,
    recovery_point,
)
from drkit.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 12, 3, 13, 0, tzinfo=UTC)
OLDEST = {"label": "20261203-100000F", "stop": "2026-12-03T10:05:00+00:00",
          "lsn_start": "0/2000028", "lsn_stop": "0/2000138"}
PRIMARY = {"host": "10.20.1.5", "xid_status": "committed", "current_lsn": "0/9000000",
           "next_xid": 900, "tables": {"orders": 16390}, "dropped": {}}


def request(**kw):
    args = {"before": "", "before_xid": "", "before_lsn": "", "tables": ["orders"],
            "strategy": "tables", "now": NOW, **kw}
    return parse_request(**args)


@pytest.mark.parametrize(("kw", "says"), [
    ({"before": "2026-12-03T12:00:00Z", "before_xid": "750"}, "together"),
    ({}, "no recovery point"),
    ({"before": "2999-01-01T00:00:00Z"}, "in the future"),
    ({"before": "yesterday"}, "not an ISO-8601 time"),
    ({"before_xid": "abc"}, "a whole number"),
    ({"before_lsn": "3000060"}, "an LSN looks like"),
    ({"before_xid": "750", "tables": []}, "needs --table"),
    ({"before_xid": "750", "tables": ['x"; drop']}, "not a plain table name"),
    ({"before_xid": "750", "tables": ["orders_corrupted_20261203t130000z"]}, "kept by an earlier"),
    ({"before_xid": "750", "strategy": "undo"}, "use one of tables, rewind"),
])
def test_bad_requests_are_refused_saying_what_is_wrong(kw, says):
    with pytest.raises(ConfigError) as err:
        request(**kw)
    assert says in str(err.value) and "nothing was changed" in str(err.value)


def test_a_request_names_one_exclusive_target():
    assert request(before_xid="750") == RecoveryTarget("xid", "750")
    assert request(before_lsn="0/3000060").describe() == "just before WAL position 0/3000060"
    assert request(before="2026-12-03T12:00:00+01:00").value == "2026-12-03T11:00:00+00:00"
    assert request(before_xid="750", tables=[], strategy="rewind").kind == "xid"


@pytest.mark.parametrize(("target", "primary", "says"), [
    (RecoveryTarget("xid", "5000"), {"xid_status": "future"}, "no such transaction yet"),
    (RecoveryTarget("xid", "7"), {"xid_status": None}, "no such transaction"),
    (RecoveryTarget("xid", "750"), {"xid_status": "aborted"}, "rolled back"),
    (RecoveryTarget("xid", "750"), {"xid_status": "in progress"}, "still running"),
    (RecoveryTarget("xid", "750"), {"xid_committed_at": "2026-12-03T09:00:00+00:00"},
     "committed at 2026-12-03T09:00:00Z, before the oldest backup ended"),
    (RecoveryTarget("lsn", "F/0"), {}, "in the future"),
    (RecoveryTarget("lsn", "0/100"), {}, "before the oldest backup ended"),
    (RecoveryTarget("time", "2026-12-03T09:00:00+00:00"), {}, "before the oldest backup ended"),
    (RecoveryTarget("xid", "750"), {"tables": {"orders": None}}, "no such table on the primary"),
    (RecoveryTarget("xid", "750"), {"host": None}, "no database primary answers"),
])
def test_a_request_the_estate_cannot_serve_is_refused(target, primary, says):
    problems = assess_request(target, ["orders"], primary={**PRIMARY, **primary},
                              oldest_backup=OLDEST, now=NOW)
    assert any(says in p for p in problems), problems


def test_a_dropped_table_and_a_good_request_pass():
    primary = {**PRIMARY, "tables": {"orders": None},
               "dropped": {"orders": [{"xid": 750, "at": "2026-12-03T12:59:00+00:00"}]}}
    assert assess_request(RecoveryTarget("xid", "750"), ["orders"], primary=primary,
                          oldest_backup=OLDEST, now=NOW) == []
    # Committed after the oldest backup, or its commit time unknown (not tracked then).
    for committed_at in ("2026-12-03T12:58:00+00:00", None):
        assert assess_request(RecoveryTarget("xid", "750"), [], oldest_backup=OLDEST, now=NOW,
                              primary={**PRIMARY, "xid_committed_at": committed_at}) == []
    assert assess_request(RecoveryTarget("xid", "750"), [], primary=PRIMARY,
                          oldest_backup=None, now=NOW) == [
        "no backup in any repository: nothing to recover from (take one with `invoke "
        "backup`; it only covers later damage)"]


def test_kept_names_fit_postgres_identifiers():
    assert kept_name("orders", "20261203T130501Z-RB-DR-004") == "orders_corrupted_20261203t130501z"
    assert len(kept_name("x" * 63, "20261203T130501Z-RB-DR-004")) == 63


def _states(stop: datetime) -> list[backups.RepositoryState]:
    repo = backups.Repository(1, "us-east", "us-east-1", "lab-us-east-backups", "main")
    backup = backups.BackupSet("20261203-100000F", "full", stop - timedelta(minutes=5), stop,
                               "0/2000028", "0/2000138", 1, 1, None, False)
    return [backups.RepositoryState(repo, True, backups=[backup])]


SCAN = {
    "scanned": {"timeline": 1, "from_lsn": "0/2000000", "to_lsn": "0/3001000"},
    "found": True,
    "point": {"lsn": "0/3000100", "time": "2026-12-03T12:59:00+00:00", "xid": 750},
    "target": {"xid": 750, "kind": "commit"},
    "last_kept": {"xid": 749, "lsn": "0/30000A0", "time": "2026-12-03T12:58:59+00:00"},
    "lost": {"transactions": 4, "first": "2026-12-03T12:59:00+00:00",
             "last": "2026-12-03T12:59:03+00:00", "span_s": 3.0,
             "by_relfilenode": {"16390": 2, "16400": 2, "2608": 1},
             "damaging": {"xid": 750, "lsn": "0/3000100", "relfilenodes": [16390],
                          "dropped_relfilenodes": []}},
    "touched_before": {"16390": [{"xid": 749, "lsn": "0/30000A0", "time": "x"}]},
}
REQUEST = {"target": {"kind": "xid", "value": "750"},
           "tables": {"orders": {"relfilenode": 16390, "dropped": []}},
           "relnames": {"16390": "orders", "16400": "drkit_canary"}}


def test_the_loss_with_tables_is_only_the_named_tables_later_writes():
    out = recovery_point(SCAN, REQUEST, strategy="tables",
                         states=_states(datetime(2026, 12, 3, 10, tzinfo=UTC)), now=NOW)
    assert out["ok"], out["problems"]
    assert out["restore"] == {"repo": 1, "region": "us-east", "label": "20261203-100000F",
                              "fallbacks": [], "type": "xid", "value": "750"}
    # orders: 2 commits after the point, one of them the damaging one (excluded on purpose).
    assert out["loss"]["transactions"] == 1
    assert out["loss"]["by_table"] == {"orders": 2, "drkit_canary": 2}
    assert out["loss"]["summary"].startswith("1 committed transaction(s) in orders after the point")
    assert out["touched_before"] == {"orders": [{"xid": 749, "lsn": "0/30000A0", "time": "x"}]}


def test_the_loss_with_rewind_is_every_later_commit_and_a_late_backup_is_refused():
    out = recovery_point(SCAN, REQUEST, strategy="rewind",
                         states=_states(datetime(2026, 12, 3, 10, tzinfo=UTC)), now=NOW)
    assert out["loss"]["transactions"] == 3 and out["loss"]["span_s"] == 3.0
    late = recovery_point(SCAN, REQUEST, strategy="rewind",
                          states=_states(datetime(2026, 12, 3, 12, 59, 30, tzinfo=UTC)), now=NOW)
    assert not late["ok"] and "before the oldest backup" in late["problems"][0]


def test_a_point_the_wal_does_not_hold_is_refused():
    out = recovery_point({**SCAN, "found": False}, REQUEST, strategy="tables",
                         states=_states(datetime(2026, 12, 3, 10, tzinfo=UTC)), now=NOW)
    assert not out["ok"] and "not in the WAL from 0/2000000" in out["problems"][0]


def test_tables_are_compared_by_count_and_hash():
    assert compare_tables({"a": (3, "9")}, {"a": (3, "9")}) == []
    assert compare_tables({"a": (3, "9"), "b": None}, {"a": (2, "1"), "b": (1, "1")}) == [
        "a: 2 rows (hash 1) on the primary, 3 (hash 9) in the copy", "b is not in the copy"]


def _wal_scan():
    spec = importlib.util.spec_from_file_location("wal_scan", REPO / "playbooks/files/wal_scan.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


DUMP = """\
rmgr: Heap        len (rec/tot):     59/    59, tx:        749, lsn: 0/03000060, prev 0/03000028, desc: INSERT off 2 flags 0x00, blkref #0: rel 1663/16384/16390 blk 0
rmgr: Transaction len (rec/tot):     34/    34, tx:        749, lsn: 0/030000A0, prev 0/03000060, desc: COMMIT 2026-12-03 12:58:59.5 UTC
rmgr: Heap        len (rec/tot):     69/    69, tx:        750, lsn: 0/030000C8, prev 0/030000A0, desc: HOT_UPDATE off 2 xmax 750, blkref #0: rel 1663/16384/16390 blk 0
rmgr: Transaction len (rec/tot):     34/    34, tx:        750, lsn: 0/03000100, prev 0/030000C8, desc: COMMIT 2026-12-03 12:59:00.000001 UTC
rmgr: Heap        len (rec/tot):     59/    59, tx:        751, lsn: 0/03000128, prev 0/03000100, desc: INSERT off 3 flags 0x00, blkref #0: rel 1663/16384/16400 blk 0
rmgr: Transaction len (rec/tot):     34/    34, tx:        751, lsn: 0/03000160, prev 0/03000128, desc: ABORT 2026-12-03 12:59:01.1 UTC
rmgr: Transaction len (rec/tot):    130/   130, tx:        752, lsn: 0/03000188, prev 0/03000160, desc: COMMIT 2026-12-03 12:59:02.2 UTC; rels: base/16384/16390 base/16384/16393; subxacts: 753
rmgr: Heap        len (rec/tot):     59/    59, tx:        753, lsn: 0/03000150, prev 0/03000128, desc: INSERT off 4 flags 0x00, blkref #0: rel 1663/16384/16400 blk 0
"""  # noqa: E501


@pytest.mark.parametrize(("target", "point_xid"), [
    ({"xid": 750}, 750), ({"lsn": "0/3000100"}, 750), ({"lsn": "0/30000A1"}, 750),
    ({"time": datetime(2026, 12, 3, 12, 59, 1, tzinfo=UTC)}, 752),
])
def test_pg_waldump_lines_give_the_point_and_what_was_lost(target, point_xid):
    wal = _wal_scan()
    scan = wal.Scan()
    scan.add(DUMP)

    class Args:
        xid = target.get("xid")
        lsn = target.get("lsn", "")
        time = target.get("time", "")
        relfilenodes = "16390"

    out = wal.report(scan, Args, True, {})
    assert out["point"]["xid"] == point_xid
    assert out["last_kept"]["xid"] == (749 if point_xid == 750 else 750)
    lost = out["lost"]
    if point_xid == 750:  # the aborted 751 is no loss; 752 dropped a table in a subxact's company
        assert lost["transactions"] == 2 and lost["by_relfilenode"] == {"16390": 1, "16400": 1}
        assert out["target"] is None or out["target"]["relfilenodes"] == [16390]
        assert out["touched_before"] == {"16390": [{"xid": 749, "lsn": "0/30000A0",
                                                    "time": "2026-12-03T12:58:59.500000+00:00"}]}
    else:
        assert lost["transactions"] == 1 and lost["damaging"]["dropped_relfilenodes"] == [
            16390, 16393]


@pytest.mark.parametrize(("args", "says"), [
    (["--before", "2026-12-01T00:00:00Z", "--before-xid", "1234"], "together"),
    (["--before-xid", "1234", "--strategy", "tables"], "needs --table"),
    (["--before", "2999-01-01T00:00:00Z", "--table", "orders"], "in the future"),
    (["--table", "orders"], "no recovery point"),
])
def test_the_cli_refuses_a_bad_request_before_touching_anything(args, says, tmp_path, capsys,
                                                                monkeypatch):
    from drkit.cli import program

    monkeypatch.setenv("DRKIT_STATE_DIR", str(tmp_path / "state"))
    with pytest.raises(SystemExit) as exit_:
        program().run(["drkit", "recover-corruption", *args, "--yes"])
    assert exit_.value.code == 2
    assert says in capsys.readouterr().err
    assert not (tmp_path / "state").exists()
