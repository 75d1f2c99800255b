"""The failover decision: which topologies RB-DR-003 refuses, and why (pure logic)."""

from __future__ import annotations

import pytest

from drkit.checks.failover import assess
from tests.support.topology import REGIONS, probe_result


def node(role, *, streaming=True, sync_state=None, lag=0, delay=0.5, host="10.0.0.1",
         error=None):
    return {"role": role, "host": host, "reachable": role is not None,
            "streaming": streaming if role == "replica" else None, "sync_state": sync_state,
            "lag_bytes": lag, "replay_delay_s": delay, "last_replay_at": None, "error": error}


def topo(**nodes):
    return probe_result(nodes)


HEALTHY = topo(us_east=node("primary"), eu_west=node("replica", sync_state="sync"),
               ap_south=node("replica", sync_state="async"))
REGION_DOWN = topo(us_east=node(None, error="timeout"),
                   eu_west=node("replica", streaming=False, lag=None, delay=12.0),
                   ap_south=node("replica", streaming=False, lag=None, delay=12.5))


def run(t, region="eu-west", mode="planned", allow=False, sync=("eu-west",), **kw):
    return assess(t, region=region, mode=mode, allow_data_loss=allow, rpo_s=0.0,
                  synchronous_regions=list(sync), **kw)


def test_a_planned_failover_to_a_streaming_replica_may_proceed():
    out = run(HEALTHY)
    assert out["findings"] == []
    assert out["old_primary_region"] == "us-east"
    assert out["remaining_replicas"] == ["ap-south"]
    assert out["estimated_loss"]["possible"] is False


@pytest.mark.parametrize(("t", "kwargs", "expected"), [
    (HEALTHY, {"region": "us-east"}, "us-east already holds the primary"),
    (HEALTHY, {"region": "mars"}, "region mars is not one of this environment's regions"),
    (topo(us_east=node("primary"), eu_west=node(None, error="no running db instance")),
     {}, "eu-west has no reachable database replica to promote (no running db instance)"),
    (REGION_DOWN, {}, "a planned failover needs it; use --mode unplanned"),
    (topo(us_east=node("primary"), eu_west=node("replica", streaming=False)), {},
     "eu-west's replica is not streaming"),
    (REGION_DOWN, {"mode": "unplanned", "region": "ap-south", "sync": ()},
     "ap-south may lose data"),
    (topo(us_east=node("primary"), eu_west=node("primary")), {}, "split brain"),
])
def test_refusals_say_what_is_wrong(t, kwargs, expected):
    out = run(t, **kwargs)
    assert any(expected in f for f in out["findings"]), out["findings"]


def test_unplanned_to_a_synchronous_standby_loses_nothing_and_may_proceed():
    out = run(REGION_DOWN, mode="unplanned")
    assert out["findings"] == []
    assert out["old_primary_region"] == "us-east"  # from DNS: the primary cannot answer
    assert out["estimated_loss"]["seconds"] == 0.0


def test_unplanned_to_an_async_replica_needs_allow_data_loss_and_says_the_estimate():
    refused = run(REGION_DOWN, mode="unplanned", region="ap-south", sync=())
    assert "--allow-data-loss" in refused["findings"][0]
    allowed = run(REGION_DOWN, mode="unplanned", region="ap-south", sync=(), allow=True)
    assert allowed["findings"] == []
    assert allowed["estimated_loss"]["possible"] is True
    assert allowed["estimated_loss"]["seconds"] == 12.5
    assert allowed["remaining_replicas"] == ["eu-west"]


def test_failback_only_needs_a_primary_to_come_back_from():
    after = topo(us_east=node(None, error="stopped"), eu_west=node("primary"),
                 ap_south=node("replica"))
    out = run(after, region="us-east", failback=True)
    assert out["findings"] == []
    assert out["old_primary_region"] == "eu-west"


NO_REPLICA_IN_AP_SOUTH = topo(us_east=node(None, error="timeout"),
                              eu_west=node("replica", streaming=False, lag=None, delay=12.0),
                              ap_south=node(None, error="connection refused"))


def test_from_the_backups_a_region_without_a_replica_may_take_over_accepting_the_loss():
    refused = run(NO_REPLICA_IN_AP_SOUTH, mode="unplanned", region="ap-south",
                  source="backup")
    assert len(refused["findings"]) == 1 and "--allow-data-loss" in refused["findings"][0]
    assert "restored from the backups" in refused["findings"][0]
    out = run(NO_REPLICA_IN_AP_SOUTH, mode="unplanned", region="ap-south", allow=True,
              source="backup")
    assert out["findings"] == []
    assert out["estimated_loss"]["possible"] is True
    assert out["remaining_replicas"] == ["eu-west"]


@pytest.mark.parametrize(("t", "kwargs", "expected"), [
    (NO_REPLICA_IN_AP_SOUTH, {"region": "ap-south"}, "for a lost primary only"),
    (REGION_DOWN, {"region": "ap-south", "mode": "unplanned"},
     "ap-south's replica answers: promote it instead (drop --source backup)"),
    (topo(us_east=node(None, error="timeout"), ap_south={"role": None, "host": None,
                                                         "error": "no running db instance"}),
     {"region": "ap-south", "mode": "unplanned"},
     "ap-south has no running database host to restore onto (no running db instance)"),
])
def test_from_the_backups_refusals_say_what_is_wrong(t, kwargs, expected):
    out = run(t, allow=True, source="backup", **kwargs)
    assert any(expected in f for f in out["findings"]), out["findings"]


TWO_ZONES = {**REGIONS, "us-east": {**REGIONS["us-east"],
                                    "db_zones": ["us-east-1a", "us-east-1b"]}}


def two_zone_topo(**nodes):
    return probe_result(nodes, regions=TWO_ZONES)


def test_a_failover_from_a_two_node_region_repoints_its_in_region_standby_too():
    t = two_zone_topo(us_east=node("primary", host="10.10.1.4"),
                      us_east_b=node("replica", sync_state="potential", host="10.10.2.4"),
                      eu_west=node("replica", sync_state="sync"),
                      ap_south=node("replica", sync_state="async"))
    out = run(t)
    assert out["findings"] == []
    assert (out["target_node"], out["old_primary_node"]) == ("eu-west", "us-east")
    assert out["old_primary_host"] == "10.10.1.4"
    assert out["remaining_replicas"] == ["ap-south"]
    assert out["repoint_nodes"] == ["ap-south", "us-east-b"]


def test_a_failback_promotes_the_regions_first_node_while_it_streams():
    t = two_zone_topo(us_east=node("replica", host="10.10.1.4"),
                      us_east_b=node("replica", host="10.10.2.4"),
                      eu_west=node("primary"), ap_south=node("replica"))
    out = run(t, region="us-east", failback=True)
    assert out["findings"] == []
    assert (out["target_node"], out["target_host"]) == ("us-east", "10.10.1.4")
    assert out["repoint_nodes"] == ["ap-south", "us-east-b"]


def test_without_its_first_node_a_region_promotes_the_standby_that_received_most():
    t = two_zone_topo(us_east=node(None, host=None, error="no running db instance"),
                      us_east_b=node("replica", host="10.10.2.4"),
                      eu_west=node("primary"), ap_south=node("replica"))
    out = run(t, region="us-east")
    assert out["findings"] == []
    assert (out["target_node"], out["target_host"]) == ("us-east-b", "10.10.2.4")
    # A failback promotes the first node, which its rejoin starts again.
    assert run(t, region="us-east", failback=True)["target_node"] == "us-east"


def test_an_unplanned_failover_repoints_no_node_of_the_lost_region_it_fences():
    t = two_zone_topo(us_east=node(None, error="timeout"),
                      us_east_b=node("replica", streaming=False, host="10.10.2.4"),
                      eu_west=node("replica", streaming=False, sync_state=None),
                      ap_south=node("replica", streaming=False))
    out = run(t, mode="unplanned")
    assert out["target_node"] == "eu-west" and out["repoint_nodes"] == ["ap-south"]
