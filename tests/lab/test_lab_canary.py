"""The canary counts a write as lost only when it really is.

Under canary load through ``db.lab.internal`` (>= 50 writes/s), the primary
crashes (every process killed, as ``lab.chaos node-kill`` does), the eu-west
replica is promoted by hand and DNS is moved to it; the canary keeps writing a
few seconds, then stops. Its report of acknowledged-but-lost writes must be
exactly the acknowledged ids that are not on the new primary: no write counted
lost that survived, none missed that did not.
"""

from __future__ import annotations

import json
import shlex
import threading
import time

import pytest

from drkit.lab import chaos, control_plane, controller, paths

pytestmark = [pytest.mark.lab, pytest.mark.slow]

RATE = 100  # writes per second asked of the canary (the issue wants >= 50)
PG_BIN = "/usr/lib/postgresql/15/bin"
DB_NAME = f"db.{controller.DNS_ZONE}"
DB_SECRET = "drkit/lab/us-east/db-credentials"


def _upsert_db_record(address: str) -> None:
    """Point db.lab.internal at ``address`` with a Route53 UPSERT, as an operator would."""
    r53 = control_plane.client("route53", "us-east-1")
    zones = [z for z in r53.list_hosted_zones()["HostedZones"]
             if z["Name"].rstrip(".") == controller.DNS_ZONE]
    assert len(zones) == 1, zones
    r53.change_resource_record_sets(HostedZoneId=zones[0]["Id"], ChangeBatch={"Changes": [{
        "Action": "UPSERT", "ResourceRecordSet": {
            "Name": DB_NAME, "Type": "A", "TTL": 5,
            "ResourceRecords": [{"Value": address}]}}]})


def _wait(what: str, predicate, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f} s: {what}"
        time.sleep(0.1)


def _db_credentials() -> dict:
    """The application's database credentials, from Secrets Manager (as the app's)."""
    sm = control_plane.client("secretsmanager", "us-east-1")
    return json.loads(sm.get_secret_value(SecretId=DB_SECRET)["SecretString"])


def test_canary_reports_exactly_the_acknowledged_writes_missing_after_a_crash(
        lab_site, tmp_path, monkeypatch, record_property):
    canary = pytest.importorskip("drkit.lab.canary",
                                 reason="drkit/lab/canary.py does not exist yet")
    lab = lab_site
    primary = lab.host(role="db", dr_region="us-east")
    west = lab.host(role="db", dr_region="eu-west")
    pgdata = lab.psql(west["ip"], "SHOW data_directory")
    creds = _db_credentials()

    # What the canary was told, seen from outside it: a seq is acknowledged once
    # its COMMIT returned (the canary calls on_event("ack") only then).
    acks: list[tuple[int, float, str]] = []  # (seq, when, the database's address)

    def on_event(kind: str, record: dict) -> None:
        if kind == "ack":
            acks.append((int(record["seq"]), time.monotonic(), record["address"]))

    def acked_by_west() -> set[int]:
        return {seq for seq, _, address in acks if address == west["ip"]}

    out = tmp_path / "canary"
    run = canary.Canary(canary.CanaryConfig(
        name=DB_NAME, out=out, rate=RATE, duration_s=None, resolver=paths.GATEWAY_ADDR,
        dbname=creds["dbname"], user=creds["username"], password=creds["password"]),
        on_event=on_event)
    writer = threading.Thread(target=run.run, name="canary", daemon=True)
    try:
        writer.start()
        _wait("the canary's first acknowledged writes", lambda: len(acks) >= 2 * RATE,
              timeout=60)
        record_property("canary_rate_before_crash",
                        round(RATE / (acks[2 * RATE - 1][1] - acks[RATE - 1][1]), 1))
        chaos.node_kill(lab.paths, primary["instance_id"])

        promoted = lab.ssh(west["ip"], f"cd /tmp && runuser -u postgres -- {PG_BIN}/pg_ctl "
                                       f"promote -w -D {shlex.quote(pgdata)}")
        assert promoted.returncode == 0, promoted.stderr
        _upsert_db_record(west["ip"])
        _wait("acknowledged writes on the new primary",
              lambda: len(acked_by_west()) >= 3 * RATE, timeout=90)
    finally:
        run.stop()
        writer.join(timeout=30)
    try:
        assert not writer.is_alive()
        monkeypatch.setenv("PGPASSWORD", creds["password"])
        report = canary.report(out, dsn=f"host={west['ip']} port=5432 "
                                        f"dbname={creds['dbname']} user={creds['username']}")
        run_id = json.loads((out / "run.json").read_text())["run_id"]
        present = {int(s) for s in lab.psql(
            west["ip"], f"SELECT seq FROM drkit_canary WHERE run_id = '{run_id}'",
            db=creds["dbname"]).split()}
        acked = {seq for seq, _, _ in acks}
        record_property("canary_acknowledged", len(acked))
        record_property("canary_lost", report["lost"])

        assert report["acknowledged"] == len(acked)
        assert report["lost_seqs"] == sorted(acked - present)
        assert report["lost"] == len(acked - present)
        # Every write acknowledged after the cutover is on the new primary.
        assert acked_by_west() <= present
    finally:
        # The crashed primary, the promoted replica and DNS back to the baseline.
        controller.reset(lab.project_root)
    primary = lab.host(role="db", dr_region="us-east")
    assert lab.psql(primary["ip"], "SELECT pg_is_in_recovery()") == "f"
    assert lab.psql(lab.host(role="db", dr_region="eu-west")["ip"],
                    "SELECT pg_is_in_recovery()") == "t"
    assert controller.dns_answers()["addresses"] == [primary["ip"]]
