"""Where the lab keeps its state, and the fixed names and addresses it uses.

Everything the lab creates on disk lives under one directory (``.drkit/lab`` in
the project, or ``DRKIT_LAB_DIR``), so ``lab down`` can remove it in one place.
The network names and addresses are the contract in docs/internals.md, "The lab".
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

LAB_DIR_ENV = "DRKIT_LAB_DIR"

#: The gateway namespace: one bridge per subnet, routes between them, moto and DNS.
GATEWAY_NS = "drk-gw"
#: Root-namespace end and gateway end of the root <-> gateway link.
ROOT_LINK = "drk-root"
GATEWAY_LINK = "drk-gw0"
ROOT_ADDR = "10.77.0.1"
GATEWAY_ADDR = "10.77.0.2"
LINK_PREFIX = 30

CONTROL_PLANE_PORT = 5000
CONTROL_PLANE_URL = f"http://{GATEWAY_ADDR}:{CONTROL_PLANE_PORT}"
#: The same control plane over TLS, for clients that only speak TLS (pgBackRest's
#: S3), under a name of the cloud's own that the lab resolver answers; the
#: certificate is signed by the lab's CA (drkit.lab.tls, ``<lab>/tls/ca.crt``).
CONTROL_PLANE_TLS_PORT = 443
S3_TLS_NAME = "s3.cloud.lab"
DNS_PORT = 53

#: Every lab host namespace is named HOST_NS_PREFIX + instance id.
HOST_NS_PREFIX = "drkh-"
#: Every namespace the lab owns starts with this (drk-gw, drkh-...).
LAB_NS_PREFIX = "drk"

#: The cloud regions the lab estate uses, keyed by drkit's logical region name.
DEFAULT_REGIONS: dict[str, str] = {
    "us-east": "us-east-1",
    "eu-west": "eu-west-1",
    "ap-south": "ap-south-1",
}

#: Fake credentials: moto accepts any, but every AWS client insists on having some.
FAKE_CREDENTIALS: dict[str, str] = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
}


def host_ns(instance_id: str) -> str:
    """The network namespace of the host that runs ``instance_id``."""
    return HOST_NS_PREFIX + instance_id


def bridge_name(zone: str) -> str:
    """The gateway bridge of an availability zone's segment (``br-us-east-1a``).

    Linux interface names hold at most 15 characters, so long zone names are
    refused rather than silently truncated into a collision.
    """
    name = f"br-{zone}"
    if len(name) > 15:
        from drkit.errors import LabError

        raise LabError(f"zone name {zone!r} too long for a bridge name ({name!r} > 15 chars)")
    return name


def host_port_name(instance_id: str) -> str:
    """The gateway-side veth of a host (``vh-`` + the id's last 12 characters)."""
    return "vh-" + instance_id[-12:]


@dataclass(frozen=True)
class LabPaths:
    """The lab's directories and files, all under ``root``."""

    root: Path

    @classmethod
    def for_project(cls, project_root: str | os.PathLike[str]) -> LabPaths:
        """``DRKIT_LAB_DIR`` if set, else ``<project>/.drkit/lab``."""
        explicit = os.environ.get(LAB_DIR_ENV)
        if explicit:
            return cls(Path(explicit).resolve())
        return cls(Path(project_root).resolve() / ".drkit" / "lab")

    @property
    def run_dir(self) -> Path:
        """Pid files of the lab's background processes."""
        return self.root / "run"

    @property
    def log_dir(self) -> Path:
        return self.root / "logs"

    @property
    def hosts_dir(self) -> Path:
        """One directory per instance: the host's disk (survives a stop)."""
        return self.root / "hosts"

    @property
    def regions_dir(self) -> Path:
        """Regional storage, mounted at /mnt/regional on that region's hosts."""
        return self.root / "regions"

    @property
    def ssh_dir(self) -> Path:
        return self.root / "ssh"

    @property
    def ssh_key(self) -> Path:
        """The private key that logs in as root on every lab host."""
        return self.ssh_dir / "id_ed25519"

    @property
    def host_key(self) -> Path:
        """The host key every lab sshd presents."""
        return self.ssh_dir / "ssh_host_ed25519_key"

    @property
    def authorized_keys(self) -> Path:
        return self.ssh_dir / "authorized_keys"

    @property
    def tls_dir(self) -> Path:
        """The lab's CA and the control plane's TLS certificate (drkit.lab.tls)."""
        return self.root / "tls"

    @property
    def hosts_json(self) -> Path:
        """The reconciler's view of instances and hosts (for status and tests)."""
        return self.root / "hosts.json"

    @property
    def chaos_json(self) -> Path:
        """Active outages and killed nodes, honoured by the reconciler."""
        return self.root / "chaos.json"

    @property
    def state_json(self) -> Path:
        """What ``lab up`` did and how long each phase took."""
        return self.root / "state.json"

    def pid_file(self, name: str) -> Path:
        return self.run_dir / f"{name}.pid"

    def log_file(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def host_dir(self, instance_id: str) -> Path:
        return self.hosts_dir / instance_id

    def region_dir(self, cloud_region: str) -> Path:
        return self.regions_dir / cloud_region


def netns_etc_dir(ns: str) -> Path:
    """``/etc/netns/<ns>``: files ``ip netns exec`` binds over /etc in that namespace."""
    return Path("/etc/netns") / ns
