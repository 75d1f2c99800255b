"""RB-DR-006 --into db on the real lab: a backup restored onto the live database to
a point in time (rows written before it are back, rows written after it are gone),
the old data directory kept, every replica rebuilt and streaming from the restored
primary, db.lab.internal still answering it and taking writes; and a restore killed
with SIGKILL in the middle of its restore step, then resumed.

What it leaves behind: the primary is still us-east's node with every replica
streaming from it (the baseline topology the tests after it expect), on a new
timeline, without the rows written after the target time (the table
drkit_restore_into holds the test's rows). The old data directories the runs kept
(<data dir>.before-restore-<run id> on the primary's host) are checked, then removed
by the module's teardown: a real run keeps them for forensics, here they would only
fill the disk. The restored primary archives on the same stanza, so later backups
and restores follow its timeline.
"""

from __future__ import annotations

import shlex
import time
from datetime import UTC, datetime

import psycopg
import pytest

from drkit.errors import ExitCode
from drkit.journal import RunState
from drkit.lab import controller, database
from tests.lab.runs import (
    assert_baseline_streaming,
    drkit,
    journal,
    kill_when,
    replica_nodes,
    result_of,
    task_started,
    wait,
)

pytestmark = [pytest.mark.lab, pytest.mark.slow]

TABLE = "drkit_restore_into"


@pytest.fixture(scope="module")
def lab(lab_estate):
    from tests.lab.conftest import require_site

    require_site(lab_estate)
    kept: list[str] = []
    lab_estate.kept_dirs = kept
    yield lab_estate
    primary = lab_estate.host(role="db", dr_region="us-east")["ip"]
    for path in kept:
        lab_estate.ssh(primary, f"rm -rf -- {shlex.quote(path)}")


def through_dns() -> psycopg.Connection:
    """A connection to db.lab.internal as the app connects: the name resolved by the
    lab's resolver, the estate's credentials."""
    answer = controller.dns_answers()
    assert answer.get("addresses"), answer
    creds = database.credentials()
    return psycopg.connect(host="db.lab.internal", hostaddr=answer["addresses"][0],
                           port=int(creds.get("port", 5432)), dbname=creds["dbname"],
                           user=creds["username"], password=creds["password"],
                           connect_timeout=5, autocommit=True)


def write(phase: str, n: int) -> None:
    with through_dns() as conn:
        conn.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} (n int, phase text, "
                     "at timestamptz DEFAULT clock_timestamp())")
        for i in range(n):
            conn.execute(f"INSERT INTO {TABLE} (n, phase) VALUES (%s, %s)", (i, phase))


def phases(lab, address: str) -> dict[str, int]:
    """Rows per phase in the test's table on the node at ``address`` (a replica too)."""
    dbname = database.credentials()["dbname"]
    out = lab.psql(address, f"SELECT phase, count(*) FROM {TABLE} GROUP BY phase", db=dbname)
    return {line.split("|")[0]: int(line.split("|")[1]) for line in out.splitlines() if line}


def facts(run_id: str) -> dict:
    """What the `primary` step reported (the restored primary's facts)."""
    outputs = [e["outputs"] for e in journal(run_id)
               if e["event"] == "step_output" and e["step"] == "primary"]
    assert outputs, f"run {run_id} reported nothing from its primary step"
    return next(iter(outputs[-1]["facts"].values()))


def test_bad_input_and_a_missing_approval_change_nothing(lab):
    before = database.topology()["nodes"]["us-east"]["timeline"]
    proc = drkit("restore", "--into", "web")
    assert proc.returncode == ExitCode.BAD_INPUT
    assert "use one of: scratch, db" in proc.stderr
    proc = drkit("restore", "--into", "db")
    assert proc.returncode == ExitCode.APPROVAL_REQUIRED, proc.stderr[-2000:]
    assert "needs approval at step(s) approve" in proc.stderr
    assert database.topology()["nodes"]["us-east"]["timeline"] == before


def test_restore_into_db_to_a_time_brings_back_what_came_before_it_and_nothing_after(
        lab, record_property):
    proc = drkit("backup", "--type", "full", "--yes", "--json")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    timeline_before = database.topology()["nodes"]["us-east"]["timeline"]
    write("before", 50)
    time.sleep(1.0)
    target = datetime.now(UTC)
    time.sleep(1.0)
    write("after", 50)

    primary = lab.host(role="db", dr_region="us-east")["ip"]
    replicas = [lab.db_node(n.key)["ip"] for n in replica_nodes()]

    # A dry run shows the approval's question, naming what would be overwritten
    # and lost, and changes nothing.
    proc = drkit("restore", "--into", "db", "--target-time", target.isoformat(), "--dry-run",
                 "--json")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    asks = next(line for line in result_of(proc)["would_change"]
                if line.startswith("approval approve: would ask: "))
    for named in (primary, "/var/lib/postgresql/15/main", ".before-restore-", *replicas,
                  target.isoformat(), f"every commit after {target:%Y-%m-%d %H:%M:%S}Z"):
        assert named in asks, (named, asks)
    assert database.topology()["nodes"]["us-east"]["timeline"] == timeline_before
    assert phases(lab, primary) == {"before": 50, "after": 50}

    proc = drkit("restore", "--into", "db", "--target-time", target.isoformat(), "--yes",
                 "--json")
    result = result_of(proc)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    record_property("restore_into_db_rto_s", result["rto_s"])
    record_property("restore_into_db_rpo_s", result["rpo_s"])

    restored = facts(result["run_id"])
    lab.kept_dirs.append(restored["kept_data_dir"])
    assert restored["amcheck_ok"] in (True, "True", "true"), restored["amcheck_tail"]
    assert restored["data_checksums"] == "on"
    assert phases(lab, primary) == {"before": 50}
    # Recovery followed the replaced cluster's own timeline, not the newest one
    # the archive holds.
    assert int(restored["restored"]["target_timeline"]) == timeline_before

    # The approval named what it overwrote and what was lost.
    approval = next(e for e in journal(result["run_id"]) if e["event"] == "approval")
    assert approval["how"] == "yes-flag"

    topo = assert_baseline_streaming(lab)
    assert topo["nodes"]["us-east"]["timeline"] > timeline_before
    for node in replica_nodes():
        replica = topo["nodes"][node.key]["host"]
        wait(f"{node.key} to replay the restored data",
             lambda replica=replica: phases(lab, replica) == {"before": 50}, 60)

    with through_dns() as conn:
        conn.execute(f"INSERT INTO {TABLE} (n, phase) VALUES (0, 'through-dns')")
        assert conn.execute(f"SELECT count(*) FROM {TABLE} WHERE phase = 'through-dns'"
                            ).fetchone()[0] == 1

    # The old cluster is kept, stopped, whole: it still holds the rows after T.
    kept = restored["kept_data_dir"]
    assert kept.startswith(restored["data_dir"] + ".before-restore-")
    check = lab.ssh(primary, f"test -f {shlex.quote(kept)}/PG_VERSION && "
                             f"test ! -e {shlex.quote(kept)}/postmaster.pid")
    assert check.returncode == 0, f"{kept} is not a kept, stopped cluster: {check.stderr}"


def test_restore_into_db_killed_during_its_restore_step_resumes_and_completes(lab):
    write("before-kill", 10)
    # pgBackRest's restore itself: the old cluster is stopped and kept, the data
    # directory half-restored.
    run_id = kill_when(["restore", "--into", "db", "--yes"], None,
                       "pgBackRest to start restoring onto the primary",
                       task_started("primary", "Restore"), delay=0.5)
    assert "primary" in RunState.from_events(journal(run_id)).interrupted_steps
    assert database.topology()["primary_region"] is None, "the primary still answers"

    done = drkit("restore", "--resume", run_id, "--yes")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    state = RunState.from_events(journal(run_id))
    assert state.status == "succeeded" and state.attempts["primary"] == 2
    lab.kept_dirs.append(facts(run_id)["kept_data_dir"])

    assert_baseline_streaming(lab)
    primary = lab.host(role="db", dr_region="us-east")["ip"]
    # To the end of the archive: what was written before the run is all there.
    assert phases(lab, primary).get("before-kill") == 10
    listing = lab.ssh(primary, "ls -d /var/lib/postgresql/15/main.before-restore-*")
    assert f"main.before-restore-{run_id}" in listing.stdout
