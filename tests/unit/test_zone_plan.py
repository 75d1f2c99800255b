"""RB-DR-002's pure decisions: how a region's app capacity spreads over its zones
(it must agree with terraform/modules/region, whose tftest has the same cases),
and which zone-failover requests are refused, with the way out."""

from __future__ import annotations

import pytest

from drkit.checks.zones import request_problems, shares, split_surplus

ZONES = ["us-east-1a", "us-east-1b"]


@pytest.mark.parametrize(("total", "zones", "out", "expected"), [
    (2, ZONES, [], {"us-east-1a": 1, "us-east-1b": 1}),
    (1, ZONES, [], {"us-east-1a": 1, "us-east-1b": 0}),
    (3, ZONES, [], {"us-east-1a": 2, "us-east-1b": 1}),
    (2, ZONES, ["us-east-1a"], {"us-east-1a": 0, "us-east-1b": 2}),
    (2, ZONES, ["us-east-1b"], {"us-east-1a": 2, "us-east-1b": 0}),
    # the region module's tftest "a_zone_shift_moves_app_capacity_to_the_zones_left_in"
    (3, ["eu-west-1a", "eu-west-1b", "eu-west-1c"], ["eu-west-1a"],
     {"eu-west-1a": 0, "eu-west-1b": 2, "eu-west-1c": 1}),
    (24, ZONES, [], {"us-east-1a": 12, "us-east-1b": 12}),
])
def test_app_capacity_spreads_over_the_zones_in_as_terraform_does(total, zones, out, expected):
    assert shares(total, zones, out) == expected
    assert sum(shares(total, zones, out).values()) == total


def _refusal(zone, restore=False, shifted=(), primary_zone=None, standby=None):
    region = {"us-east-1a": "us-east", "us-east-1b": "us-east",
              "ap-south-1a": "ap-south"}.get(zone)
    region_zones = ["ap-south-1a"] if region == "ap-south" else ZONES
    return request_problems(zone, restore=restore, region=region, region_zones=region_zones,
                            known=[*ZONES, "ap-south-1a"], shifted_zones=list(shifted),
                            primary_zone=primary_zone, standby=standby)


@pytest.mark.parametrize(("request_", "problem", "way_out"), [
    ({"zone": "mars-1a"}, "is not one of the estate's zones", "use one of: us-east-1a"),
    ({"zone": "ap-south-1a"}, "the only zone of region ap-south still in", "region failover"),
    ({"zone": "us-east-1a", "shifted": ["us-east-1b"]}, "only zone of region us-east",
     "drkit failover --region"),
    ({"zone": "us-east-1b", "shifted": ["us-east-1b"]}, "is shifted away already",
     "drkit zone-failover --zone us-east-1b --restore"),
    ({"zone": "us-east-1b", "restore": True}, "was never shifted away", "shifted zones are none"),
    ({"zone": "us-east-1a", "primary_zone": "us-east-1a"}, "the database primary runs in zone",
     "a region failover moves it"),
])
def test_bad_requests_are_refused_with_the_way_out(request_, problem, way_out):
    problems, hint = _refusal(**request_)
    assert len(problems) == 1 and problem in problems[0], problems
    assert way_out in hint, hint


@pytest.mark.parametrize("request_", [
    {"zone": "us-east-1b"},
    {"zone": "us-east-1b", "primary_zone": "us-east-1a"},
    # The primary's zone, with a standby in another zone to take over.
    {"zone": "us-east-1a", "primary_zone": "us-east-1a", "standby": "us-east-b"},
    {"zone": "us-east-1b", "restore": True, "shifted": ["us-east-1b"]},
])
def test_sound_requests_pass(request_):
    assert _refusal(**request_) == ([], "")


def _host(iid, launched, quarantined=False):
    return {"id": iid, "launched": launched, "quarantined": quarantined}


def test_a_restore_takes_the_newest_hosts_over_each_share_and_keeps_the_others():
    groups = {"us-east-1a": {"members": ["i-old", "i-new", "i-newer"]},
              "us-east-1b": {"members": []}}
    hosts = [_host("i-old", 1.0), _host("i-new", 2.0), _host("i-newer", 3.0)]
    surplus, keep = split_surplus(groups, hosts, {"us-east-1a": 2, "us-east-1b": 1})
    assert [n["id"] for n in surplus] == ["i-newer"]
    assert [n["id"] for n in keep] == ["i-new", "i-old"]


def test_a_quarantined_host_is_never_surplus_and_counts_toward_its_group():
    groups = {"us-east-1a": {"members": ["i-evidence", "i-new"]}}
    hosts = [_host("i-evidence", 9.0, quarantined=True), _host("i-new", 2.0)]
    surplus, keep = split_surplus(groups, hosts, {"us-east-1a": 1})
    assert [n["id"] for n in surplus] == ["i-new"] and keep == []
    surplus, keep = split_surplus(groups, hosts, {"us-east-1a": 0})
    assert [n["id"] for n in surplus] == ["i-new"]  # the evidence stays even over the share
