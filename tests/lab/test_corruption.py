"""RB-DR-004 data corruption on the real lab: bad requests are refused (exit 2)
with the estate unchanged, and a dry run shows the recovery point, the estimated
loss and what would be replaced.

The end-to-end scenarios (tables under canary load with kill -9 in the restore
and the copy; rewind) are on branch wip/rb-dr-004-lab until they pass on the lab
(issue 13): tables ran up to its data-lost step, rewind has not run.
"""

from __future__ import annotations

import re
import shlex

import pytest

from drkit.errors import ExitCode
from drkit.lab import database
from tests.lab.runs import (
    drkit,
    journal,
    result_of,
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
    cases = [
        (["--before", "2999-01-01T00:00:00Z", "--table", "drill_dry"], "in the future"),
        (["--before", "2001-01-01T00:00:00Z", "--table", "drill_dry"], "before the oldest backup"),
        (["--before-lsn", "0/10", "--table", "drill_dry"], "before the oldest backup"),
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
