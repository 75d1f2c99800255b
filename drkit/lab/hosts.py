"""One lab host: the machine behind a running EC2 instance.

A host is a network namespace ``drkh-<instance-id>`` plugged into its zone's
bridge, with its own resolv.conf and an sshd in a private mount namespace where
the instance's disk (``.drkit/lab/hosts/<id>/``) is mounted at
/var/lib/postgresql and /srv, its region's storage at /mnt/regional, and /run is
a fresh tmpfs. Everything a user starts over ssh (PostgreSQL, the sample app)
inherits that view, so every host looks like a separate machine.

Stopping a host kills every process in its namespace and removes the namespace;
the disk stays (an EBS volume outlives a stop) unless the instance is gone.
"""

from __future__ import annotations

import contextlib
import ipaddress
import pwd
import shlex
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

from drkit.errors import LabError
from drkit.fsutil import atomic_write_json
from drkit.lab import netns, paths
from drkit.lab.processes import port_open, read_pid_file, start, wait_for_port

SSHD = "/usr/sbin/sshd"
SSH_PORT = 22
DB_USER = "postgres"


@dataclass(frozen=True)
class HostSpec:
    """What the reconciler knows about an instance that decides its host."""

    instance_id: str
    name: str
    address: str
    subnet_cidr: str
    zone: str
    region: str  # the cloud region, e.g. us-east-1
    role: str
    dr_region: str  # the DrRegion tag, e.g. us-east

    @property
    def ns(self) -> str:
        return paths.host_ns(self.instance_id)

    @property
    def prefix(self) -> int:
        return ipaddress.ip_network(self.subnet_cidr).prefixlen

    @property
    def gateway(self) -> str:
        return str(ipaddress.ip_network(self.subnet_cidr).network_address + 1)


# -- ssh material -------------------------------------------------------------------


def ensure_ssh_material(lab: paths.LabPaths) -> None:
    """Generate the lab's client key and host key once; write authorized_keys and a
    known_hosts that trusts the lab host key for every lab address (10.*)."""
    lab.ssh_dir.mkdir(parents=True, exist_ok=True)
    lab.ssh_dir.chmod(0o700)
    for key, comment in ((lab.ssh_key, "drkit-lab"), (lab.host_key, "drkit-lab-host")):
        if not key.exists():
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment,
                            "-f", str(key)], check=True, capture_output=True)
    lab.authorized_keys.write_text(lab.ssh_key.with_suffix(".pub").read_text())
    lab.authorized_keys.chmod(0o600)
    host_pub = lab.host_key.with_suffix(".pub").read_text().split()
    (lab.ssh_dir / "known_hosts").write_text(f"10.* {host_pub[0]} {host_pub[1]}\n")


def ssh_argv(lab: paths.LabPaths, address: str, *command: str, user: str = "root") -> list[str]:
    """An ssh command line that logs in to a lab host with the lab key, checking the
    lab host key, never prompting."""
    return ["ssh", "-i", str(lab.ssh_key), "-o", "BatchMode=yes",
            "-o", f"UserKnownHostsFile={lab.ssh_dir / 'known_hosts'}",
            "-o", "StrictHostKeyChecking=yes", "-o", "ConnectTimeout=3",
            f"{user}@{address}", *command]


# -- the host's disk ------------------------------------------------------------------


def _chown_db_user(path: Path) -> None:
    with contextlib.suppress(KeyError):
        entry = pwd.getpwnam(DB_USER)
        shutil.chown(path, entry.pw_uid, entry.pw_gid)


def prepare_disk(lab: paths.LabPaths, spec: HostSpec) -> Path:
    """The instance's disk directory (created on first boot, kept across stops)."""
    disk = lab.host_dir(spec.instance_id)
    for sub in ("postgresql", "srv"):
        (disk / sub).mkdir(parents=True, exist_ok=True)
    (disk / "root.bashrc").write_text(HOST_BASHRC)
    _chown_db_user(disk / "postgresql")
    region_dir = lab.region_dir(spec.region)
    region_dir.mkdir(parents=True, exist_ok=True)
    _chown_db_user(region_dir)  # the WAL archive is written by the postgres user
    atomic_write_json(disk / "host.json", asdict(spec))
    return disk


#: root's ~/.bashrc inside a host (bash reads it for every command run over ssh).
HOST_BASHRC = "# ~/.bashrc of a drkit lab host's root (drkit.lab.hosts)\n"


def sshd_config(lab: paths.LabPaths, spec: HostSpec) -> str:
    disk = lab.host_dir(spec.instance_id)
    return "\n".join([
        "# Written by drkit.lab.hosts for one lab host.",
        f"ListenAddress {spec.address}",
        f"Port {SSH_PORT}",
        f"HostKey {lab.host_key}",
        f"AuthorizedKeysFile {lab.authorized_keys}",
        f"PidFile {disk / 'sshd.pid'}",
        "PermitRootLogin prohibit-password",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "UsePAM yes",  # PAM sets up sessions for the postgres user (become)
        # The lab dir may sit under a world-writable parent (/tmp in tests); the
        # key files themselves are 0600 and the hosts listen on lab addresses only.
        "StrictModes no",
        "UseDNS no",
        "MaxStartups 100:30:200",
        "MaxSessions 50",
        "AcceptEnv LANG LC_*",
        "Subsystem sftp /usr/lib/openssh/sftp-server",
        "",
    ])


def boot_script(lab: paths.LabPaths, spec: HostSpec) -> str:
    """Shell run in the host's private mount namespace before exec'ing sshd."""
    disk = lab.host_dir(spec.instance_id)
    q = shlex.quote
    return "\n".join([
        "set -e",
        # This mount namespace started as a copy of the machine's, with a bind
        # mount of every network namespace then in /run/netns: each would keep its
        # namespace, and its veth on the zone bridge, alive after `ip netns delete`
        # for as long as this host runs. A stopped and started neighbour then found
        # its port name taken ("File exists"; 13 s to boot instead of 0.05 s).
        "umount --recursive --lazy /run/netns 2>/dev/null || true",
        "mount -t tmpfs -o mode=0755,size=64m drkit-run /run",
        "mkdir -p /run/sshd /run/postgresql",
        f"if id {DB_USER} >/dev/null 2>&1; then chown {DB_USER}: /run/postgresql; "
        "chmod 2775 /run/postgresql; fi",
        f"mount --bind {q(str(disk / 'postgresql'))} /var/lib/postgresql",
        f"mount --bind {q(str(disk / 'srv'))} /srv",
        # /mnt gets its own tmpfs so /mnt/regional exists without touching the machine.
        "mount -t tmpfs -o mode=0755,size=1m drkit-mnt /mnt",
        # The host's root gets a plain shell rc, not this machine's (which may run
        # slow initialisers such as `pyenv init` on every ssh command).
        f"if [ -f /root/.bashrc ]; then mount --bind {q(str(disk / 'root.bashrc'))} "
        "/root/.bashrc; fi",
        "mkdir /mnt/regional",
        f"mount --bind {q(str(lab.region_dir(spec.region)))} /mnt/regional",
        f"exec {SSHD} -D -f {q(str(disk / 'sshd_config'))} -E {q(str(disk / 'sshd.log'))}",
    ])


# -- lifecycle ------------------------------------------------------------------------


def create_host(lab: paths.LabPaths, spec: HostSpec, *, port_up: bool = True,
                start_ssh: bool = True) -> None:
    """Boot the host: namespace, veth on its zone bridge, resolv.conf, disk, sshd.

    The zone's bridge and the root route to the VPC must exist already.
    """
    prepare_disk(lab, spec)
    try:
        netns.create_ns(spec.ns)
        netns.write_resolv_conf(spec.ns, paths.GATEWAY_ADDR)
        netns.attach_host(spec.ns, paths.host_port_name(spec.instance_id), spec.zone,
                          spec.address, spec.prefix, spec.gateway, up=port_up)
        if start_ssh:
            start_sshd(lab, spec)
    except BaseException:
        with contextlib.suppress(LabError):
            netns.delete_ns(spec.ns)
        raise


def start_sshd(lab: paths.LabPaths, spec: HostSpec) -> None:
    """Start sshd in the host (its own mount namespace); do not wait for it."""
    disk = lab.host_dir(spec.instance_id)
    (disk / "sshd_config").write_text(sshd_config(lab, spec))
    argv = ["ip", "netns", "exec", spec.ns, "unshare", "-m", "--propagation", "private",
            "sh", "-c", boot_script(lab, spec)]
    start(f"sshd {spec.instance_id}", argv, pid_file=disk / "boot.pid",
          log_file=disk / "boot.log")


def sshd_running(lab: paths.LabPaths, instance_id: str) -> bool:
    """True if the sshd this lab started for the host still runs."""
    record = read_pid_file(lab.host_dir(instance_id) / "boot.pid")
    if record is None:
        return False
    if record.matches():
        return True
    from drkit.lab.processes import reap

    reap(record.pid)
    return False


def ssh_answers(spec: HostSpec, timeout: float = 0.3) -> bool:
    """True if the host's sshd accepts a TCP connection from the root namespace."""
    return port_open(spec.address, SSH_PORT, timeout=timeout)


def wait_ssh(spec: HostSpec, timeout: float = 10.0) -> float:
    return wait_for_port(spec.address, SSH_PORT, timeout=timeout)


def kill_host_processes(instance_id: str) -> int:
    """Kill everything running on the host (a crash); the namespace stays."""
    return netns.kill_ns_processes(paths.host_ns(instance_id))


def stop_host(lab: paths.LabPaths, instance_id: str, *, delete_disk: bool) -> None:
    """Take the host down: processes, namespace, veth, /etc/netns entry; the disk
    too when the instance no longer exists."""
    netns.delete_ns(paths.host_ns(instance_id))
    if delete_disk:
        shutil.rmtree(lab.host_dir(instance_id), ignore_errors=True)


def hosted_instances() -> list[str]:
    """Instance ids that have a host namespace right now."""
    return [ns[len(paths.HOST_NS_PREFIX):] for ns in netns.list_namespaces(paths.HOST_NS_PREFIX)]
