"""Lab fixtures shared by every lab integration test.

``lab_core`` is one lab per session (gateway, moto, DNS, reconciler; no
Terraform estate), in a temporary lab directory (DRKIT_LAB_DIR), torn down at
the end of the session even when tests fail. A test that needs the lab to be
absent (``test_lab_network``) may take it down; ``lab_core`` brings it back for
the next test that asks. Other lab tests can reuse ``lab_core`` and ``make_vpc``.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from drkit.lab import control_plane, controller, netns, paths, reconciler

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def lab_prerequisites() -> str | None:
    """Why lab tests cannot run here, or None."""
    if os.geteuid() != 0:
        return "lab tests need root (network namespaces)"
    for tool in ("ip", "unshare", "ssh", "ssh-keygen"):
        if shutil.which(tool) is None:
            return f"lab tests need {tool}"
    if not Path("/usr/sbin/sshd").exists():
        return "lab tests need openssh-server (/usr/sbin/sshd)"
    return None


@pytest.fixture(scope="session")
def lab_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A private lab directory for the session, exported as DRKIT_LAB_DIR."""
    reason = lab_prerequisites()
    if reason:
        pytest.skip(reason)
    root = tmp_path_factory.mktemp("lab") / "lab"
    saved = os.environ.get(paths.LAB_DIR_ENV)
    os.environ[paths.LAB_DIR_ENV] = str(root)
    yield root
    if saved is None:
        os.environ.pop(paths.LAB_DIR_ENV, None)
    else:
        os.environ[paths.LAB_DIR_ENV] = saved


@dataclass
class Lab:
    """A running lab core, as tests use it."""

    paths: paths.LabPaths
    project_root: Path

    def view(self) -> dict[str, dict]:
        """The reconciler's rows by instance id."""
        return {r["instance_id"]: r for r in reconciler.read_view(self.paths)["instances"]}

    def wait_for(self, what: str, predicate: Callable[[], object],
                 timeout: float = 20.0) -> float:
        """Poll ``predicate`` until truthy; return the seconds it took."""
        t0 = time.monotonic()
        while not predicate():
            if time.monotonic() - t0 > timeout:
                log = self.paths.log_file("reconciler")
                tail = log.read_text()[-2000:] if log.exists() else ""
                raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{tail}")
            time.sleep(0.05)
        return time.monotonic() - t0


@pytest.fixture(scope="session")
def _lab_session(lab_dir: Path) -> Iterator[paths.LabPaths]:
    lab = paths.LabPaths(lab_dir)
    try:
        yield lab
    finally:
        controller.down(PROJECT_ROOT)


@pytest.fixture
def lab_core(_lab_session: paths.LabPaths) -> Lab:
    """The session's lab core, brought up if it is not up right now."""
    if not netns.gateway_exists():
        controller.up(PROJECT_ROOT, estate=False, configure=False)
    return Lab(_lab_session, PROJECT_ROOT)


#: Second octets of test VPCs, unique for the session (and for the moto server,
#: which lives as long as the session's lab).
_VPC_NUMBERS = iter(range(100, 250))


@pytest.fixture
def make_vpc(lab_core: Lab) -> Callable[..., dict]:
    """Create a VPC with one subnet per given zone through the control plane.

    Returns {"vpc_id", "subnets": {zone: subnet_id}, "ec2": client}. Every VPC gets
    a fresh /16 (10.100+) so tests never collide with the estate's 10.10-10.30.
    """
    def make(region: str, zones: list[str]) -> dict:
        second = next(_VPC_NUMBERS)
        ec2 = control_plane.client("ec2", region)
        cidr = f"10.{second}.0.0/16"
        vpc = ec2.create_vpc(CidrBlock=cidr)["Vpc"]["VpcId"]
        subnets = {}
        for n, zone in enumerate(zones, start=1):
            subnets[zone] = ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.{second}.{n}.0/24",
                                              AvailabilityZone=zone)["Subnet"]["SubnetId"]
        return {"vpc_id": vpc, "subnets": subnets, "ec2": ec2}

    return make
