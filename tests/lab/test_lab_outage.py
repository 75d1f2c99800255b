"""Replication across regions, and what a region outage does to it.

A row written on the primary (us-east) is read on both replicas; cutting us-east
off makes its hosts unreachable from eu-west and the eu-west replica's WAL receiver
disconnects (after wal_receiver_timeout, as in a real network partition: no RST
arrives); restoring the region brings the hosts back and replication resumes.
"""

from __future__ import annotations

import time
import uuid

import pytest

from drkit.lab import chaos, controller, netns

pytestmark = [pytest.mark.lab, pytest.mark.slow]

PG_PORT = 5432
TABLE = "drkit_test_outage"


def _duration_s(setting: str) -> float:
    """A PostgreSQL time setting as `SHOW` prints it (``60s``, ``5000ms``, ``1min``)."""
    units = {"ms": 0.001, "s": 1, "min": 60, "h": 3600, "d": 86400}
    number = setting.rstrip("abcdefghijklmnopqrstuvwxyz")
    unit = setting[len(number):] or "ms"
    return float(number) * units[unit]


def _wait(what: str, predicate, timeout: float) -> float:
    t0 = time.monotonic()
    while not predicate():
        assert time.monotonic() - t0 < timeout, f"timed out after {timeout:.0f} s: {what}"
        time.sleep(0.2)
    return time.monotonic() - t0


@pytest.fixture
def database(lab_site):
    """The estate's primary and replicas, with a scratch table (dropped after)."""
    lab_estate = lab_site
    primary = lab_estate.host(role="db", dr_region="us-east")
    replicas = {r: lab_estate.host(role="db", dr_region=r) for r in ("eu-west", "ap-south")}
    assert lab_estate.psql(primary["ip"], "SELECT pg_is_in_recovery()") == "f"
    for host in replicas.values():
        assert lab_estate.psql(host["ip"], "SELECT pg_is_in_recovery()") == "t"
    lab_estate.psql(primary["ip"], f"CREATE TABLE IF NOT EXISTS {TABLE} "
                                   "(id bigserial PRIMARY KEY, note text NOT NULL)")
    yield primary, replicas
    lab_estate.psql(primary["ip"], f"DROP TABLE IF EXISTS {TABLE}")


def _write(lab, primary: dict) -> str:
    note = uuid.uuid4().hex
    lab.psql(primary["ip"], f"INSERT INTO {TABLE} (note) VALUES ('{note}')")
    return note


def _has(lab, host: dict, note: str) -> bool:
    return lab.psql(host["ip"], f"SELECT count(*) FROM {TABLE} WHERE note = '{note}'") == "1"


def _receiver_status(lab, host: dict) -> str:
    """The replica's WAL receiver status ('' when it has none)."""
    return lab.psql(host["ip"], "SELECT status FROM pg_stat_wal_receiver")


def test_a_row_written_on_the_primary_is_read_on_both_replicas(lab_estate, database):
    primary, replicas = database
    note = _write(lab_estate, primary)
    for region, host in replicas.items():
        _wait(f"the row on the {region} replica", lambda h=host: _has(lab_estate, h, note),
              timeout=30)


def test_region_outage_disconnects_the_eu_west_replica_and_restore_resumes_it(
        lab_estate, database, record_property):
    lab = lab_estate
    primary, replicas = database
    west = replicas["eu-west"]
    east_hosts = lab.hosts(dr_region="us-east")
    assert east_hosts and all(netns.reachable(west["ns"], h["ip"]) for h in east_hosts)
    assert _receiver_status(lab, west) == "streaming"
    receiver_timeout = _duration_s(lab.psql(west["ip"], "SHOW wal_receiver_timeout"))
    record_property("wal_receiver_timeout_s", receiver_timeout)

    try:
        chaos.region_outage(lab.paths, "us-east")
        for h in east_hosts:
            assert not netns.reachable(west["ns"], h["ip"], timeout=1.0), h["name"]
        assert not netns.reachable(west["ns"], primary["ip"], port=PG_PORT, timeout=1.0)
        # A partition sends no RST: the receiver gives up after wal_receiver_timeout.
        took = _wait("the eu-west WAL receiver to disconnect",
                     lambda: _receiver_status(lab, west) != "streaming",
                     timeout=receiver_timeout + 30)
        record_property("wal_receiver_disconnect_s", round(took, 1))
    finally:
        chaos.restore(lab.paths, region="us-east")

    assert all(netns.reachable(west["ns"], h["ip"]) for h in east_hosts)
    note = _write(lab, primary)
    _wait("the row written after restore on the eu-west replica",
          lambda: _has(lab, west, note), timeout=60)
    assert _receiver_status(lab, west) == "streaming"


def test_a_reset_after_a_region_outage_keeps_the_database_nodes(lab_estate, database):
    """Nothing but the network changed: the reset applies no Terraform and neither
    re-clones nor restarts a node; the replicas stream from the primary again."""
    lab = lab_estate
    primary, replicas = database
    nodes = [primary, *replicas.values()]
    started = {h["ip"]: lab.psql(h["ip"], "SELECT pg_postmaster_start_time()") for h in nodes}
    chaos.region_outage(lab.paths, "us-east")
    try:
        result = controller.reset(lab.project_root)
    finally:
        chaos.restore(lab.paths, region="us-east")  # a no-op after the reset's own

    assert result["terraform"] == "not needed"
    assert {h["ip"]: lab.psql(h["ip"], "SELECT pg_postmaster_start_time()")
            for h in nodes} == started
    for host in replicas.values():
        assert _receiver_status(lab, host) == "streaming"
    note = _write(lab, primary)
    for region, host in replicas.items():
        _wait(f"the row on the {region} replica", lambda h=host: _has(lab, h, note), timeout=30)
