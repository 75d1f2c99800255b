"""db-recovery's decision over a discovered topology: which replica is promoted, in
which mode, and every refusal a sentence that names the fix."""

from __future__ import annotations

import pytest

from drkit.checks.db_recovery import FAILOVER_RUNBOOK, NODE_RUNBOOK, decide_failover
from drkit.errors import ConfigError
from tests.support.topology import REGIONS, probe_result

SYNC = ["eu-west"]


def topo(*, down: tuple[str, ...] = (), west: str = "replica") -> dict:
    """The lab's three regions as the probe answers: us-east primary, eu-west sync,
    ap-south async; the regions in ``down`` do not answer."""
    nodes = {
        "us-east": {"role": "primary", "host": "10.10.1.5"},
        "eu-west": {"role": west, "host": "10.20.1.5", "streaming": True, "sync_state": "sync",
                    "lag_bytes": 0},
        "ap-south": {"role": "replica", "host": "10.30.1.4", "streaming": True,
                     "sync_state": "async", "lag_bytes": 4096},
    }
    for region in down:
        nodes[region] = {"role": None, "host": nodes[region]["host"],
                         "error": "connection timed out"}
    return probe_result(nodes)


def decide(t: dict, scenario: str, target: str = "", **kw):
    return decide_failover(t, scenario=scenario, target_region=target,
                           force=kw.get("force", False),
                           allow_data_loss=kw.get("allow_data_loss", False),
                           synchronous_regions=SYNC)


def test_a_lost_primary_promotes_the_synchronous_replica_unplanned():
    d = decide(topo(down=("us-east",)), "primary-failure")
    assert d.runbook == FAILOVER_RUNBOOK
    assert d.params == {"region": "eu-west", "mode": "unplanned", "allow_data_loss": False}
    assert "the primary in us-east does not answer" in d.line
    assert "eu-west's synchronous replica" in d.line
    assert "drkit failover --region eu-west --mode unplanned" in d.line


def test_a_lost_region_promotes_the_named_regions_replica():
    d = decide(topo(down=("us-east",)), "region-failure", "ap-south",
               allow_data_loss=True)
    assert d.params == {"region": "ap-south", "mode": "unplanned", "allow_data_loss": True}
    assert d.line == ("region-failure: us-east is lost; ap-south has a asynchronous replica "
                      "that answers: promoting it (RB-DR-003 unplanned, as drkit failover "
                      "--region ap-south --mode unplanned)").replace("a asynchronous",
                                                                     "an asynchronous")


def test_a_primary_that_answers_is_refused_without_force_and_switched_over_with_it():
    with pytest.raises(ConfigError) as refused:
        decide(topo(), "primary-failure")
    assert "answers and accepts writes: it has not failed" in str(refused.value)
    assert "--force" in str(refused.value)
    d = decide(topo(), "region-failure", "eu-west", force=True, allow_data_loss=True)
    assert d.params == {"region": "eu-west", "mode": "planned", "allow_data_loss": False}
    assert "a planned switchover" in d.line


def test_a_region_without_a_replica_that_answers_is_restored_from_the_backups():
    lost = topo(down=("us-east", "eu-west"))
    d = decide(lost, "region-failure", "eu-west", allow_data_loss=True)
    assert d.runbook == FAILOVER_RUNBOOK
    assert d.params == {"region": "eu-west", "mode": "unplanned", "source": "backup",
                        "allow_data_loss": True}
    assert d.line == ("region-failure: us-east is lost; no streaming replica in eu-west "
                      "(connection timed out): restoring the database there from the backups "
                      "(RB-DR-003 unplanned from backup, as drkit failover --region eu-west "
                      "--mode unplanned --source backup)")


def test_a_restore_from_the_backups_needs_the_loss_accepted_and_a_lost_primary():
    with pytest.raises(ConfigError) as refused:
        decide(topo(down=("us-east", "eu-west")), "region-failure", "eu-west")
    text = str(refused.value)
    assert "no replica answers in eu-west (connection timed out)" in text
    assert "losing the commits not archived yet" in text and "--allow-data-loss" in text
    assert "recover into a region whose replica answers: ap-south" in text
    with pytest.raises(ConfigError) as refused:
        decide(topo(down=("eu-west",)), "region-failure", "eu-west", force=True,
               allow_data_loss=True)
    assert "the primary in us-east still answers" in str(refused.value)


def test_the_failed_region_or_an_unknown_one_is_not_a_target():
    with pytest.raises(ConfigError, match="us-east holds the primary"):
        decide(topo(down=("us-east",)), "region-failure", "us-east")
    with pytest.raises(ConfigError, match="'mars' is not one of"):
        decide(topo(down=("us-east",)), "region-failure", "mars")


def test_with_the_synchronous_replica_down_too_the_other_replica_is_the_standby():
    d = decide(topo(down=("us-east", "eu-west")), "primary-failure")
    assert d.params["region"] == "ap-south"
    assert "ap-south's asynchronous replica" in d.line


def test_two_writable_primaries_are_refused():
    t = topo()
    t["primaries"] = ["us-east", "eu-west"]
    with pytest.raises(ConfigError, match="split brain"):
        decide(t, "primary-failure", force=True)


TWO_NODES = {**REGIONS, "us-east": {**REGIONS["us-east"],
                                    "db_zones": ["us-east-1a", "us-east-1b"]}}


def two_nodes(*, down: tuple[str, ...] = ("us-east",)) -> dict:
    """us-east with its in-region standby (us-east-b); the nodes in ``down`` do not
    answer (by default the primary: its host died, its instance still runs)."""
    nodes = {
        "us-east": {"role": "primary", "host": "10.10.1.5", "instance_id": "i-0dead"},
        "us-east-b": {"role": "replica", "host": "10.10.2.5", "instance_id": "i-0b",
                      "streaming": True, "sync_state": "sync", "lag_bytes": 0,
                      "receive_lsn": "0/3000060"},
        "eu-west": {"role": "replica", "host": "10.20.1.5", "instance_id": "i-0w",
                    "streaming": True, "sync_state": "potential", "lag_bytes": 0},
        "ap-south": {"role": "replica", "host": "10.30.1.4", "instance_id": "i-0s",
                     "streaming": True, "sync_state": "async", "lag_bytes": 4096},
    }
    for key in down:
        nodes[key] = {"role": None, "host": nodes[key]["host"],
                      "instance_id": nodes[key]["instance_id"], "error": "connection timed out"}
    return probe_result(nodes, regions=TWO_NODES)


def test_a_dead_primary_with_an_in_region_standby_is_taken_over_in_its_region():
    d = decide(two_nodes(), "primary-failure")
    assert d.runbook == NODE_RUNBOOK
    assert d.params == {"nodes": ["i-0dead"], "force": False}
    assert d.line == ("primary-failure: the primary in us-east (10.10.1.5) does not answer; "
                      "us-east-b, its in-region standby, answers: promoting it and replacing "
                      "the dead node (RB-DR-001, as drkit replace-node --host i-0dead)")


def test_a_named_target_region_or_a_dead_in_region_standby_fails_over_to_another_region():
    named = decide(two_nodes(), "primary-failure", "ap-south", allow_data_loss=True)
    assert (named.runbook, named.params["region"]) == (FAILOVER_RUNBOOK, "ap-south")
    both = decide(two_nodes(down=("us-east", "us-east-b")), "primary-failure")
    assert (both.runbook, both.params["region"]) == (FAILOVER_RUNBOOK, "eu-west")


def test_a_primary_that_answers_is_not_taken_over_in_its_region_without_force():
    with pytest.raises(ConfigError, match="answers and accepts writes"):
        decide(two_nodes(down=()), "primary-failure")
    forced = decide(two_nodes(down=()), "primary-failure", force=True)
    assert forced.runbook == FAILOVER_RUNBOOK and forced.params["mode"] == "planned"
