"""The reconciler: EC2 instances become real hosts, and follow stop/start/terminate."""

from __future__ import annotations

import subprocess

import pytest

from drkit.fsutil import atomic_write_json
from drkit.lab import control_plane, netns, paths, processes
from drkit.lab.hosts import ssh_argv

pytestmark = pytest.mark.lab


def _ssh(lab, ip: str, command: str) -> subprocess.CompletedProcess:
    return subprocess.run(ssh_argv(lab.paths, ip, command), capture_output=True, text=True,
                          timeout=20)


def test_instances_become_hosts_and_follow_their_lifecycle(lab_core, make_vpc):
    lab = lab_core
    vpc = make_vpc("eu-west-1", ["eu-west-1a", "eu-west-1b"])
    ec2 = vpc["ec2"]
    launched = ec2.run_instances(
        ImageId="ami-785db401", MinCount=2, MaxCount=2, SubnetId=vpc["subnets"]["eu-west-1b"],
        TagSpecifications=[{"ResourceType": "instance", "Tags": [
            {"Key": "Name", "Value": "db-test"}, {"Key": "Role", "Value": "db"},
            {"Key": "DrRegion", "Value": "eu-west"}]}])["Instances"]
    ids = [i["InstanceId"] for i in launched]
    lab.wait_for("two ssh-ready hosts", lambda: all(lab.view().get(i, {}).get("ssh_ready")
                                                    for i in ids))

    first, second = (lab.view()[i] for i in ids)
    assert first["ip"] == launched[0]["PrivateIpAddress"]
    assert (first["zone"], first["region"], first["role"], first["dr_region"]) == (
        "eu-west-1b", "eu-west-1", "db", "eu-west")
    assert first["ns"] == paths.host_ns(ids[0])
    # The host is a machine of its own: its address, its disk, its region's storage,
    # the lab resolver, and a postgres-owned /run/postgresql.
    probe = _ssh(lab, first["ip"], "ip -4 -o addr show eth0; findmnt -n -o SOURCE /srv; "
                                   "cat /etc/resolv.conf; stat -c %U /run/postgresql; "
                                   "touch /srv/marker /mnt/regional/wal-marker")
    assert probe.returncode == 0, probe.stderr
    assert f"{first['ip']}/24" in probe.stdout
    assert ids[0] in probe.stdout  # /srv is the instance's own disk
    assert f"nameserver {paths.GATEWAY_ADDR}" in probe.stdout
    assert "postgres" in probe.stdout
    assert (lab.paths.host_dir(ids[0]) / "srv" / "marker").exists()
    assert (lab.paths.region_dir("eu-west-1") / "wal-marker").exists()
    assert _ssh(lab, second["ip"], "test ! -e /srv/marker").returncode == 0
    assert netns.reachable(second["ns"], first["ip"])

    ec2.stop_instances(InstanceIds=[ids[0]])
    lab.wait_for("the stopped host to go", lambda: lab.view()[ids[0]]["ns"] is None)
    assert not netns.ns_exists(first["ns"])
    assert (lab.paths.host_dir(ids[0]) / "srv" / "marker").exists(), "a stop keeps the disk"
    assert _ssh(lab, first["ip"], "true").returncode != 0

    ec2.start_instances(InstanceIds=[ids[0]])
    lab.wait_for("the started host", lambda: lab.view()[ids[0]]["ssh_ready"])
    back = _ssh(lab, lab.view()[ids[0]]["ip"], "cat /srv/marker && echo disk-kept")
    assert back.returncode == 0 and "disk-kept" in back.stdout
    # Its neighbours' ARP caches stay right: the started host keeps its MAC.
    link = netns.ip("link", "show", "eth0", ns=first["ns"]).stdout
    assert netns.mac_for(first["ip"]) in link

    ec2.terminate_instances(InstanceIds=ids)
    lab.wait_for("terminated hosts and disks to go", lambda: not any(
        netns.ns_exists(paths.host_ns(i)) or lab.paths.host_dir(i).exists() for i in ids))
    lab.wait_for("the view to say terminated",
                 lambda: all(lab.view()[i]["state"] == "terminated" for i in ids))


def test_a_stale_host_without_an_instance_is_removed(lab_core):
    """A namespace and disk left from an earlier control plane are cleaned away."""
    lab = lab_core
    iid = "i-0000000000stale0"
    netns.create_ns(paths.host_ns(iid))
    netns.write_resolv_conf(paths.host_ns(iid), paths.GATEWAY_ADDR)
    disk = lab.paths.host_dir(iid)
    disk.mkdir(parents=True)
    atomic_write_json(disk / "host.json", {"region": "us-east-1"})

    lab.wait_for("the stale host to be removed", lambda: not netns.ns_exists(paths.host_ns(iid))
                 and not disk.exists())
    assert not paths.netns_etc_dir(paths.host_ns(iid)).exists()


def test_hosts_survive_a_control_plane_outage(lab_core, make_vpc):
    """While moto does not answer, the reconciler changes nothing and keeps trying."""
    lab = lab_core
    vpc = make_vpc("us-east-1", ["us-east-1a"])
    iid = vpc["ec2"].run_instances(ImageId="ami-785db401", MinCount=1, MaxCount=1,
                                   SubnetId=vpc["subnets"]["us-east-1a"])["Instances"][0][
        "InstanceId"]
    lab.wait_for("the host", lambda: lab.view().get(iid, {}).get("ssh_ready"))
    reconciler_log = lab.paths.log_file("reconciler")

    control_plane.stop_control_plane(lab.paths)
    try:
        lab.wait_for("the reconciler to notice", lambda: "did not answer"
                     in reconciler_log.read_text())
        record = processes.read_pid_file(lab.paths.pid_file("reconciler"))
        assert record is not None and record.matches()
        assert netns.ns_exists(paths.host_ns(iid))
        assert _ssh(lab, lab.view()[iid]["ip"], "true").returncode == 0
    finally:
        control_plane.start_control_plane(lab.paths)
    # A fresh control plane knows no instance: the host was an earlier cloud's and goes.
    lab.wait_for("the orphaned host to go", lambda: not netns.ns_exists(paths.host_ns(iid)))
