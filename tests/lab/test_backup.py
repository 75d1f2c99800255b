"""Backups on the real lab: pgBackRest into every region's repository over TLS,
a restore to a point in time onto a scratch host checked against the canary's
acknowledged writes, verification that names a damaged object, a restore killed
and resumed, refusals that change nothing, a restore around a damaged
repository, and a restore with the primary's region cut off.

The tests run in file order on the shared lab and leave it in its baseline
topology (nothing here fails over): refusals before any backup exists ->
backup and point-in-time restore under load -> a restore killed mid-way and
resumed -> a damaged repository (ap-south's, left damaged) -> a fresh backup,
eu-west's newest damaged, restored around, refused, repaired -> us-east cut
off, restored from ap-south, the region back.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from drkit.errors import ExitCode
from drkit.journal import RunState
from drkit.lab import control_plane, database
from tests.lab.runs import (
    Canary,
    decisions,
    drkit,
    journal,
    kill_when,
    result_of,
    started_after,
    wait,
)

pytestmark = [pytest.mark.lab, pytest.mark.slow]


@pytest.fixture(scope="module")
def lab(lab_estate):
    from tests.lab.conftest import require_site

    require_site(lab_estate)
    return lab_estate


def restore_instances() -> list[str]:
    """Instances with Role=restore that are not terminated, in every region."""
    found = []
    for region in ("us-east-1", "eu-west-1", "ap-south-1"):
        ec2 = control_plane.client("ec2", region)
        for res in ec2.describe_instances(Filters=[
                {"Name": "tag:Role", "Values": ["restore"]},
                {"Name": "instance-state-name",
                 "Values": ["pending", "running", "stopping", "stopped"]}])["Reservations"]:
            found += [i["InstanceId"] for i in res["Instances"]]
    return found


def restore_facts(run_id: str) -> dict:
    """What the restore step reported (the scratch host's facts)."""
    outputs = [e["outputs"] for e in journal(run_id)
               if e["event"] == "step_output" and e["step"] == "restore"]
    assert outputs, f"run {run_id} reported no restore outputs"
    return next(iter(outputs[-1]["facts"].values()))


def _refused(proc, code: int, text: str) -> None:
    assert proc.returncode == code, (proc.returncode, proc.stdout[-1500:], proc.stderr[-1500:])
    assert text in proc.stderr + proc.stdout, proc.stderr[-2000:]


def test_bad_input_is_refused_and_nothing_is_created(lab):
    _refused(drkit("restore", "--yes"), ExitCode.PREFLIGHT_FAILED,
             "take one with `invoke backup`")
    _refused(drkit("restore", "--target-time", "2999-01-01T00:00:00Z", "--yes"),
             ExitCode.BAD_INPUT, "in the future")
    _refused(drkit("restore", "--backup", "yesterday", "--yes"), ExitCode.BAD_INPUT,
             "is not a backup label")
    _refused(drkit("restore", "--region", "mars", "--yes"), ExitCode.BAD_INPUT,
             "unknown region 'mars'")
    _refused(drkit("restore", "--region", "us-east", "--yes"), ExitCode.PREFLIGHT_FAILED,
             "region us-east has no backup repository")
    _refused(drkit("backup", "--type", "weekly", "--yes"), ExitCode.BAD_INPUT,
             "not a backup type")
    assert restore_instances() == []


def test_a_point_in_time_restore_has_every_write_acknowledged_before_it_and_none_after(
        lab, tmp_path, record_property):
    with Canary(tmp_path / "canary") as canary:
        proc = drkit("backup", "--type", "full", "--yes", "--json")
        assert proc.returncode == 0, proc.stderr[-3000:]
        taken = next(e["outputs"] for e in journal(result_of(proc)["run_id"])
                     if e["event"] == "step_output" and e["step"] == "backup")
        taken = next(iter(taken["facts"].values()))["backups"]
        assert sorted(b["repo"] for b in taken) == [1, 2]
        assert all(b["lsn_stop"] and b["size_bytes"] > 0 for b in taken)

        canary.keep_writing(120)
        target = datetime.now(UTC)
        canary.keep_writing(120)
        proc = drkit("restore", "--target-time", target.isoformat(), "--yes", "--json")
        result = result_of(proc)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    record_property("restore_rto_s", result["rto_s"])

    facts = restore_facts(result["run_id"])
    assert facts["amcheck_ok"] in (True, "True", "true"), facts["amcheck_tail"]
    assert facts["data_checksums"] == "on"
    dbname = database.credentials()["dbname"]
    restored = facts["tables"][dbname]["public.drkit_canary"]["rows"]

    # One writer, numbered writes one after another: the canary's rows in the copy
    # are a prefix of its sequence, so bounds on their count pin which ones.
    run_id = canary.writer.config.run_id
    acks = canary.acks
    failures = [json.loads(line) for line in
                (canary.out / "failures.jsonl").read_text().splitlines()] \
        if (canary.out / "failures.jsonl").exists() else []
    t = target.timestamp()
    acked_before = sum(1 for a in acks if a["ack"] < t)
    started_by = sum(1 for a in acks + failures if a["t"] <= t)
    others = int(lab.psql(lab.host(role="db", dr_region="us-east")["ip"],
                          f"SELECT count(*) FROM drkit_canary WHERE run_id <> '{run_id}'",
                          db=dbname))
    assert acked_before > 100
    assert others + acked_before <= restored <= others + started_by, (
        others, acked_before, restored, started_by)
    assert restore_instances() == [], "the scratch restore host was left behind"

    listing = json.loads(drkit("backup.list", "--json").stdout)
    assert all(s["backups"] for s in listing), listing


def test_a_restore_killed_during_the_restore_step_resumes_and_leaves_no_host(lab):
    run_id = kill_when(["restore", "--yes"], None, "the restore step to start",
                       lambda rid, since: started_after(rid, "restore", since), delay=3.0)
    assert "restore" in RunState.from_events(journal(run_id)).interrupted_steps
    assert restore_instances(), "the kill came before the scratch host existed"
    done = drkit("restore", "--resume", run_id, "--yes")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    state = RunState.from_events(journal(run_id))
    assert state.status == "succeeded" and state.attempts["restore"] == 2
    assert state.attempts["host"] == 1
    wait("the scratch host to be gone", lambda: not restore_instances(), 60)


def test_verify_names_the_damaged_object(lab):
    ok = drkit("backup.verify", "--yes")
    assert ok.returncode == 0, ok.stdout[-2000:] + ok.stderr[-3000:]
    damage = drkit("lab.chaos", "damage-backup", "--region", "ap-south")
    assert damage.returncode == 0, damage.stderr
    damaged_key = damage.stdout.split("s3://", 1)[1].split(":", 1)[0].split("/", 1)[1]

    bad = drkit("backup.verify", "--yes")
    _refused(bad, ExitCode.STEP_FAILED, "repo2 (ap-south) is damaged")
    name = damaged_key.rsplit("/", 1)[-1].split(".")[0]
    assert name in bad.stderr + bad.stdout, bad.stderr[-2000:]


def test_a_damaged_backup_is_restored_from_another_repository_or_refused_naming_it(lab):
    fresh = drkit("backup", "--type", "full", "--yes")  # the newest backup of each repo intact
    assert fresh.returncode == 0, fresh.stdout[-2000:] + fresh.stderr[-3000:]
    damage = drkit("lab.chaos", "damage-backup", "--region", "eu-west")
    assert damage.returncode == 0, damage.stderr
    bucket, key = damage.stdout.split("s3://", 1)[1].split(":", 1)[0].split("/", 1)
    damaged_file = key.split("/pg_data/", 1)[1].rsplit(".", 1)[0]  # base/5/1249 (.gz dropped)
    try:
        proc = drkit("restore", "--yes", "--json")
        result = result_of(proc)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
        facts = restore_facts(result["run_id"])
        assert int(facts["restored"]["repo"]) == 2, facts["restored"]
        assert facts["amcheck_ok"] in (True, "True", "true"), facts["amcheck_tail"]
        fell_back = [d for d in decisions(result["run_id"]) if "restore fell back" in d]
        assert len(fell_back) == 1 and "repo1 (eu-west) is damaged" in fell_back[0], fell_back
        assert restore_instances() == [], "the scratch restore host was left behind"

        refused = drkit("restore", "--region", "eu-west", "--yes")
        _refused(refused, ExitCode.STEP_FAILED, "in repo1 (eu-west) is damaged")
        assert damaged_file in refused.stderr + refused.stdout, refused.stderr[-2000:]
        assert "no other repository is left" in refused.stderr + refused.stdout
        wait("the scratch host to be gone", lambda: not restore_instances(), 60)
    finally:
        # Repair as one would in a versioned bucket: drop the damaged version.
        s3 = control_plane.client("s3", "eu-west-1")
        newest = s3.list_object_versions(Bucket=bucket, Prefix=key)["Versions"][0]
        s3.delete_object(Bucket=bucket, Key=key, VersionId=newest["VersionId"])


OUTAGE_TABLE = "drkit_test_outage_restore"


def test_with_the_primary_region_cut_off_a_restore_from_another_regions_repository_succeeds(
        lab):
    from drkit.lab import chaos

    dbname = database.credentials()["dbname"]
    primary = lab.host(role="db", dr_region="us-east")
    west = lab.host(role="db", dr_region="eu-west")
    # A row, and its WAL segment archived, before the region goes.
    lab.psql(primary["ip"], f"CREATE TABLE IF NOT EXISTS {OUTAGE_TABLE} (note text); "
                            f"INSERT INTO {OUTAGE_TABLE} VALUES ('before the outage')",
             db=dbname)
    segment = lab.psql(primary["ip"], "SELECT pg_walfile_name(pg_switch_wal())")
    wait("the row's WAL segment to be archived", lambda: lab.psql(
        primary["ip"], "SELECT last_archived_wal FROM pg_stat_archiver") >= segment, 120)
    try:
        chaos.region_outage(lab.paths, "us-east")
        proc = drkit("restore", "--region", "ap-south", "--yes", "--json")
        result = result_of(proc)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    finally:
        chaos.restore(lab.paths, region="us-east")

    facts = restore_facts(result["run_id"])
    assert int(facts["restored"]["repo"]) == 2
    assert facts["amcheck_ok"] in (True, "True", "true"), facts["amcheck_tail"]
    assert facts["tables"][dbname][f"public.{OUTAGE_TABLE}"]["rows"] >= 1
    warning = [d for d in decisions(result["run_id"])
               if "the newest WAL could not be archived" in d]
    assert warning and "no database node answered as primary" in warning[0], \
        decisions(result["run_id"])
    assert restore_instances() == [], "the scratch restore host was left behind"

    # Back to the baseline: the replicas stream from the primary again (the commit
    # waits for the synchronous eu-west replica, which may still be reconnecting).
    lab.psql(primary["ip"], f"DROP TABLE {OUTAGE_TABLE}", db=dbname, timeout=180)
    wait("the eu-west replica to stream again", lambda: lab.psql(
        west["ip"], "SELECT status FROM pg_stat_wal_receiver") == "streaming", 120)
