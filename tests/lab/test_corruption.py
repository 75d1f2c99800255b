"""RB-DR-004 data corruption on the real lab, in three scenarios sharing one backup:

1. bad requests are refused (exit 2) with the estate unchanged, and a dry run
   shows the recovery point, the estimated loss and what would be replaced;
2. tables, under canary load: one table overwritten by an UPDATE, another
   dropped; `recover-corruption --before-xid <the UPDATE's XID> --table ...`,
   killed with SIGKILL during the restore and again during the table copy,
   resumed each time: both tables are back as they were just before the
   damage, copied once, the damaged rows kept as <table>_corrupted_<run>, and
   every acknowledged canary write is on the primary (other tables keep theirs);
3. rewind, under canary load, through `db-recovery --scenario corruption
   --backup-time T` (the seeds' entry point), T a moment before an UPDATE: the
   whole database goes back to T; the writes acknowledged before it are there,
   the report's lost writes are the canary rows that are gone, the damaged
   cluster is kept stopped, the replicas stream from the recovered primary and
   db. answers it.

What it leaves behind: the primary is us-east's node with both replicas
streaming from it (on a new timeline after the rewind), writable. The kept
data directory of the rewind is removed by the module's teardown (a real run
keeps it for forensics; here it would only fill the disk).
"""

from __future__ import annotations

import re
import shlex
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from drkit.errors import ExitCode
from drkit.journal import RunState
from drkit.lab import database
from tests.lab.runs import (
    Canary,
    assert_baseline_streaming,
    decisions,
    drkit,
    journal,
    kill_when,
    result_of,
    started_after,
    task_started,
)

pytestmark = [pytest.mark.lab, pytest.mark.slow]

LOSS = re.compile(r"(\d+) committed transaction\(s\)")


@pytest.fixture(scope="module")
def lab(lab_estate):
    from tests.lab.conftest import require_site

    require_site(lab_estate)
    proc = drkit("backup", "--type", "full", "--yes", "--json")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    lab_estate.kept_dirs = []
    yield lab_estate
    primary = lab_estate.host(role="db", dr_region="us-east")["ip"]
    for path in lab_estate.kept_dirs:
        lab_estate.ssh(primary, f"rm -rf -- {shlex.quote(path)}")


def sql(lab, statement: str) -> str:
    """Run SQL on the primary's estate database as the app's role (which owns the
    app's tables, as the canary's); its output."""
    primary = lab.host(role="db", dr_region="us-east")["ip"]
    creds = database.credentials()
    return lab.psql(primary, f'SET ROLE "{creds["username"]}"; {statement}', db=creds["dbname"])


def digest(lab, table: str) -> str:
    return sql(lab, f"SELECT count(*) || ':' || coalesce(sum(hashtextextended(t::text, 0)), 0) "
                    f"FROM {table} AS t")


def corrupt(table: str, how: str) -> int:
    """lab.chaos corrupt; the damaging transaction's id it prints."""
    proc = drkit("lab.chaos", "corrupt", "--table", table, "--how", how)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return int(re.search(r"damaging XID (\d+)", proc.stdout).group(1))


def outputs(run_id: str, step: str) -> dict:
    found = [e["outputs"] for e in journal(run_id)
             if e["event"] == "step_output" and e["step"] == step]
    assert found, f"run {run_id} reported nothing from step {step}"
    return found[-1]


def test_bad_requests_change_nothing_and_a_dry_run_shows_the_point_and_the_loss(lab):
    sql(lab, "DROP TABLE IF EXISTS drill_dry; CREATE TABLE drill_dry (id int PRIMARY KEY, v text);"
             " INSERT INTO drill_dry SELECT g, 'good' FROM generate_series(1, 100) g")
    timeline = database.topology()["nodes"]["us-east"]["timeline"]
    next_xid = int(sql(lab, "SELECT pg_snapshot_xmax(pg_current_snapshot())")) % 2**32
    # The transaction that created the database committed before any backup.
    created_xid = sql(lab, "SELECT xmin FROM pg_database WHERE datname = current_database()")
    cases = [
        (["--before", "2999-01-01T00:00:00Z", "--table", "drill_dry"], "in the future"),
        (["--before", "2001-01-01T00:00:00Z", "--table", "drill_dry"], "before the oldest backup"),
        (["--before-lsn", "0/10", "--table", "drill_dry"], "before the oldest backup"),
        (["--before-xid", created_xid, "--table", "drill_dry"], "before the oldest backup"),
        (["--before-xid", str(next_xid + 10**6), "--table", "drill_dry"], "no such transaction"),
        (["--before-xid", str(next_xid - 1), "--table", "no_such_table"], "no such table"),
        (["--before", "2026-12-01T00:00:00Z", "--before-xid", "1234"], "together"),
        (["--before-xid", "1234", "--strategy", "tables"], "needs --table"),
    ]
    for args, says in cases:
        proc = drkit("recover-corruption", *args, "--yes")
        assert proc.returncode == ExitCode.BAD_INPUT, (args, proc.stdout[-1000:], proc.stderr)
        assert says in proc.stderr, (args, proc.stderr)
        assert "nothing was changed" in proc.stderr, (args, proc.stderr)

    xid = corrupt("drill_dry", "update")
    proc = drkit("recover-corruption", "--before-xid", str(xid), "--table", "drill_dry",
                 "--dry-run", "--json")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    asks = next(line for line in result_of(proc)["would_change"]
                if line.startswith("approval approve: would ask: "))
    for named in (f"just before transaction {xid}", "drill_dry_corrupted_", "Estimated loss: 0 "
                  "committed transaction(s) in drill_dry", "from backup"):
        assert named in asks, (named, asks)
    # Nothing changed: the primary takes writes, the damage is still there.
    assert database.topology()["nodes"]["us-east"]["timeline"] == timeline
    sql(lab, "INSERT INTO drill_dry VALUES (1000, 'still writable')")
    assert sql(lab, "SELECT count(*) FROM drill_dry WHERE v = 'good'") == "0"
    assert sql(lab, "SELECT to_regclass('public.drill_dry_corrupted_x') IS NULL") == "t"


def test_tables_restores_the_damaged_tables_and_keeps_every_other_write(lab, record_property):
    sql(lab, "DROP TABLE IF EXISTS drill_orders, drill_notes;"
             " CREATE TABLE drill_orders (id serial PRIMARY KEY, amount int NOT NULL);"
             " INSERT INTO drill_orders (amount) SELECT g FROM generate_series(1, 200000) g;"
             " CREATE TABLE drill_notes (id int PRIMARY KEY, body text);"
             " INSERT INTO drill_notes SELECT g, 'note ' || g FROM generate_series(1, 300) g")
    good = {t: digest(lab, t) for t in ("drill_orders", "drill_notes")}
    with Canary(Path(tempfile.mkdtemp(prefix="canary-tables-"))) as canary:
        time.sleep(1.0)
        xid = corrupt("drill_orders", "update")
        time.sleep(0.5)
        corrupt("drill_notes", "drop")
        time.sleep(1.0)
        args = ["recover-corruption", "--before-xid", str(xid), "--table", "drill_orders",
                "--table", "drill_notes", "--yes", "--json"]
        # Killed while pgBackRest restores the copy, then while the tables are copied.
        run_id = kill_when(args, None, "pgBackRest to start restoring the copy",
                           task_started("restore", "Restore"), delay=0.5)
        run_id = kill_when(["recover-corruption", "--resume", run_id, "--yes"], run_id,
                           "the table copy to start",
                           lambda rid, since: started_after(rid, "copyback", since), delay=0.3)
        done = drkit("recover-corruption", "--resume", run_id, "--yes", "--json")
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        canary.keep_writing()
    result = result_of(done)
    record_property("tables_rto_s", result["rto_s"])
    state = RunState.from_events(journal(run_id))
    assert state.status == "succeeded" and state.attempts["restore"] >= 2

    # Both tables are as they were just before the UPDATE, copied once, the
    # damaged rows kept; the canary's table kept every acknowledged write.
    assert {t: digest(lab, t) for t in good} == good
    kept = f"drill_orders_corrupted_{run_id.split('-')[0].lower()}"
    assert sql(lab, f"SELECT count(*), sum(amount) FROM {kept}") == "200000|0"
    assert sql(lab, "SELECT table_name || ':' || coalesce(kept_as, '-') FROM drkit_recovered_tables"
                    f" WHERE run_id = '{run_id}' ORDER BY 1").splitlines() == \
        ["drill_notes:-", f"drill_orders:{kept}"]
    report = canary.report()
    assert report["lost"] == 0, report
    copied = outputs(run_id, "copyback")
    assert copied["kept"] == [kept]
    lost = outputs(run_id, "data-lost")
    assert lost["rpo"]["lost_writes"] == 0 and kept in lost["kept"]
    assert kept in (Path(result["reports"]["md"]).read_text())
    assert_baseline_streaming(lab)


def test_rewind_takes_the_database_back_and_loses_only_what_came_after(lab, record_property):
    sql(lab, "DROP TABLE IF EXISTS drill_rewind; CREATE TABLE drill_rewind (id int PRIMARY KEY,"
             " v text); INSERT INTO drill_rewind SELECT g, 'good' FROM generate_series(1, 500) g")
    good = digest(lab, "drill_rewind")
    with Canary(Path(tempfile.mkdtemp(prefix="canary-rewind-"))) as canary:
        time.sleep(1.0)
        before = datetime.now(UTC)
        time.sleep(0.2)
        corrupt("drill_rewind", "update")
        time.sleep(1.0)  # the canary writes after the damage: lost by a rewind
        # The seeds' entry point, with the time an operator would read off a graph.
        proc = drkit("db-recovery", "--scenario", "corruption", "--backup-time",
                     before.isoformat(), "--yes", "--json")
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        canary.keep_writing()
    result = result_of(proc)
    decided = decisions(result["run_id"])
    assert decided[0].startswith("db-recovery decided: corruption: the whole database back "
                                 "to just before "), decided[:2]
    record_property("rewind_rto_s", result["rto_s"])
    assert digest(lab, "drill_rewind") == good
    restored = next(iter(outputs(result["run_id"], "primary")["facts"].values()))
    lab.kept_dirs.append(restored["kept_data_dir"])
    primary = lab.host(role="db", dr_region="us-east")["ip"]
    check = lab.ssh(primary, f"test -f {shlex.quote(restored['kept_data_dir'])}/PG_VERSION && "
                             f"test ! -e {shlex.quote(restored['kept_data_dir'])}/postmaster.pid")
    assert check.returncode == 0, check.stderr

    # The canary rows written between the damage and the containment are gone, and
    # the report counts them: every acknowledged one the canary misses, plus at most
    # the one whose commit the containment cut off before it was acknowledged.
    lost = outputs(result["run_id"], "data-lost")
    report = canary.report()
    counted = lost["loss"]["by_table"].get("drkit_canary", 0)
    assert report["lost"] > 0, report
    assert report["lost"] <= counted <= report["lost"] + 1, (lost["loss"], report)
    assert lost["rpo"]["lost_writes"] == lost["loss"]["transactions"] >= counted
    assert_baseline_streaming(lab)
