"""After the site playbook: a primary in us-east, streaming replicas in eu-west
(synchronous) and ap-south (asynchronous), each through its region's slot; a row
written on the primary is read on both replicas; DNS sends clients to the primary;
the sample app answers through it; WAL reaches the regional archive."""

from __future__ import annotations

import json
import shlex
import time
import urllib.request
import uuid

import pytest

from drkit.checks import postgres
from drkit.checks.dns import resolve
from drkit.lab import control_plane, controller, paths
from tests.lab.runs import BASELINE_PRIMARY, expected_sync_names, replica_nodes

pytestmark = [pytest.mark.lab, pytest.mark.slow]

DB_SECRET = "drkit/lab/us-east/db-credentials"


def _wait(what: str, predicate, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f} s: {what}"
        time.sleep(0.2)


@pytest.fixture
def creds() -> dict:
    sm = control_plane.client("secretsmanager", "us-east-1")
    return json.loads(sm.get_secret_value(SecretId=DB_SECRET)["SecretString"])


def _psql(lab, address: str, sql: str) -> str:
    """psql as the postgres user on a lab host (root ssh, then runuser: the role's
    peer map lets root and postgres in over the socket)."""
    proc = lab.ssh(address, "runuser -u postgres -- psql -XAtq -v ON_ERROR_STOP=1 -c "
                            + shlex.quote(sql))
    assert proc.returncode == 0, f"psql on {address} failed: {proc.stderr.strip()}"
    return proc.stdout.strip()


def _dsn(ip: str, creds: dict) -> str:
    return (f"host={ip} port=5432 dbname={creds['dbname']} user={creds['username']} "
            f"password={creds['password']}")


def test_a_row_written_on_the_primary_is_read_on_both_replicas(lab_site) -> None:
    lab = lab_site
    primary = lab.db_node(BASELINE_PRIMARY)
    replicas = [lab.db_node(n.key) for n in replica_nodes()]
    token = uuid.uuid4().hex
    _psql(lab, primary["ip"], "CREATE TABLE IF NOT EXISTS lab_replication_check "
                            "(token text PRIMARY KEY, at timestamptz DEFAULT now())")
    _psql(lab, primary["ip"], f"INSERT INTO lab_replication_check (token) VALUES ('{token}')")
    for replica in replicas:
        query = f"SELECT count(*) FROM lab_replication_check WHERE token = '{token}'"
        _wait(f"the row on {replica['dr_region']}",
              lambda r=replica, q=query: _psql(lab, r["ip"], q) == "1")
        assert _psql(lab, replica["ip"], "SELECT pg_is_in_recovery()") == "t"


def test_replicas_stream_through_their_region_slots(lab_site, creds) -> None:
    lab = lab_site
    primary = lab.host(role="db", dr_region="us-east")
    senders = _psql(lab, primary["ip"], "SELECT application_name || ':' || state || ':' || "
                                      "sync_state FROM pg_stat_replication "
                                      "ORDER BY application_name").split()
    # FIRST 1 (a, b): a is sync, b potential; ANY 1 (a, b): both quorum.
    waited = expected_sync_names()
    names = waited.partition("(")[2].rstrip(")").split(", ") if "(" in waited else [waited]
    state = {n: ("quorum" if waited.startswith("ANY") else "potential") for n in names}
    state[names[0]] = "quorum" if waited.startswith("ANY") else "sync"
    assert senders == sorted(f"{n.name}:streaming:{state.get(n.name, 'async')}"
                             for n in replica_nodes())
    slots = _psql(lab, primary["ip"], "SELECT slot_name || ':' || active FROM "
                                    "pg_replication_slots ORDER BY 1").split()
    assert slots == sorted(f"{n.name}:true" for n in replica_nodes())

    # The read-only probes the runbooks use agree, over TCP with the app's password.
    status = postgres.node_status(_dsn(primary["ip"], creds))
    assert status["role"] == "primary" and status["timeline"] >= 1
    for region in ("eu-west", "ap-south"):
        replica = lab.host(role="db", dr_region=region)
        lag = _wait(f"{region} caught up", lambda r=replica: (
            lambda x: x if x["caught_up"] else None)(postgres.replica_lag(
                _dsn(primary["ip"], creds), _dsn(r["ip"], creds))))
        assert lag["replica"]["role"] == "replica"
        assert lag["replica"]["timeline"] == status["timeline"]


def test_per_node_settings_live_in_postgresql_auto_conf(lab_site) -> None:
    lab = lab_site
    west = lab.host(role="db", dr_region="eu-west")
    sources = _psql(lab, west["ip"], "SELECT name || '=' || sourcefile FROM pg_settings WHERE "
                                   "name IN ('primary_conninfo', 'primary_slot_name', "
                                   "'listen_addresses') ORDER BY name").split()
    assert all(s.endswith("/postgresql.auto.conf") for s in sources), sources
    assert _psql(lab, west["ip"], "SHOW primary_slot_name") == "eu_west"
    assert "password" not in _psql(lab, west["ip"], "SHOW primary_conninfo")
    assert _psql(lab, west["ip"], "SHOW data_checksums") == "on"


def test_dns_and_the_app_lead_to_the_primary(lab_site) -> None:
    lab = lab_site
    primary = lab.host(role="db", dr_region="us-east")
    answer = resolve(f"db.{controller.DNS_ZONE}", resolver=paths.GATEWAY_ADDR)
    assert answer["addresses"] == [primary["ip"]]
    apps = sorted(h["ip"] for h in lab.hosts(role="app", dr_region="us-east"))
    assert resolve(f"app.{controller.DNS_ZONE}", resolver=paths.GATEWAY_ADDR)["addresses"] \
        == apps
    for app in lab.hosts(role="app"):
        with urllib.request.urlopen(f"http://{app['ip']}:8080/health", timeout=10) as resp:
            health = json.loads(resp.read())
        assert health["db_primary"] is True and health["db_address"] == primary["ip"]


def test_wal_reaches_every_backup_repository(lab_site) -> None:
    """pgBackRest archives each WAL segment into every region's repository."""
    from drkit import backups
    from drkit.lab import database

    lab = lab_site
    primary = lab.host(role="db", dr_region="us-east")
    segment = _psql(lab, primary["ip"], "SELECT pg_walfile_name(pg_switch_wal())")
    settings = database._context().env.settings
    for repo in backups.repositories(settings):
        s3 = control_plane.client("s3", repo.cloud_region)
        prefix = f"{repo.archive_prefix}15-1/{segment[:16]}/{segment}"
        _wait(f"{segment} in repo{repo.number} ({repo.region})",
              lambda s3=s3, bucket=repo.bucket, p=prefix: s3.list_objects_v2(
                  Bucket=bucket, Prefix=p).get("KeyCount", 0) > 0)
