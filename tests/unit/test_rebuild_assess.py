"""The rebuild decision: which estates RB-DR-007 refuses to rebuild, and why (pure logic)."""

from __future__ import annotations

from drkit.checks.rebuild import assess
from tests.support.topology import probe_result


def node(role, *, host="10.0.0.1", timeline=3, error=None):
    return {"role": role, "host": host, "timeline": timeline if role else None, "error": error}


def topo(dns="us-east", **nodes):
    return probe_result(nodes, dns=dns)


GONE = node(None, host=None, error="no running db instance")
CUT = node(None, error="timeout")


def test_two_regions_cut_off_and_the_third_gone_is_rebuilt_and_the_old_primary_fenced():
    out = assess(topo(us_east=CUT, eu_west=CUT, ap_south=GONE), region="ap-south", force=False)
    assert out["findings"] == []
    assert out["fence_region"] == "us-east" and out["old_primary_region"] == "us-east"
    assert out["lost_regions"] == ["ap-south", "eu-west", "us-east"]
    assert out["remaining_replicas"] == [] and out["timeline_hint"] == ""


def test_a_replica_that_answers_elsewhere_is_repointed_and_gives_the_timeline():
    out = assess(topo(us_east=CUT, eu_west=node("replica", timeline=4), ap_south=GONE),
                 region="ap-south", force=False)
    assert out["findings"] == [] and out["remaining_replicas"] == ["eu-west"]
    assert out["timeline_hint"] == 4


def test_rebuilding_the_lost_primarys_own_region_fences_nothing():
    out = assess(topo(us_east=GONE, eu_west=CUT, ap_south=CUT), region="us-east", force=False)
    assert out["findings"] == [] and out["fence_region"] == ""


def test_a_primary_that_answers_is_refused_unless_forced():
    healthy_primary = topo(us_east=node("primary"), eu_west=CUT, ap_south=GONE)
    out = assess(healthy_primary, region="ap-south", force=False)
    assert len(out["findings"]) == 1
    assert out["findings"][0].startswith("the primary in us-east (10.0.0.1) answers")
    assert "--force rebuilds anyway" in out["findings"][0]
    assert assess(healthy_primary, region="ap-south", force=True)["findings"] == []


def test_a_region_that_is_still_healthy_is_refused_even_forced():
    healthy = topo(us_east=node("primary"), eu_west=node("replica"), ap_south=node("replica"))
    for force in (False, True):
        findings = assess(healthy, region="ap-south", force=force)["findings"]
        assert any(f.startswith("ap-south's database answers as a replica: the region is "
                                "not lost; promote it instead (drkit failover --region "
                                "ap-south)") for f in findings), findings
    assert assess(healthy, region="us-east", force=True)["findings"] == [
        "us-east holds the primary, which answers: there is nothing to rebuild there"]


def test_an_unknown_region_and_a_split_brain_are_refused():
    split = topo(us_east=node("primary"), eu_west=node("primary"), ap_south=GONE)
    findings = assess(split, region="mars", force=True)["findings"]
    assert findings[0] == ("region mars is not one of this environment's regions "
                           "(ap-south, eu-west, us-east)")
    assert findings[1].startswith("split brain: us-east, eu-west all accept writes")
