"""The lab's network: up/down leaves the machine as found; chaos really cuts traffic."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from drkit.lab import chaos, controller, netns, paths, processes
from drkit.lab.hosts import ssh_argv

pytestmark = pytest.mark.lab


def _root_routes() -> str:
    return subprocess.run(["ip", "route", "show"], capture_output=True, text=True,
                          check=True).stdout


def _boot(lab, make_vpc, region: str, zones: list[str], count: int = 1,
          zone: str | None = None) -> list[dict]:
    """Run ``count`` instances in ``zone`` (default: the first) and wait for their hosts."""
    vpc = make_vpc(region, zones)
    ids = [i["InstanceId"] for i in vpc["ec2"].run_instances(
        ImageId="ami-785db401", MinCount=count, MaxCount=count,
        SubnetId=vpc["subnets"][zone or zones[0]])["Instances"]]
    lab.wait_for(f"hosts for {ids}", lambda: all(lab.view().get(i, {}).get("ssh_ready")
                                                 for i in ids))
    return [lab.view()[i] for i in ids]


def test_up_then_down_leaves_nothing_behind(lab_core, make_vpc):
    """A lab with a live host goes away completely: namespaces, links, routes,
    processes, /etc/netns entries and the lab directory."""
    lab = lab_core
    controller.down(lab.project_root)  # start from nothing, measured against the machine
    routes_before = _root_routes()
    etc_netns_before = Path("/etc/netns").exists()

    result = controller.up(lab.project_root, estate=False, configure=False)
    assert set(result["phases"]) >= {"gateway", "control plane", "dns", "reconciler"}
    assert controller.dns_answers()["answering"]
    # The make_vpc fixture's lab is the one just rebuilt (same paths).
    (host,) = _boot(lab, make_vpc, "us-east-1", ["us-east-1a"])
    assert subprocess.run(ssh_argv(lab.paths, host["ip"], "true"), timeout=20).returncode == 0
    pids = [processes.read_pid_file(lab.paths.pid_file(n)).pid
            for n in ("moto", "resolver", "reconciler")]
    pids += netns.ns_pids(host["ns"])
    assert len(pids) >= 4

    controller.down(lab.project_root)

    assert netns.list_namespaces(paths.LAB_NS_PREFIX) == []
    assert not netns.link_exists(paths.ROOT_LINK)
    assert _root_routes() == routes_before
    assert [p for p in pids if processes.is_alive(p)] == []
    assert Path("/etc/netns").exists() == etc_netns_before
    assert not list(Path("/etc/netns").glob("drk*"))
    assert not lab.paths.root.exists()


def test_down_cleans_up_after_a_failed_up(lab_core):
    """Half-built pieces (a gateway, a host namespace, its /etc/netns file, a stale
    pid file) are all removed by down."""
    controller.down(lab_core.project_root)
    netns.create_gateway()
    netns.create_ns("drkh-i-halfbuilt")
    netns.write_resolv_conf("drkh-i-halfbuilt", paths.GATEWAY_ADDR)
    lab_core.paths.run_dir.mkdir(parents=True)
    lab_core.paths.pid_file("moto").write_text('{"name": "moto", "pid": 999999, '
                                               '"start_time": 1, "argv": [], "log": ""}')

    controller.down(lab_core.project_root)

    assert controller.leftovers_of(lab_core.paths) == []
    assert not Path("/etc/netns/drkh-i-halfbuilt").exists()


def test_region_outage_cuts_a_region_off_and_restore_brings_it_back(lab_core, make_vpc):
    lab = lab_core
    (east,) = _boot(lab, make_vpc, "us-east-1", ["us-east-1a", "us-east-1b"])
    (west,) = _boot(lab, make_vpc, "eu-west-1", ["eu-west-1a"])
    assert netns.reachable(west["ns"], east["ip"])

    lines = chaos.region_outage(lab.paths, "us-east")
    try:
        assert any("br-us-east-1a down" in line for line in lines)
        assert not netns.reachable(west["ns"], east["ip"], timeout=1.0)
        assert not netns.reachable(east["ns"], west["ip"], timeout=1.0)
        assert not netns.reachable(east["ns"], paths.GATEWAY_ADDR, port=5000, timeout=1.0)
        assert netns.reachable(west["ns"], paths.GATEWAY_ADDR, port=5000)
    finally:
        chaos.restore(lab.paths, region="us-east")
    assert netns.reachable(west["ns"], east["ip"])
    assert subprocess.run(ssh_argv(lab.paths, east["ip"], "true"), timeout=20).returncode == 0


def test_zone_outage_cuts_only_that_zone(lab_core, make_vpc):
    lab = lab_core
    vpc_zones = ["us-east-1a", "us-east-1b"]
    (a,) = _boot(lab, make_vpc, "us-east-1", vpc_zones, zone="us-east-1a")
    (b,) = _boot(lab, make_vpc, "us-east-1", vpc_zones, zone="us-east-1b")
    chaos.zone_outage(lab.paths, "us-east-1b")
    try:
        assert not netns.reachable(a["ns"], b["ip"], timeout=1.0)
        assert netns.reachable(a["ns"], paths.GATEWAY_ADDR, port=5000)
    finally:
        chaos.restore(lab.paths, zone="us-east-1b")
    assert netns.reachable(a["ns"], b["ip"])


def test_node_kill_is_not_resurrected_until_restore(lab_core, make_vpc):
    lab = lab_core
    (host,) = _boot(lab, make_vpc, "ap-south-1", ["ap-south-1a"])
    chaos.node_kill(lab.paths, host["instance_id"])
    try:
        assert netns.ns_pids(host["ns"]) == []
        lab.wait_for("the reconciler to see the kill",
                     lambda: lab.view()[host["instance_id"]]["host"] == "killed")
        # Later passes (it has booted another host since) still leave it dead,
        # while EC2 says running.
        _boot(lab, make_vpc, "ap-south-1", ["ap-south-1a"])
        assert lab.view()[host["instance_id"]]["state"] == "running"
        assert netns.ns_pids(host["ns"]) == []
    finally:
        chaos.restore(lab.paths, host=host["instance_id"])
    assert subprocess.run(ssh_argv(lab.paths, host["ip"], "true"), timeout=20).returncode == 0
