"""What `restore --into db` would overwrite and lose, and when it refuses, decided
from a discovered topology (drkit.checks.restore.assess), before anything changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from drkit.checks.restore import assess
from tests.support.topology import probe_result

NOW = datetime(2026, 12, 3, 10, 0, 0, tzinfo=UTC)


def topo(nodes: dict | None = None, dns: str | None = "us-east") -> dict:
    base = {
        "us-east": {"host": "10.10.1.5", "role": "primary",
                    "timeline": 3, "current_lsn": "0/5000060"},
        "eu-west": {"host": "10.20.1.5", "role": "replica"},
        "ap-south": {"host": "10.30.1.5", "role": "replica"},
    }
    for key, fields in (nodes or {}).items():
        base[key] = {**base[key], **fields}
    return probe_result(base, dns=dns)


def test_a_healthy_estate_names_the_primary_its_directory_the_replicas_and_the_loss():
    out = assess(topo(), service="db", target_time=NOW - timedelta(minutes=3), now=NOW,
                 data_dir="/var/lib/postgresql/15/main")
    assert out["ok"], out["problems"]
    assert (out["primary_region"], out["primary_host"]) == ("us-east", "10.10.1.5")
    assert out["data_dir"] == "/var/lib/postgresql/15/main"
    assert out["replicas"] == ["ap-south", "eu-west"]
    assert out["replica_hosts"] == {"ap-south": "10.30.1.5", "eu-west": "10.20.1.5"}
    assert out["estimated_loss"]["seconds"] == 180.0
    assert out["estimated_loss"]["summary"].startswith(
        "every commit after 2026-12-03 09:57:00Z, the last 3m")
    assert "0/5000060 on timeline 3" in out["estimated_loss"]["summary"]


def test_to_the_end_of_the_archive_nothing_archived_is_lost():
    out = assess(topo(), service="db", target_time=None, now=NOW, data_dir=None)
    assert out["ok"]
    assert out["estimated_loss"]["seconds"] == 0.0
    assert out["estimated_loss"]["summary"].startswith("none: writes stop")


def test_a_primary_that_does_not_answer_is_found_through_dns_and_its_loss_is_unknown():
    out = assess(topo(nodes={"us-east": {"reachable": False, "role": None}}),
                 service="db", target_time=None, now=NOW, data_dir=None)
    assert out["ok"], out["problems"]
    assert out["primary_host"] == "10.10.1.5" and not out["primary_answers"]
    assert out["estimated_loss"]["seconds"] is None


def test_refusals_say_what_is_wrong():
    cases = [
        (topo(nodes={"eu-west": {"role": "primary"}}), "split brain: us-east, eu-west"),
        (topo(nodes={"us-east": {"role": None}}, dns=None), "no database primary found"),
        (topo(dns="eu-west"), "db. points at eu-west's node but the primary is us-east:"),
        (topo(nodes={"ap-south": {"reachable": False, "role": None, "error": "timeout"}}),
         "ap-south's db node (10.30.1.5) does not answer (timeout)"),
        (topo(nodes={"eu-west": {"host": None}}), "eu-west has no running db instance"),
    ]
    for topology, says in cases:
        out = assess(topology, service="db", target_time=None, now=NOW, data_dir=None)
        assert not out["ok"] and any(says in p for p in out["problems"]), (says, out["problems"])
    out = assess(topo(), service="web", target_time=None, now=NOW, data_dir=None)
    assert out["problems"] == ["unknown service 'web'; a backup restores onto: db"]
