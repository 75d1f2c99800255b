"""RB-DR-003 on the real lab: planned and unplanned failovers, failbacks, resume
after kill -9, and refusals that change nothing, measured by a canary writing
through DNS the whole time.

The tests run in file order and hand the lab on to each other:
baseline -> bad input (nothing changes) -> planned failover to eu-west
(notifying local receivers for every channel kind, one of them dead) ->
failback to us-east, killed twice and resumed -> unplanned failover (region
outage) to eu-west, through db-recovery --scenario region-failure -> failback
with the diverged old primary rewound -> the primary's host crashed, unplanned
failover to the asynchronous ap-south through db-recovery --scenario
primary-failure, RPO evidence checked against the canary -> failback -> a region
outage with ap-south's replica's disk lost too: db-recovery --scenario region-failure
restores ap-south's database from the backups, what is lost checked against the
canary -> failback. A DNS sampler runs throughout.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from drkit.errors import ExitCode
from drkit.journal import RunState
from drkit.lab import chaos, controller, database, netns
from tests.lab.notify_receivers import (
    assert_every_channel_notified,
    notify_environment,
    receivers,
)
from tests.lab.runs import (
    PROJECT,
    Canary,
    DnsSampler,
    assert_only_unarchived_writes_lost,
    decisions,
    drkit,
    expected_sync_names,
    journal,
    kill_when,
    result_of,
    started_after,
    task_started,
    wait,
)

pytestmark = [pytest.mark.lab, pytest.mark.slow]


# ----------------------------------------------------------------------------- helpers


def topology() -> dict:
    return database.topology()


def node_rows() -> dict:
    return {r: (n.get("role"), n.get("host")) for r, n in topology()["nodes"].items()}


def db_answer() -> list[str]:
    return controller.dns_answers()["addresses"]


@pytest.fixture(scope="module")
def lab(lab_estate):
    """The full lab with a DNS sampler running for the whole module."""
    from tests.lab.conftest import require_site

    require_site(lab_estate)
    lab_site = lab_estate
    sampler = DnsSampler()
    sampler.thread.start()
    lab_site.dns = sampler
    yield lab_site
    sampler.stop()
    assert sampler.samples, "the DNS sampler never got an answer"
    several = [(t, a) for t, a in sampler.samples if len(a) > 1]
    assert not several, f"db.lab.internal answered several primaries at once: {several[:3]}"


def assert_baseline(lab) -> None:
    topo = topology()
    assert topo["primary_region"] == "us-east", topo
    assert db_answer() == [topo["primary_host"]]
    # The estate's synchronous region: a failback waits for it again (the
    # promotion starts asynchronous, the repoint restores it).
    assert topo["nodes"]["us-east"]["synchronous_standby_names"] == expected_sync_names(), \
        topo["nodes"]


def lsn(text: str) -> int:
    high, low = text.split("/")
    return (int(high, 16) << 32) | int(low, 16)


def switchover_outputs(run_id: str) -> tuple[dict, dict]:
    """The fence's and the promotion's outputs in the last attempt of step promote."""
    facts = [e for e in journal(run_id)
             if e["event"] == "step_output" and e["step"] == "promote"][-1]["outputs"]["facts"]
    fence = next(f for f in facts.values() if "fenced_lsn" in f)
    promote = next(f for f in facts.values() if "timeline_after" in f)
    return fence, promote


def ip_of(lab, region: str) -> str:
    return lab.host(role="db", dr_region=region)["ip"]


def in_host(lab, region: str, sql: str) -> subprocess.CompletedProcess[str]:
    """Run SQL on a region's database from inside its host's namespace (works while
    the region is cut off from everything else)."""
    creds = database.credentials()
    host = lab.host(role="db", dr_region=region)
    return subprocess.run(
        ["ip", "netns", "exec", host["ns"], "psql", "-XAtq", "-v", "ON_ERROR_STOP=1",
         "-h", host["ip"], "-U", creds["username"], "-d", creds["dbname"], "-c", sql],
        capture_output=True, text=True, timeout=30,
        env={**os.environ, "PGPASSWORD": creds["password"], "PGCONNECT_TIMEOUT": "5"})


# ----------------------------------------------------------------------------- bad input


def _refused(lab, proc, code: int, text: str) -> None:
    assert proc.returncode == code, (proc.returncode, proc.stdout[-1500:], proc.stderr[-1500:])
    assert text in proc.stderr, proc.stderr[-2000:]


def test_bad_input_is_refused_with_its_exit_code_and_changes_nothing(lab, tmp_path):
    assert_baseline(lab)
    before, dns_before = node_rows(), db_answer()

    _refused(lab, drkit("failover", "--region", "mars", "--yes"),
             ExitCode.BAD_INPUT, "unknown region 'mars'")
    _refused(lab, drkit("failover", "--region", "us-east", "--yes"),
             ExitCode.PREFLIGHT_FAILED, "us-east already holds the primary")
    # db-recovery asks the estate first: a primary that answers has not failed.
    for args in (["--scenario", "primary-failure"],
                 ["--scenario", "region-failure", "--target-region", "eu-west"]):
        _refused(lab, drkit("db-recovery", *args, "--yes"), ExitCode.BAD_INPUT,
                 "the primary in us-east (")

    # A region with no replica: the same estate, described with a fourth region
    # that has no database instance.
    env = tmp_path / "lab-plus"
    shutil.copytree(PROJECT / "inventory" / "lab", env)
    settings_file = env / "group_vars" / "all" / "drkit.yml"
    settings = yaml.safe_load(settings_file.read_text())
    settings["drkit"]["regions"]["us-west"] = {"cloud_region": "us-west-1",
                                               "role": "warm-standby", "zones": []}
    settings_file.write_text(yaml.safe_dump(settings))
    _refused(lab, drkit("failover", "--region", "us-west", "--env", str(env), "--yes"),
             ExitCode.PREFLIGHT_FAILED, "us-west has no reachable database replica")

    assert node_rows() == before
    assert db_answer() == dns_before


# ----------------------------------------------------------------------------- planned


def test_planned_failover_loses_nothing_under_load_proves_rpo_zero_and_notifies(
        lab, tmp_path, monkeypatch, record_property):
    """Run with a copy of the lab's environment whose notification channels are
    local receivers (one of them dead): the same estate, every channel told."""
    assert_baseline(lab)
    old_primary = ip_of(lab, "us-east")
    with receivers() as (http, smtp, mailbox), Canary(tmp_path / "canary") as canary:
        env_dir = notify_environment(tmp_path, http, smtp.port, monkeypatch)
        proc = drkit("failover", "--region", "eu-west", "--yes", "--json", "--env", str(env_dir))
        result = result_of(proc)
        assert proc.returncode == 0, proc.stderr[-3000:]
        canary.keep_writing()
        assert_every_channel_notified(result, http, mailbox, proc.stdout + proc.stderr)
    report = canary.report()
    record_property("planned_write_downtime_s", report["failed_write_s"])
    record_property("planned_rto_s", result["rto_s"])
    assert report["acknowledged"] > 0 and report["lost"] == 0

    topo = topology()
    west = ip_of(lab, "eu-west")
    assert topo["primary_region"] == "eu-west"
    assert db_answer() == [west]
    assert topo["nodes"]["us-east"]["role"] is None, "the old primary still answers"
    status = lab.ssh(old_primary, "runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl "
                                  "status -D /var/lib/postgresql/15/main")
    assert status.returncode == 3, status.stdout  # 3: no server running
    south = topo["nodes"]["ap-south"]
    assert south["role"] == "replica" and south["streaming"]
    assert south["receiver"]["sender_host"] == west

    full = json.loads(Path(result["reports"]["json"]).read_text())
    assert full["achieved"]["rpo_s"] == 0.0 and full["achieved"]["rto_s"] is not None
    evidence = full["rpo_evidence"][0]["detail"]
    assert evidence["fenced_lsn"] == evidence["target_replay_lsn"]
    # The write outage was two prepared remote actions started together: the
    # fence script stopped the old primary after the target replayed the fenced
    # LSN; the promotion waited in the WAL the target replayed for the fence's
    # marker and then the old primary's shutdown checkpoint, the last record it
    # wrote, and promoted once it had replayed exactly that.
    fence, promote = switchover_outputs(result["run_id"])
    assert fence["fenced"] and fence["stopped"] and fence["rpo_bytes"] == 0
    seen = promote["fence_seen"]
    assert seen["shutdown_checkpoint_lsn"] == fence["shutdown_checkpoint_lsn"], (seen, fence)
    assert (lsn(seen["marker_lsn"]) < lsn(fence["fenced_lsn"])
            <= lsn(seen["shutdown_checkpoint_lsn"])), (seen, fence)
    assert promote["promoted"]
    assert lsn(promote["replay_lsn"]) >= lsn(seen["shutdown_checkpoint_lsn"])


# ----------------------------------------------------------------------------- backups


def test_after_a_planned_failover_backups_and_wal_follow_the_new_primary(lab, tmp_path):
    """The promoted node backs up and archives on the same stanza: a restore of
    everything archived holds the writes acknowledged on the new timeline."""
    assert topology()["primary_region"] == "eu-west"
    with Canary(tmp_path / "canary") as canary:
        proc = drkit("backup", "--type", "incr", "--yes", "--json")
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
        source = next(e["outputs"] for e in journal(result_of(proc)["run_id"])
                      if e["event"] == "step_output" and e["step"] == "backup")
        # Started and stopped on the new primary (the files come from a standby).
        assert "eu-west" in next(iter(source["facts"].values()))["primary"]
        canary.keep_writing()
        acked = len(canary.acks)  # all archived by the restore's archive-now step
        proc = drkit("restore", "--yes", "--json")
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
        run_id = result_of(proc)["run_id"]
    copy = next(iter(next(e["outputs"] for e in journal(run_id)
                          if e["event"] == "step_output" and e["step"] == "restore")
                     ["facts"].values()))
    dbname = database.credentials()["dbname"]
    others = int(in_host(lab, "eu-west", "SELECT count(*) FROM drkit_canary WHERE run_id <> "
                                         f"'{canary.writer.config.run_id}'").stdout)
    assert copy["tables"][dbname]["public.drkit_canary"]["rows"] >= others + acked


# ----------------------------------------------------------------------------- resume


def test_a_failback_killed_in_promote_and_in_dns_app_resumes_and_promotes_once(lab, tmp_path):
    """kill -9 inside the promote step once db. has moved (before the fence or
    during it), then, resumed, once the app's DNS cutover starts, then, resumed
    again, as the switchover task (fence and promotion together) starts (the old
    primary fenced by this attempt or an earlier one, the promotion under way or
    done already)."""
    assert topology()["primary_region"] == "eu-west"
    timeline_before = topology()["nodes"]["eu-west"]["timeline"]
    us_east = ip_of(lab, "us-east")
    with Canary(tmp_path / "canary") as canary:
        run_id = kill_when(
            ["failback", "--region", "us-east", "--yes"], None,
            "db. to move inside the promote step",
            lambda rid, since: started_after(rid, "promote", since) and db_answer() == [us_east])
        # scale-up may have been running too, in the other lane
        assert "promote" in RunState.from_events(journal(run_id)).interrupted_steps

        kill_when(["failback", "--resume", run_id, "--yes"], run_id,
                  "dns-app to start in the resumed run",
                  lambda rid, since: started_after(rid, "dns-app", since), delay=1.0)
        assert "dns-app" in RunState.from_events(journal(run_id)).interrupted_steps

        # The promote step is still unfinished (it runs ~3x as long as the lane
        # that holds dns-app): its playbook starts over and reaches the promotion.
        resumed_at = datetime.now(UTC)
        kill_when(["failback", "--resume", run_id, "--yes"], run_id,
                  "the switchover (fence and promotion) to start in the resumed run",
                  task_started("promote", "Fence the old primary and promote the target, at once",
                               since=resumed_at), delay=0.1)
        assert "promote" in RunState.from_events(journal(run_id)).interrupted_steps

        done = drkit("failback", "--resume", run_id, "--yes")
        assert done.returncode == 0, done.stderr[-3000:]
        canary.keep_writing()
    state = RunState.from_events(journal(run_id))
    assert state.status == "succeeded"
    assert state.attempts["dns-app"] >= 2 and state.attempts["promote"] >= 3
    assert state.attempts["rejoin"] == 1  # completed before the kills: skipped on resume
    topo = topology()
    assert topo["primary_region"] == "us-east"
    assert topo["nodes"]["us-east"]["timeline"] == timeline_before + 1  # promoted once
    assert canary.report()["lost"] == 0
    # Whichever attempt fenced, the promotion started from a target that had
    # replayed what the old primary last wrote (its fenced LSN or, found stopped,
    # its last checkpoint).
    fence, promote = switchover_outputs(run_id)
    assert lsn(promote["replay_lsn"]) >= lsn(fence["fenced_lsn"])
    assert_baseline(lab)


# ----------------------------------------------------------------------------- unplanned


def test_unplanned_failover_during_a_region_outage_loses_no_synchronous_write(
        lab, tmp_path, record_property):
    assert_baseline(lab)
    with Canary(tmp_path / "canary") as canary:
        chaos.region_outage(lab.paths, "us-east")
        try:
            # The old primary keeps running inside the cut-off region; a local
            # write there (not waiting for the synchronous standby) diverges.
            wrote = in_host(lab, "us-east",
                            "SET synchronous_commit TO local; "
                            "CREATE TABLE IF NOT EXISTS drkit_divergent (note text); "
                            "INSERT INTO drkit_divergent VALUES ('written during the outage')")
            assert wrote.returncode == 0, wrote.stderr
            assert not netns.reachable(lab.host(role="db", dr_region="eu-west")["ns"],
                                       ip_of(lab, "us-east"), 5432)

            # Refusals first (they change nothing): an asynchronous target without
            # --allow-data-loss, and its approval with no terminal and no --yes.
            _refused(lab, drkit("failover", "--region", "ap-south", "--mode", "unplanned",
                                "--yes"), ExitCode.PREFLIGHT_FAILED, "--allow-data-loss")
            _refused(lab, drkit("failover", "--region", "ap-south", "--mode", "unplanned",
                                "--allow-data-loss"), ExitCode.APPROVAL_REQUIRED, "--yes")
            assert topology()["nodes"]["ap-south"]["role"] == "replica"

            # The seeds' entry point for a lost region: RB-DR-003 unplanned, decided.
            proc = drkit("db-recovery", "--scenario", "region-failure", "--target-region",
                         "eu-west", "--yes", "--json")
            result = result_of(proc)
            assert proc.returncode == 0, proc.stderr[-3000:]
            canary.keep_writing()
        finally:
            chaos.restore(lab.paths, region="us-east", wait_s=30)
    report = canary.report()
    record_property("unplanned_sync_lost", report["lost"])
    record_property("unplanned_write_downtime_s", report["failed_write_s"])
    assert report["lost"] == 0
    assert topology()["primary_region"] == "eu-west"
    assert db_answer() == [ip_of(lab, "eu-west")]
    assert result["rpo_s"] == 0.0
    decided = decisions(result["run_id"])
    assert decided[0] == ("db-recovery decided: region-failure: us-east is lost; eu-west has a "
                          "synchronous replica that answers: promoting it (RB-DR-003 unplanned, "
                          "as drkit failover --region eu-west --mode unplanned)"), decided[:2]
    assert decided[0] in Path(result["reports"]["md"]).read_text()


def test_failback_rewinds_the_diverged_old_primary_and_loses_nothing(lab, tmp_path):
    assert topology()["primary_region"] == "eu-west"
    with Canary(tmp_path / "canary") as canary:
        proc = drkit("failback", "--region", "us-east", "--yes", "--json")
        result = result_of(proc)
        assert proc.returncode == 0, proc.stderr[-3000:]
        canary.keep_writing()
    assert canary.report()["lost"] == 0
    assert_baseline(lab)
    rejoin = next(e for e in journal(result["run_id"])
                  if e["event"] == "step_output" and e["step"] == "rejoin")
    facts = next(iter(rejoin["outputs"]["facts"].values()))
    assert facts["action"] in ("rewound", "rebasebackup"), facts
    gone = lab.psql(ip_of(lab, "us-east"),
                    "SELECT count(*) FROM pg_tables WHERE tablename = 'drkit_divergent'",
                    db=database.credentials()["dbname"])
    assert gone == "0", "the write made in the cut-off region survived the rejoin"


def test_unplanned_async_failover_reports_rpo_evidence_that_agrees_with_the_canary(
        lab, tmp_path, record_property):
    assert_baseline(lab)
    old_primary = ip_of(lab, "us-east")
    with Canary(tmp_path / "canary") as canary:
        # A primary failure: its host crashes (every process killed, unplugged);
        # the rest of us-east stays up.
        chaos.node_kill(lab.paths, old_primary)
        try:
            # The seeds' entry point, the asynchronous replica named.
            proc = drkit("db-recovery", "--scenario", "primary-failure", "--target-region",
                         "ap-south", "--allow-data-loss", "--yes", "--json")
            result = result_of(proc)
            # Accepted loss beyond the RPO target of 0 s: the run completes, and
            # says it missed the target (exit 6) whenever its evidence shows a loss.
            assert result["status"] == "succeeded", proc.stderr[-3000:]
            expected = ExitCode.TARGET_MISSED if result["rpo_s"] else ExitCode.OK
            assert proc.returncode == expected, proc.stderr[-3000:]
            canary.keep_writing()
        finally:
            chaos.restore(lab.paths, host=old_primary, wait_s=30)
    decided = decisions(result["run_id"])
    assert decided[0] == ("db-recovery decided: primary-failure: the primary in us-east does "
                          "not answer; the standby promoted is "
                          "ap-south's asynchronous replica: promoting it (RB-DR-003 unplanned, "
                          "as drkit failover --region ap-south --mode unplanned)"), decided[:2]
    report = canary.report()
    record_property("unplanned_async_lost", report["lost"])
    full = json.loads(Path(result["reports"]["json"]).read_text())
    evidence = [e for e in full["rpo_evidence"] if e["step"] == "promote"]
    assert evidence, full["rpo_evidence"]
    seconds = evidence[0]["seconds"]
    last_replayed = evidence[0]["detail"]["last_replayed_commit"]
    if report["lost"]:
        # Writes were lost: the evidence must say a loss window exists, and every
        # lost write was acknowledged after the last commit the target replayed.
        assert seconds and seconds > 0
        replayed_at = datetime.fromisoformat(last_replayed).timestamp()
        acks = {a["seq"]: a for a in canary.acks}
        lost_acked_at = [float(acks[s]["ack"]) for s in report["lost_seqs"] if s in acks]
        assert all(at >= replayed_at for at in lost_acked_at), (lost_acked_at[:3],
                                                                 last_replayed)
    # Back home for whatever runs next.
    back = drkit("failback", "--region", "us-east", "--yes")
    assert back.returncode == 0, back.stderr[-3000:]
    assert_baseline(lab)


def test_a_region_failure_with_no_replica_to_promote_restores_the_target_from_the_backups(
        lab, tmp_path, record_property):
    assert_baseline(lab)
    proc = drkit("backup", "--yes", "--json")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    target = ip_of(lab, "ap-south")
    kept = ""
    timeline = topology()["nodes"]["us-east"]["timeline"]
    # ap-south's replica lost its disk (the server down, its data directory gone,
    # the host up): nothing there to promote, so its database comes from the
    # backups onto the empty host.
    lost = lab.ssh(target, "runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl stop "
                           "-D /var/lib/postgresql/15/main -m immediate && "
                           "rm -rf /var/lib/postgresql/15/main")
    assert lost.returncode == 0, lost.stderr
    try:
        with Canary(tmp_path / "canary") as canary:
            # The writes so far reach the archive (as archive_timeout would do);
            # the ones after it only the primary's WAL, lost with its region.
            primary = ip_of(lab, "us-east")
            segment = lab.psql(primary, "SELECT pg_walfile_name(pg_switch_wal())")
            archived_by = time.time()
            wait("the switched WAL segment in the archive", lambda: lab.psql(
                primary, "SELECT last_archived_wal FROM pg_stat_archiver") >= segment, 120)
            canary.keep_writing()
            chaos.region_outage(lab.paths, "us-east")
            try:
                # Refused without the loss accepted: nothing changes.
                _refused(lab, drkit("db-recovery", "--scenario", "region-failure",
                                    "--target-region", "ap-south", "--yes"),
                         ExitCode.BAD_INPUT, "--allow-data-loss")
                # (test_rebuild kills the same restore playbook and resumes it.)
                proc = drkit("db-recovery", "--scenario", "region-failure", "--target-region",
                             "ap-south", "--allow-data-loss", "--yes", "--json")
                result = result_of(proc)
                assert result["status"] == "succeeded", proc.stderr[-3000:]
                canary.keep_writing()
            finally:
                chaos.restore(lab.paths, region="us-east", wait_s=30)
        restored = [f for e in journal(result["run_id"])
                    if e["event"] == "step_output" and e["step"] == "restore"
                    for f in e["outputs"]["facts"].values() if "restored" in f][-1]
        kept = restored["kept_data_dir"]
        decided = decisions(result["run_id"])
        assert decided[0].startswith(
            "db-recovery decided: region-failure: us-east is lost; no streaming replica in "
            "ap-south ("), decided[:3]
        assert "Connection refused" in decided[0]
        assert decided[0].endswith(
            "restoring the database there from the backups (RB-DR-003 unplanned from backup, "
            "as drkit failover --region ap-south --mode unplanned --source backup)")
        assert any(d.startswith("plan: restoring backup ") and "from repo2 (ap-south)" in d
                   for d in decided), decided
        assert topology()["primary_region"] == "ap-south"
        assert db_answer() == [target]
        assert restored["amcheck_ok"] in (True, "True", "true"), restored["amcheck_tail"]
        # With no history of its own the restore followed the one eu-west is on.
        assert int(restored["restored"]["target_timeline"]) == timeline

        # What the restore replayed is every write acknowledged up to its last
        # commit; what is lost was acknowledged after it (not archived yet), and
        # the reported RPO covers it.
        report = assert_only_unarchived_writes_lost(canary, restored, result["rpo_s"],
                                                    archived_by)
        record_property("from_backup_lost", report["lost"])
        record_property("from_backup_rto_s", result["rto_s"])
        record_property("from_backup_rpo_s", result["rpo_s"])
        assert proc.returncode == (ExitCode.TARGET_MISSED if result["rpo_s"] else ExitCode.OK)
        # eu-west streams from the restored primary.
        west = topology()["nodes"]["eu-west"]
        assert west["role"] == "replica" and west["streaming"], west
    finally:
        # Back home for whatever runs next (ap-south rejoins as a replica).
        back = drkit("failback", "--region", "us-east", "--yes")
        if kept:
            lab.ssh(target, f"rm -rf -- {shlex.quote(kept)}")
    assert back.returncode == 0, back.stderr[-3000:]
    assert_baseline(lab)
