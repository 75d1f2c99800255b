"""The readiness suite (RB-RD-001) on the real lab: on a healthy lab every check
passes; each seeded fault fails exactly the check that should fail, with a message
that names the fix, and every other check still runs and passes.

Faults: a backup older than allowed (a tighter limit, as a missed schedule looks),
WAL archiving failing on the primary, a region's key backup missing, a region's
Secrets Manager not answering (lab.chaos api-outage), db. pointing at a replica,
a replica not streaming. Each is undone before the next; the lab is left as found
(plus the backups the module takes first, so that it also runs alone).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import pytest

from drkit.journal import RunState
from drkit.lab import control_plane, controller
from tests.lab.runs import drkit, journal, result_of, wait

pytestmark = [pytest.mark.lab, pytest.mark.slow]

CHECKS = {"nodes", "replication", "dns", "wal-archive", "backups", "restore-plan",
          "config-backups", "key-backup", "cloud-access", "failover-ready"}


@pytest.fixture(scope="module")
def lab(lab_estate, lab_environment):
    """The site, with a data, configuration and key backup taken (the suite checks them)."""
    for args in (("backup", "--what", "all"), ("keys.backup",)):
        proc = drkit(*args, "--yes")
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return lab_estate


def readiness(*args: str) -> tuple[set[str], str]:
    """The checks that failed, and what the run said."""
    proc = drkit("readiness", "--json", *args)
    run_id = result_of(proc)["run_id"]
    state = RunState.from_events(journal(run_id))
    finished = {e["step"]: e["status"] for e in journal(run_id) if e["event"] == "step_finished"}
    assert set(finished) == CHECKS, f"not every check ran: {sorted(finished)}"
    failed = {step for step, status in finished.items() if status == "failed"}
    assert proc.returncode == (4 if failed else 0), (proc.returncode, proc.stderr[-2000:])
    assert state.status == ("failed" if failed else "succeeded")
    return failed, proc.stderr


def test_a_healthy_lab_passes_every_check(lab, tmp_path):
    junit = tmp_path / "readiness.xml"
    failed, said = readiness("--junit", str(junit))
    assert failed == set(), said[-3000:]
    text = junit.read_text()
    assert all(f'name="{check}"' in text for check in CHECKS) and "<failure" not in text


def test_a_backup_older_than_allowed_fails_the_backups_check(lab):
    failed, said = readiness("--backup-max-age", "1s")
    assert failed == {"backups"}, said[-3000:]
    assert "take one with `invoke backup`" in said


@contextlib.contextmanager
def _setting(lab, address: str, name: str, value: str) -> Iterator[None]:
    """ALTER SYSTEM SET ``name`` on a node for the block, then back to what it was."""
    saved = lab.psql(address, f"SHOW {name}")
    lab.psql(address, f"ALTER SYSTEM SET {name} = $v${value}$v$")
    lab.psql(address, "SELECT pg_reload_conf()")
    try:
        yield
    finally:
        lab.psql(address, f"ALTER SYSTEM SET {name} = $v${saved}$v$")
        lab.psql(address, "SELECT pg_reload_conf()")


def test_failing_wal_archiving_fails_the_wal_archive_check(lab):
    primary = lab.host(role="db", dr_region="us-east")["ip"]
    archiver = ("SELECT coalesce(last_failed_time > coalesce(last_archived_time, "
                "'epoch'), false) FROM pg_stat_archiver")
    with _setting(lab, primary, "archive_command", "/bin/false"):
        lab.psql(primary, "CREATE TABLE IF NOT EXISTS drkit_readiness (t timestamptz); "
                          "INSERT INTO drkit_readiness VALUES (now()); SELECT pg_switch_wal()")
        wait("the archiver to fail", lambda: lab.psql(primary, archiver) == "t", 60)
        failed, said = readiness()
    assert failed == {"wal-archive"}, said[-3000:]
    assert "WAL archiving is failing" in said and "check archive_command" in said
    lab.psql(primary, "INSERT INTO drkit_readiness VALUES (now()); SELECT pg_switch_wal()")
    wait("the archiver to succeed again", lambda: lab.psql(primary, archiver) == "f", 120)


def test_a_missing_key_backup_fails_the_keys_check(lab, lab_environment):
    from drkit import config_backup

    bucket, cloud = config_backup.buckets(lab_environment.settings)["ap-south"]
    s3 = control_plane.client("s3", cloud)
    objects = {o["Key"]: s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()
               for o in s3.list_objects_v2(Bucket=bucket, Prefix="keys/").get("Contents", [])}
    assert objects, "no key backup in ap-south"
    s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in objects]})
    try:
        failed, said = readiness()
    finally:
        for key, body in objects.items():
            s3.put_object(Bucket=bucket, Key=key, Body=body)
    assert failed == {"key-backup"}, said[-3000:]
    assert "ap-south: key backup latest not found" in said and "keys.list" in said


def test_secrets_manager_down_in_a_region_fails_the_cloud_access_check(lab):
    down = drkit("lab.chaos", "api-outage", "--region", "ap-south", "--service",
                 "secretsmanager")
    assert down.returncode == 0, down.stderr
    try:
        failed, said = readiness()
    finally:
        assert drkit("lab.chaos", "restore", "--region", "ap-south").returncode == 0
    assert failed == {"cloud-access"}, said[-3000:]
    assert "ap-south: secretsmanager does not answer" in said


def _db_record(address: str | None = None) -> str:
    """db.'s A record (set to ``address`` when given, with a Route53 UPSERT)."""
    r53 = control_plane.client("route53", "us-east-1")
    zone = next(z["Id"] for z in r53.list_hosted_zones()["HostedZones"]
                if z["Name"].rstrip(".") == controller.DNS_ZONE)
    name = f"db.{controller.DNS_ZONE}."
    record = next(r for r in r53.list_resource_record_sets(HostedZoneId=zone)[
        "ResourceRecordSets"] if r["Name"] == name and r["Type"] == "A")
    if address:
        record = {**record, "ResourceRecords": [{"Value": address}]}
        r53.change_resource_record_sets(HostedZoneId=zone, ChangeBatch={"Changes": [
            {"Action": "UPSERT", "ResourceRecordSet": record}]})
    return record["ResourceRecords"][0]["Value"]


def test_db_pointing_at_a_replica_fails_the_dns_check(lab):
    primary = _db_record()
    _db_record(lab.host(role="db", dr_region="ap-south")["ip"])
    try:
        time.sleep(1.0)  # the lab resolver's cache holds answers for 0.5 s
        failed, said = readiness()
    finally:
        _db_record(primary)
    assert failed == {"dns"}, said[-3000:]
    assert "the primary is in us-east: fix the record" in said


def test_a_replica_not_streaming_fails_the_replication_check(lab):
    replica = lab.host(role="db", dr_region="ap-south")["ip"]
    streaming = "SELECT count(*) FROM pg_stat_wal_receiver WHERE status = 'streaming'"
    with _setting(lab, replica, "primary_conninfo", "host=192.0.2.1 connect_timeout=1"):
        wait("the replica to stop streaming", lambda: lab.psql(replica, streaming) == "0", 60)
        failed, said = readiness()
    assert failed == {"replication"}, said[-3000:]
    assert "not streaming: ap-south" in said and "check primary_conninfo" in said
    wait("the replica to stream again", lambda: lab.psql(replica, streaming) == "1", 60)
