"""The lab's network: namespaces, bridges, veths, routes, and cutting them.

A thin layer over iproute2. Every function changes one named thing the lab owns
(namespaces starting ``drk``, the ``drk-root`` link, routes via the gateway) and
nothing else: the root namespace only gains the ``drk-root`` link and routes to
the VPC CIDRs through it, which vanish with the link. Forwarding is switched on
inside the gateway namespace only.
"""

from __future__ import annotations

import ipaddress
import shutil
import subprocess
import time
from collections.abc import Sequence

from drkit.errors import LabError
from drkit.lab import paths
from drkit.lab.processes import kill_pids


def ip(*args: str, ns: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """Run ``ip [-n ns] args...``; LabError with ip's message on failure when ``check``."""
    argv = ["ip", *(["-n", ns] if ns else []), *args]
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise LabError(f"`{' '.join(argv)}` failed: {proc.stderr.strip() or proc.returncode}")
    return proc


def in_ns(ns: str, argv: Sequence[str], *, check: bool = True) -> subprocess.CompletedProcess:
    """Run a command inside namespace ``ns`` (``ip netns exec``)."""
    full = ["ip", "netns", "exec", ns, *argv]
    proc = subprocess.run(full, capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise LabError(f"`{' '.join(full)}` failed: {proc.stderr.strip() or proc.returncode}")
    return proc


# -- namespaces -------------------------------------------------------------------


def list_namespaces(prefix: str = paths.LAB_NS_PREFIX) -> list[str]:
    """Names of the network namespaces starting with ``prefix``."""
    out = ip("netns", "list").stdout
    names = [line.split()[0] for line in out.splitlines() if line.strip()]
    return sorted(n for n in names if n.startswith(prefix))


def ns_exists(ns: str) -> bool:
    return ns in list_namespaces(ns)


def create_ns(ns: str) -> None:
    """Create namespace ``ns`` with its loopback up."""
    ip("netns", "add", ns)
    ip("link", "set", "lo", "up", ns=ns)


def ns_pids(ns: str) -> list[int]:
    """Pids of every process whose network namespace is ``ns``."""
    proc = ip("netns", "pids", ns, check=False)
    return [int(p) for p in proc.stdout.split() if p.isdigit()]


def kill_ns_processes(ns: str, *, timeout: float = 10.0) -> int:
    """SIGKILL every process in ``ns``, wait until /proc shows them gone; return the count.

    These are the lab's own processes (sshd, PostgreSQL, the app started over ssh).
    Repeats until none is left, since a dying sshd may have forked a child.
    """
    killed = 0
    for _ in range(5):
        pids = ns_pids(ns)
        if not pids:
            break
        kill_pids(pids, timeout=timeout)
        killed += len(pids)
    return killed


def delete_ns(ns: str) -> None:
    """Kill what runs in ``ns``, delete it (its veths go with it) and its /etc/netns dir."""
    if ns_exists(ns):
        kill_ns_processes(ns)
        ip("netns", "delete", ns)
    shutil.rmtree(paths.netns_etc_dir(ns), ignore_errors=True)


def write_resolv_conf(ns: str, nameserver: str) -> None:
    """``/etc/netns/<ns>/resolv.conf``: what ``ip netns exec`` shows as /etc/resolv.conf."""
    etc = paths.netns_etc_dir(ns)
    etc.mkdir(parents=True, exist_ok=True)
    (etc / "resolv.conf").write_text(f"nameserver {nameserver}\noptions timeout:1 attempts:2\n")


# -- links ------------------------------------------------------------------------


def link_exists(dev: str, ns: str | None = None) -> bool:
    return ip("link", "show", "dev", dev, ns=ns, check=False).returncode == 0


def link_is_up(dev: str, ns: str | None = None) -> bool:
    """True if ``dev`` is administratively up."""
    out = ip("-o", "link", "show", "dev", dev, ns=ns, check=False).stdout
    flags = out.split("<", 1)[-1].split(">", 1)[0].split(",") if "<" in out else []
    return "UP" in flags


def set_link(dev: str, *, up: bool, ns: str | None = None) -> None:
    ip("link", "set", "dev", dev, "up" if up else "down", ns=ns)


def neigh_flush(ns: str | None = None) -> None:
    """Forget learned neighbours, so traffic resumes at once after an outage."""
    ip("neigh", "flush", "all", ns=ns, check=False)


def delete_link(dev: str, ns: str | None = None, *, timeout: float = 5.0) -> None:
    """Delete ``dev`` if present and wait until it is gone.

    A veth whose peer's namespace was just deleted disappears asynchronously, so
    "Cannot find device" while deleting it is success, not an error.
    """
    deadline = time.monotonic() + timeout
    while link_exists(dev, ns):
        proc = ip("link", "delete", "dev", dev, ns=ns, check=False)
        if proc.returncode != 0 and link_exists(dev, ns) and time.monotonic() > deadline:
            raise LabError(f"cannot delete link {dev}: {proc.stderr.strip()}")
        time.sleep(0.02)


# -- the gateway --------------------------------------------------------------------


def gateway_exists() -> bool:
    return ns_exists(paths.GATEWAY_NS)


def create_gateway() -> None:
    """The gateway namespace, forwarding inside it, and the root <-> gateway link."""
    gw = paths.GATEWAY_NS
    create_ns(gw)
    in_ns(gw, ["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"])
    ip("link", "add", paths.ROOT_LINK, "type", "veth", "peer", "name", paths.GATEWAY_LINK,
       "netns", gw)
    ip("addr", "add", f"{paths.ROOT_ADDR}/{paths.LINK_PREFIX}", "dev", paths.ROOT_LINK)
    ip("addr", "add", f"{paths.GATEWAY_ADDR}/{paths.LINK_PREFIX}", "dev", paths.GATEWAY_LINK,
       ns=gw)
    set_link(paths.ROOT_LINK, up=True)
    set_link(paths.GATEWAY_LINK, up=True, ns=gw)


def delete_gateway() -> None:
    """Remove the gateway namespace (its bridges and ports go with it) and drk-root."""
    delete_ns(paths.GATEWAY_NS)
    delete_link(paths.ROOT_LINK)  # normally gone with its peer; after a half-built up, not


def bridges() -> list[str]:
    """The zone bridges in the gateway namespace."""
    out = ip("-o", "link", "show", "type", "bridge", ns=paths.GATEWAY_NS, check=False).stdout
    return sorted(line.split(":")[1].strip().split("@")[0] for line in out.splitlines()
                  if line.strip())


def ensure_bridge(zone: str, subnet_cidr: str, *, up: bool = True) -> bool:
    """Make sure zone's bridge exists and carries the subnet's first address.

    An existing bridge keeps its link state (an outage stays an outage). Returns
    True if anything was created.
    """
    gw, name = paths.GATEWAY_NS, paths.bridge_name(zone)
    net = ipaddress.ip_network(subnet_cidr)
    address = f"{net.network_address + 1}/{net.prefixlen}"
    created = False
    if not link_exists(name, gw):
        ip("link", "add", name, "type", "bridge", ns=gw)
        set_link(name, up=up, ns=gw)
        created = True
    have = ip("-o", "addr", "show", "dev", name, ns=gw).stdout
    if f" {address} " not in have:
        ip("addr", "add", address, "dev", name, ns=gw)
        created = True
    return created


_PROBE = """
import socket, sys
s = socket.socket()
s.settimeout(float(sys.argv[3]))
try:
    s.connect((sys.argv[1], int(sys.argv[2])))
except ConnectionRefusedError:
    pass  # a RST came back: the address is reachable, the port just closed
except OSError as exc:
    sys.exit(f"unreachable: {exc}")
"""


def reachable(from_ns: str, address: str, port: int = 22, timeout: float = 1.0) -> bool:
    """True if ``address`` answers a TCP connect (accept or refuse) from ``from_ns``.

    The lab has no ping; a refused connection proves the path works both ways
    just as well as an echo reply, and a timeout proves it does not.
    """
    import sys

    proc = in_ns(from_ns, [sys.executable, "-c", _PROBE, address, str(port), str(timeout)],
                 check=False)
    return proc.returncode == 0


def ensure_root_route(cidr: str) -> bool:
    """Route ``cidr`` (a VPC) from the root namespace via the gateway; True if added."""
    if ip("route", "show", "exact", cidr).stdout.strip():
        return False
    ip("route", "add", cidr, "via", paths.GATEWAY_ADDR, "dev", paths.ROOT_LINK)
    return True


def root_routes() -> list[str]:
    """The root namespace's routes through the lab gateway (CIDRs)."""
    out = ip("route", "show", "dev", paths.ROOT_LINK, check=False).stdout
    return [line.split()[0] for line in out.splitlines() if " via " in f" {line}"]


# -- hosts --------------------------------------------------------------------------


def mac_for(address: str) -> str:
    """A locally administered unicast MAC for an IPv4 address: 02:d7:a.b.c.d in hex."""
    octets = [int(part) for part in address.split(".")]
    return ":".join(f"{b:02x}" for b in [0x02, 0xD7, *octets])


def attach_host(ns: str, port: str, zone: str, address: str, prefix: int,
                gateway: str, *, up: bool = True) -> None:
    """Plug host namespace ``ns`` into its zone's bridge.

    The veth is created inside the gateway; its far end moves into ``ns`` as
    ``eth0`` with the instance's address and a default route via the bridge's .1.
    ``eth0``'s MAC follows from the address, as an ENI's stays with its instance:
    a stopped and started host answers at the MAC its neighbours still cache
    (a fresh MAC left the gateway sending to the old one for 20 s and more).
    """
    gw = paths.GATEWAY_NS
    # A port left by this host's previous life, its namespace kept alive by a
    # reference elsewhere: deleting one end of a veth deletes both.
    if link_exists(port, ns=gw):
        ip("link", "del", port, ns=gw)
    ip("link", "add", port, "type", "veth", "peer", "name", "eth0",
       "address", mac_for(address), "netns", ns, ns=gw)
    ip("link", "set", "dev", port, "master", paths.bridge_name(zone), ns=gw)
    ip("addr", "add", f"{address}/{prefix}", "dev", "eth0", ns=ns)
    set_link("eth0", up=True, ns=ns)
    set_link(port, up=up, ns=gw)
    ip("route", "add", "default", "via", gateway, ns=ns)


def bridge_ports(zone: str) -> list[str]:
    """The host ports plugged into a zone's bridge."""
    out = ip("-o", "link", "show", "master", paths.bridge_name(zone), ns=paths.GATEWAY_NS,
             check=False).stdout
    return [line.split(":")[1].strip().split("@")[0] for line in out.splitlines()
            if line.strip()]
