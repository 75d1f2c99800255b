"""RB-DR-007 on the real lab: a region rebuilt from the backups alone while the two
others are cut off, its rehearsal in a scratch estate, and the refusals that
change nothing.

The tests run in file order: refusals on the healthy estate -> a rehearsal
killed with SIGKILL then cleaned up, and a whole rehearsal, each leaving nothing
of the scratch estate and the live estate as it was -> ap-south's hosts
and secrets gone, us-east and eu-west cut off, `drkit rebuild --region ap-south`
(killed during the restore and resumed) with a canary writing through DNS, what
came back checked against it -> failback to us-east, the baseline again.
"""

from __future__ import annotations

import json
import shlex
import time

import pytest

from drkit import scratch
from drkit.errors import ExitCode
from drkit.journal import RunState
from drkit.lab import chaos, controller, database
from drkit.lab.hosts import hosted_instances
from drkit.lab.region_loss import lose_region
from tests.lab.runs import (
    Canary,
    assert_only_unarchived_writes_lost,
    decisions,
    drkit,
    journal,
    kill_when,
    result_of,
    task_started,
    wait,
)

pytestmark = [pytest.mark.lab, pytest.mark.slow]

REGION = "ap-south"
CLOUD = "ap-south-1"
SECRETS = [f"drkit/lab/{REGION}/db-credentials", f"drkit/lab/{REGION}/app-secret"]


@pytest.fixture(scope="module")
def lab(lab_estate):
    from tests.lab.conftest import require_site

    require_site(lab_estate)
    return lab_estate


@pytest.fixture(scope="module")
def backed_up(lab) -> None:
    """A full backup in every repository, the one a rebuild restores, and a
    configuration backup, which the rebuild compares with what it uses."""
    proc = drkit("backup", "--what", "all", "--yes")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]


@pytest.fixture(scope="module")
def shares(lab, tmp_path_factory) -> list[str]:
    """A key backup split among five custodians (any three open it): the share files."""
    out = tmp_path_factory.mktemp("custody") / "shares"
    proc = drkit("keys.backup", "--shares", "5", "--threshold", "3", "--shares-out", str(out),
                 "--yes")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return sorted(str(p) for p in out.iterdir())


def assert_baseline() -> None:
    topo = database.topology()
    assert topo["primary_region"] == "us-east", topo
    assert controller.dns_answers()["addresses"] == [topo["primary_host"]]


def _roles() -> dict[str, tuple]:
    return {r: (n.get("role"), n.get("host")) for r, n in database.topology()["nodes"].items()}


def refused(proc, code: int, *texts: str) -> None:
    assert proc.returncode == code, (proc.returncode, proc.stdout[-1500:], proc.stderr[-1500:])
    for text in texts:
        assert text in proc.stderr, proc.stderr[-2000:]


def test_a_healthy_estate_a_missing_backup_no_repository_and_too_few_shares_are_refused(
        lab, backed_up, shares):
    assert_baseline()
    before = _roles()
    refused(drkit("rebuild", "--region", REGION, "--yes"), ExitCode.PREFLIGHT_FAILED,
            "the primary in us-east (", "answers and accepts writes: the estate is not lost",
            f"{REGION}'s database answers as a replica: the region is not lost; promote it "
            "instead")
    refused(drkit("rebuild", "--region", REGION, "--force", "--backup", "20200101-000000F",
                  "--shares", ",".join(shares[:2]), "--yes"),
            ExitCode.PREFLIGHT_FAILED, "backup 20200101-000000F is not in repo",
            "2 share(s) given; keys-", "needs 3 different custodians' shares")
    refused(drkit("rebuild", "--region", "us-east", "--force", "--yes"),
            ExitCode.PREFLIGHT_FAILED, "us-east holds the primary, which answers: there is "
                                       "nothing to rebuild there")
    # No surviving repository: S3 answers in neither region that holds one.
    for region in ("eu-west", "ap-south"):
        chaos.api_outage(lab.paths, region, "s3")
    try:
        refused(drkit("rebuild", "--region", REGION, "--force", "--yes"),
                ExitCode.PREFLIGHT_FAILED, "plan: no backup to restore from: repo",
                "skipped: ")
    finally:
        for region in ("eu-west", "ap-south"):
            chaos.restore(lab.paths, region=region)
    assert _roles() == before


def _live_fingerprint(env) -> dict:
    """What a rehearsal must never change: the live Terraform state's serial, the
    live zone's records, the database roles and hosts."""
    backend = env.settings["terraform"]["backend_config"]
    state = json.loads(env.client("s3", backend["region"]).get_object(
        Bucket=backend["bucket"], Key=backend["key"])["Body"].read())
    r53 = env.client("route53", env.settings["control_region"])
    zone = next(z["Id"] for z in r53.list_hosted_zones()["HostedZones"]
                if z["Name"] == "lab.internal.")
    records = sorted((r["Name"], r["Type"], tuple(sorted(v["Value"] for v in
                                                        r.get("ResourceRecords", []))))
                     for r in r53.list_resource_record_sets(HostedZoneId=zone)
                     ["ResourceRecordSets"])
    return {"serial": state["serial"], "records": records, "roles": _roles()}


def _nothing_left(env) -> None:
    left = scratch.leftovers(env)
    assert not any(left.values()), left
    scratch_ids = set(hosted_instances()) - {i["id"] for i in _live_instances(env)}
    assert not scratch_ids, f"namespaces of the scratch estate remain: {scratch_ids}"


def _live_instances(env) -> list[dict]:
    return [i for conf in env.regions.values()
            for r in env.client("ec2", conf["cloud_region"]).describe_instances(Filters=[
                {"Name": "tag:Estate", "Values": ["lab"]}])["Reservations"]
            for i in [{"id": x["InstanceId"]} for x in r["Instances"]]]


def test_a_rebuild_rehearsal_in_a_scratch_estate_leaves_nothing_and_the_live_estate_unchanged(
        lab, lab_environment, backed_up, shares, tmp_path):
    assert_baseline()
    before = _live_fingerprint(lab_environment)
    try:
        # Killed (SIGKILL) while the scratch estate's database host is being prepared,
        # then --cleanup: nothing of the scratch estate remains.
        run_id = kill_when(["rehearse", "rebuild"], None, "the scratch estate's db host to be "
                           "prepared", task_started("configure", "Check inputs"), delay=0.5)
        assert scratch.leftovers(lab_environment)["instances"], "the killed rehearsal built nothing"
        proc = drkit("rehearse", "rebuild", "--cleanup")
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
        assert "scratch estate lab-rehearsal destroyed" in proc.stdout
        _nothing_left(lab_environment)
        assert _live_fingerprint(lab_environment) == before

        # A whole rehearsal: rebuilt from the live backups, validated, measured, destroyed.
        proc = drkit("rehearse", "rebuild", "--json")
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        record = next(json.loads(line) for line in reversed(proc.stdout.splitlines())
                      if '"event": "rehearsal"' in line)
        assert record["verdict"] == "passed" and record["env"] == "lab-rehearsal", record
        assert record["baseline"]["ok"], record["baseline"]
        assert record["run_id"] != run_id and record["rto_s"] > 0
        steps = {s["id"]: s["status"] for s in record["steps"]}
        assert steps["smoke"] == "ok" and steps["validate"] == "ok", steps
        _nothing_left(lab_environment)
        assert _live_fingerprint(lab_environment) == before
    finally:
        # Whatever happened above, nothing of the scratch estate stays behind.
        if any(scratch.leftovers(lab_environment).values()):
            drkit("rehearse", "rebuild", "--cleanup")


def test_a_region_is_rebuilt_from_the_backups_alone_with_the_two_others_cut_off(
        lab, lab_environment, backed_up, shares, tmp_path, record_property):
    assert_baseline()
    old_host = lab.host(role="db", dr_region=REGION)["ip"]
    values = {s: lab_environment.client("secretsmanager", "us-east-1").get_secret_value(
        SecretId=s.replace(REGION, "us-east"))["SecretString"] for s in SECRETS}
    # ap-south's hosts and the secrets Terraform made there are gone.
    lose_region(lab_environment.settings, REGION)
    result, kept = {}, ""
    try:
        with Canary(tmp_path / "canary") as canary:
            # The writes so far reach the archive (as archive_timeout would do);
            # the ones after it only the primary's WAL, lost with its region.
            primary = lab.host(role="db", dr_region="us-east")["ip"]
            segment = lab.psql(primary, "SELECT pg_walfile_name(pg_switch_wal())")
            archived_by = time.time()
            wait("the switched WAL segment in the archive", lambda: lab.psql(
                primary, "SELECT last_archived_wal FROM pg_stat_archiver") >= segment, 120)
            canary.keep_writing()
            for region in ("us-east", "eu-west"):
                chaos.region_outage(lab.paths, region)
            try:
                # Killed (SIGKILL) while pgBackRest restores onto the new host, then
                # resumed: the half-restored directory is this run's own, restored again.
                args = ["rebuild", "--region", REGION, "--shares", ",".join(shares[1:4]),
                        "--yes"]
                run_id = kill_when(args, None, "pgBackRest to start restoring",
                                   task_started("restore", "Restore"), delay=0.5)
                assert "restore" in RunState.from_events(journal(run_id)).interrupted_steps
                proc = drkit("rebuild", "--resume", run_id, "--yes", "--json")
                result = result_of(proc)
                assert result["status"] == "succeeded", proc.stderr[-3000:]
                assert proc.returncode == ExitCode.OK, proc.stderr[-2000:]
                canary.keep_writing()
            finally:
                for region in ("us-east", "eu-west"):
                    chaos.restore(lab.paths, region=region, wait_s=30)
        events = journal(run_id)
        restored = [f for e in events if e["event"] == "step_output" and e["step"] == "restore"
                    for f in e["outputs"]["facts"].values() if "restored" in f][-1]
        kept = restored["kept_data_dir"]
        new_host = lab.host(role="db", dr_region=REGION)["ip"]
        assert new_host != old_host and restored["address"] == new_host
        assert database.topology()["primary_region"] == REGION
        assert controller.dns_answers()["addresses"] == [new_host]
        assert restored["amcheck_ok"] in (True, "True", "true"), restored["amcheck_tail"]
        decided = decisions(run_id)
        assert any(d.startswith("plan: restoring backup ") and " from repo" in d
                   for d in decided), decided
        assert any(d.startswith("config: configuration backup ") and d.endswith(
            "the inventory and the Terraform state in use are the ones it holds")
            for d in decided), decided

        # Terraform recreated the secrets with new values; the rebuild put the key
        # backup's back, which the restored database and the app agree with.
        sm = lab_environment.client("secretsmanager", CLOUD)
        assert {s: sm.get_secret_value(SecretId=s)["SecretString"] for s in SECRETS} == values
        secrets = next(e for e in events if e["event"] == "step_output"
                       and e["step"] == "secrets")["outputs"]
        assert sorted(secrets["written"]) == sorted(SECRETS)
        assert secrets["opened_with"] == "shares"
        # The app answers through DNS from the rebuilt region's hosts.
        apps = [h["ip"] for h in lab.hosts(role="app", dr_region=REGION)]
        assert len(apps) == 2 and set(controller.dns_answers("app.lab.internal")["addresses"]) \
            == set(apps)

        # Every write acknowledged before the switched segment was archived is
        # back; what is lost was acknowledged after the last commit the restore
        # replayed, and the reported RPO covers it.
        report = assert_only_unarchived_writes_lost(canary, restored, result["rpo_s"],
                                                    archived_by)
        record_property("rebuild_lost", report["lost"])
        record_property("rebuild_rto_s", result["rto_s"])
        record_property("rebuild_rpo_s", result["rpo_s"])
    finally:
        # Back home for whatever runs next: the rebuilt ap-south rejoins as a replica.
        back = drkit("failback", "--region", "us-east", "--yes")
        if kept:
            lab.ssh(lab.host(role="db", dr_region=REGION)["ip"],
                    f"rm -rf -- {shlex.quote(kept)}")
    assert back.returncode == 0, back.stderr[-3000:]
    assert_baseline()

