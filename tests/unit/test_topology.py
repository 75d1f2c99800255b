"""The estate's database nodes: their names, which standbys a commit waits for, and
the settings that list them, the same in Python, in the playbooks and in Terraform."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest
import yaml

from drkit import topology
from drkit.checks.estate import db_instances_by_node
from drkit.env import validate_settings

REPO = Path(__file__).resolve().parents[2]

REGIONS = {
    "us-east": {"cloud_region": "us-east-1", "role": "primary",
                "zones": ["us-east-1a", "us-east-1b"]},
    "eu-west": {"cloud_region": "eu-west-1", "role": "hot-standby",
                "zones": ["eu-west-1a", "eu-west-1b"]},
    "ap-south": {"cloud_region": "ap-south-1", "role": "warm-standby", "zones": ["ap-south-1a"]},
}
TWO_ZONES = {**REGIONS, "us-east": {**REGIONS["us-east"], "db_zones": ["us-east-1a", "us-east-1b"]}}


def _keys(regions) -> list[tuple[str, str, str]]:
    return [(n.key, n.name, n.zone) for n in topology.db_nodes(regions)]


def test_one_node_per_region_keeps_the_region_names():
    assert _keys(REGIONS) == [("ap-south", "ap_south", "ap-south-1a"),
                              ("eu-west", "eu_west", "eu-west-1a"),
                              ("us-east", "us_east", "us-east-1a")]


def test_a_region_listing_no_zone_still_has_its_node():
    assert _keys({"us-west": {"cloud_region": "us-west-1", "zones": []}}) == [
        ("us-west", "us_west", "")]


def test_a_second_zone_adds_a_node_named_after_its_zone_letter():
    assert _keys(TWO_ZONES)[-2:] == [("us-east", "us_east", "us-east-1a"),
                                     ("us-east-b", "us_east_b", "us-east-1b")]
    nodes = topology.db_nodes(TWO_ZONES)
    assert topology.node_of(nodes, "us-east", "us-east-1b").key == "us-east-b"
    assert topology.node_of(nodes, "us-east", None).key == "us-east"
    assert topology.node_of(nodes, "us-east", "us-east-1c") is None
    # A region's only node is it whatever the zone.
    assert topology.node_of(topology.db_nodes(REGIONS), "us-east", "us-east-1b").key == "us-east"


def test_commits_wait_for_the_cross_region_standby_first_then_the_in_region_peer():
    nodes = topology.db_nodes(TWO_ZONES)
    assert topology.sync_candidates(nodes, "us-east", ["eu-west"]) == ["eu_west"]
    assert topology.sync_candidates(nodes, "us-east", ["eu-west"], in_region=True) == [
        "eu_west", "us_east_b"]
    # After an in-region promotion the old primary is the peer.
    assert topology.sync_candidates(nodes, "us-east-b", ["eu-west"], in_region=True) == [
        "eu_west", "us_east"]
    # eu-west as primary: us-east's two nodes are cross-region when us-east is synchronous.
    assert topology.sync_candidates(nodes, "eu-west", ["us-east"]) == ["us_east", "us_east_b"]
    with pytest.raises(ValueError, match="'nowhere' is not one of the database nodes"):
        topology.sync_candidates(nodes, "nowhere", [])


@pytest.mark.parametrize(("db_zones", "problem"), [
    (["us-east-1c"], "drkit.regions.us-east.db_zones: 'us-east-1c' is not one of the "
                     "region's zones (us-east-1a, us-east-1b)"),
    (["us-east-1a", "us-east-1a"], "drkit.regions.us-east.db_zones: a zone is listed twice"),
    ([], "drkit.regions.us-east.db_zones: expected a non-empty list of zone names"),
    ("us-east-1a", "drkit.regions.us-east.db_zones: expected a non-empty list of zone names"),
])
def test_db_zones_that_are_not_the_regions_zones_are_refused_by_path(db_zones, problem):
    regions = {**REGIONS, "us-east": {**REGIONS["us-east"], "db_zones": db_zones}}
    found = validate_settings({"regions": regions})
    assert any(p.startswith(problem) for p in found), found
    assert validate_settings({"regions": TWO_ZONES}) == []


def test_synchronous_in_region_must_be_a_boolean():
    found = validate_settings({"regions": REGIONS,
                               "postgres": {"synchronous_in_region": "yes"}})
    assert "drkit.postgres.synchronous_in_region: expected true or false" in found


def test_the_playbooks_filters_name_nodes_as_python_does():
    path = REPO / "playbooks" / "filter_plugins" / "drkit_topology.py"
    spec = importlib.util.spec_from_file_location("drkit_topology_filters", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    filters = module.FilterModule().filters()
    assert [n["key"] for n in filters["drkit_db_nodes"](TWO_ZONES)] == [
        n.key for n in topology.db_nodes(TWO_ZONES)]
    assert filters["drkit_db_node"](TWO_ZONES, "us-east", "us-east-1b")["name"] == "us_east_b"
    assert filters["drkit_sync_candidates"](TWO_ZONES, "us-east", ["eu-west"], True) == [
        "eu_west", "us_east_b"]
    with pytest.raises(ValueError, match="db_zones lists them"):
        filters["drkit_db_node"](TWO_ZONES, "us-east", "us-east-1c")
    # A region's name is its first node's key, whichever host the inventory lists first.
    hosts = [{"drkit_region": "us-east", "drkit_zone": "us-east-1b", "ansible_host": "10.10.2.4"},
             {"drkit_region": "us-east", "drkit_zone": "us-east-1a", "ansible_host": "10.10.1.5"},
             {"drkit_region": "eu-west", "drkit_zone": "eu-west-1b", "ansible_host": "10.20.2.4"}]
    assert filters["drkit_node_host"](hosts, TWO_ZONES, "us-east") == "10.10.1.5"
    assert filters["drkit_node_host"](hosts, TWO_ZONES, "us-east-b") == "10.10.2.4"
    assert filters["drkit_node_host"](hosts, TWO_ZONES, "eu-west") == "10.20.2.4"
    assert filters["drkit_node_host"](hosts, TWO_ZONES, "ap-south") == ""


def test_the_labs_database_nodes_are_its_terraform_db_capacity():
    settings = yaml.safe_load(
        (REPO / "inventory/lab/group_vars/all/drkit.yml").read_text())["drkit"]
    tfvars = (REPO / "terraform/envs/lab/lab.auto.tfvars").read_text()
    capacity = {m[1]: int(m[2]) for m in re.finditer(r"^\s*([a-z-]+)\s*=\s*\{\s*db\s*=\s*(\d+)",
                                                      tfvars, re.M)}
    nodes = topology.db_nodes(settings["regions"])
    # Terraform puts a region's db hosts in its first capacity.db zones, one per zone.
    assert {r: [n.zone for n in nodes if n.region == r] for r in settings["regions"]} == {
        r: region["zones"][:capacity[r]] for r, region in settings["regions"].items()}


def _inst(region: str, zone: str, n: int = 1) -> dict[str, str]:
    return {"id": f"i-{region}-{n}", "ip": f"10.0.0.{n}", "zone": zone, "region": region}


def test_a_one_node_region_is_its_first_running_db_instance_in_any_zone():
    found = db_instances_by_node(REGIONS, {"us-east": [_inst("us-east", "us-east-1b")],
                                           "eu-west": []})
    assert found["us-east"]["instance"]["id"] == "i-us-east-1"
    assert found["eu-west"]["instance"] is None and found["ap-south"]["instance"] is None
    assert not any(n["unexpected"] for n in found.values())


def test_two_node_regions_match_instances_by_zone_and_name_strays():
    running = {"us-east": [_inst("us-east", "us-east-1b", 1), _inst("us-east", "us-east-1a", 2)]}
    found = db_instances_by_node(TWO_ZONES, running)
    assert found["us-east"]["instance"]["id"] == "i-us-east-2"
    assert found["us-east-b"]["instance"]["id"] == "i-us-east-1"
    assert found["us-east-b"]["name"] == "us_east_b"
    stray = db_instances_by_node(
        TWO_ZONES, {"us-east": [_inst("us-east", "us-east-1a"), _inst("us-east", "us-east-1c", 2)]})
    assert stray["us-east-b"]["instance"] is None
    assert stray["us-east-c"]["unexpected"]
    assert stray["us-east-c"]["instance"]["id"] == "i-us-east-2"


def test_a_db_instance_is_named_as_its_node():
    assert topology.name_of_instance(REGIONS, _inst("eu-west", "eu-west-1b")) == "eu_west"
    assert topology.name_of_instance(TWO_ZONES, _inst("us-east", "us-east-1b")) == "us_east_b"
    assert topology.name_of_instance(TWO_ZONES, _inst("us-east", "us-east-1c")) == "us_east_c"
