"""The lab enforces security groups on its hosts (drkit.lab.security_groups): the
rules EC2 lists become an nftables table in the host's namespace. What matters: a
source or port no rule names is dropped, replies pass, a group with no egress rule
lets nothing out, source groups resolve to their members, and an instance only in
its VPC's default group is left unfiltered. The last test applies a table in a
throwaway namespace and proves it drops and admits real connections."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading

import pytest

from drkit.lab.security_groups import apply, rules, ruleset

HOSTS = {
    "GroupId": "sg-hosts", "GroupName": "lab-us-east-hosts",
    "IpPermissions": [
        {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22,
         "IpRanges": [{"CidrIp": "10.10.0.0/16"}, {"CidrIp": "10.77.0.0/30"}]},
        {"IpProtocol": "tcp", "FromPort": 5432, "ToPort": 5432,
         "IpRanges": [{"CidrIp": "10.20.0.0/16"}], "UserIdGroupPairs": [{"GroupId": "sg-app"}]},
    ],
    "IpPermissionsEgress": [{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}],
}
QUARANTINE = {
    "GroupId": "sg-q", "GroupName": "lab-us-east-quarantine",
    "IpPermissions": [{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22,
                       "IpRanges": [{"CidrIp": "10.77.0.0/30"}]}],
    "IpPermissionsEgress": [],
}
DEFAULT = {"GroupId": "sg-d", "GroupName": "default", "IpPermissions": [],
           "IpPermissionsEgress": [{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]}


def test_ingress_names_each_port_and_source_and_groups_resolve_to_members():
    got = rules(HOSTS["IpPermissions"], {"sg-app": ["10.10.1.7", "10.10.2.7"]}, "saddr")
    assert got == [
        "ip saddr { 10.10.0.0/16, 10.77.0.0/30 } tcp dport 22 accept",
        "ip saddr { 10.10.1.7/32, 10.10.2.7/32, 10.20.0.0/16 } tcp dport 5432 accept",
    ]


def test_a_quarantined_host_admits_the_bastions_ssh_and_lets_nothing_out():
    script = ruleset([QUARANTINE], {})
    ingress, egress = script.split("chain egress")
    assert "ip saddr { 10.77.0.0/30 } tcp dport 22 accept" in ingress
    assert "policy drop" in ingress and "ct state established,related accept" in ingress
    assert "policy drop" in egress and "accept\n" in egress
    assert "daddr" not in egress  # no egress rule: only replies and loopback


def test_the_default_group_alone_is_not_filtered():
    assert ruleset([DEFAULT], {}) is None
    assert ruleset([], {}) is None
    assert ruleset([DEFAULT, HOSTS], {}) is not None


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("nft"),
                    reason="needs root and nftables (bash scripts/setup)")
def test_a_table_applied_in_a_namespace_drops_what_no_rule_admits():
    ns = f"sgtest-{os.getpid()}"  # not drk*: the lab owns those
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
        listener = subprocess.Popen(
            ["ip", "netns", "exec", ns, "python3", "-c",
             "import socket,time\n"
             "s=[socket.create_server(('127.0.0.2',p)) for p in (2222,8080)]\n"
             "time.sleep(30)"])
        try:
            def connects(port: int) -> bool:
                out = subprocess.run(
                    ["ip", "netns", "exec", ns, "python3", "-c",
                     f"import socket;socket.create_connection(('127.0.0.2',{port}),timeout=1)"],
                    capture_output=True)
                return out.returncode == 0

            threading.Event().wait(0.5)
            assert connects(2222) and connects(8080)
            # Loopback is always admitted (as a host's own traffic is): prove the
            # filter on a rule set whose loopback line is taken out.
            group = {**HOSTS, "IpPermissions": [{"IpProtocol": "tcp", "FromPort": 2222,
                                                 "ToPort": 2222,
                                                 "IpRanges": [{"CidrIp": "127.0.0.0/8"}]}]}
            script = ruleset([group], {}).replace('iif "lo" accept\n', "")
            apply(ns, script)
            assert connects(2222) and not connects(8080)
            apply(ns, None)
            assert connects(8080)
        finally:
            listener.kill()
            listener.wait()
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)
