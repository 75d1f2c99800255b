"""Security groups, enforced on the lab's hosts as a cloud enforces them.

Each hosted instance gets, in its own network namespace, an nftables table
(``inet drkit_sg``) rendered from the rules of the security groups EC2 lists for
it: a packet in is accepted only where an ingress rule allows it (protocol,
ports, source CIDR or source group), a packet out only where an egress rule
does; replies to allowed traffic pass both ways (security groups are stateful).
The reconciler renders every pass and applies only what changed. It lists the
groups again when a host's group membership changes (ModifyInstanceAttribute,
e.g. a quarantine: enforced within a pass or two) and every 10 s otherwise (a
rule changed in place).

On a cloud the filter sits in the hypervisor; here it sits in the host's own
namespace, out of its processes' way (nothing in a lab host touches nftables).

One difference, on purpose: an instance whose only group is its VPC's default
group is not filtered. AWS's default group admits its own members and nothing
else, so the lab's own network tests (bare instances in VPCs of their own, which
the lab reaches over ssh from its root namespace) would see nothing; the estate's
hosts always have groups of their own (terraform/modules/region).
"""

from __future__ import annotations

import ipaddress
import subprocess
from collections.abc import Iterable, Mapping
from typing import Any

from drkit.errors import LabError

TABLE = "drkit_sg"
_PROTOCOLS = {"tcp": "tcp", "6": "tcp", "udp": "udp", "17": "udp", "icmp": "icmp", "1": "icmp"}


def _ports(perm: Mapping[str, Any], proto: str) -> str:
    low, high = perm.get("FromPort"), perm.get("ToPort")
    if proto not in ("tcp", "udp") or low is None or (low, high) in ((0, 65535), (-1, -1)):
        return ""
    return f" {proto} dport {low}" if low == high else f" {proto} dport {low}-{high}"


def _sources(perm: Mapping[str, Any], members: Mapping[str, list[str]]) -> list[str]:
    """The IPv4 networks a rule names: its CIDRs and its groups' members."""
    found = [r["CidrIp"] for r in perm.get("IpRanges", []) if r.get("CidrIp")]
    for pair in perm.get("UserIdGroupPairs", []):
        found += [f"{ip}/32" for ip in members.get(pair.get("GroupId", ""), [])]
    return sorted({str(ipaddress.ip_network(n, strict=False)) for n in found})


def rules(perms: Iterable[Mapping[str, Any]], members: Mapping[str, list[str]],
          direction: str) -> list[str]:
    """nft rules (accept) for EC2 IpPermissions; ``direction`` is saddr (ingress)
    or daddr (egress). A rule naming no network allows nothing."""
    out = []
    for perm in perms:
        raw = str(perm.get("IpProtocol", "-1")).lower()
        proto = _PROTOCOLS.get(raw)
        if raw != "-1" and proto is None:
            continue  # a protocol the lab's hosts do not speak (esp, gre...)
        networks = _sources(perm, members)
        if not networks:
            continue
        match = "" if raw == "-1" else (_ports(perm, proto) or f" meta l4proto {proto}")
        out.append(f"ip {direction} {{ {', '.join(networks)} }}{match} accept")
    return sorted(set(out))


def ruleset(groups: list[Mapping[str, Any]], members: Mapping[str, list[str]]) -> str | None:
    """The nftables script for a host in ``groups`` (DescribeSecurityGroups rows),
    or None when it is not filtered (its VPC's default group alone). The script
    replaces the table in one transaction."""
    if not groups or all(g.get("GroupName") == "default" for g in groups):
        return None
    ingress = rules((p for g in groups for p in g.get("IpPermissions", [])), members, "saddr")
    egress = rules((p for g in groups for p in g.get("IpPermissionsEgress", [])), members,
                   "daddr")
    names = ", ".join(sorted(g["GroupId"] for g in groups))

    def chain(name: str, hook: str, iface: str, accepted: list[str]) -> str:
        lines = [f"type filter hook {hook} priority 0; policy drop;",
                 f'{iface} "lo" accept', "ct state established,related accept", *accepted]
        return f"  chain {name} {{\n" + "".join(f"    {line}\n" for line in lines) + "  }\n"

    return (f"table inet {TABLE}\ndelete table inet {TABLE}\n"
            f"# security groups {names}\n"
            f"table inet {TABLE} {{\n"
            + chain("ingress", "input", "iif", ingress)
            + chain("egress", "output", "oif", egress) + "}\n")


def apply(ns: str, script: str | None) -> None:
    """Replace the host's table with ``script`` (None: remove it)."""
    text = script if script is not None else f"table inet {TABLE}\ndelete table inet {TABLE}\n"
    proc = subprocess.run(["ip", "netns", "exec", ns, "nft", "-f", "-"], input=text,
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise LabError(f"nft in {ns} failed: {proc.stderr.strip() or proc.returncode}",
                       hint="is nftables installed (bash scripts/setup)?")
