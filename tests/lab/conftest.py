"""Lab fixtures shared by every lab integration test.

``lab_core`` is one lab per session (gateway, moto, DNS, reconciler; no
Terraform estate), in a temporary lab directory (DRKIT_LAB_DIR), torn down at
the end of the session even when tests fail. A test that needs the lab to be
absent (``test_lab_network``) may take it down; ``lab_core`` brings it back for
the next test that asks. Other lab tests can reuse ``lab_core`` and ``make_vpc``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from drkit.lab import control_plane, controller, netns, paths, reconciler
from tests.lab.runs import lab_db_nodes

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
        _keep_logs(lab)
        controller.down(PROJECT_ROOT)


def _keep_logs(lab: paths.LabPaths) -> None:
    """Copy the lab's logs (the control plane's requests and errors, the
    reconciler's, Terraform's) beside the session's lab directory, which `lab down`
    removes: <basetemp>/lab-logs, kept as pytest keeps its last temp dirs. A failure
    seen only under CI's load can then be read afterwards; the control plane's
    server errors, if any, are counted in a warning."""
    if not lab.log_dir.exists():
        return
    kept = lab.root.parent.parent / "lab-logs"
    shutil.copytree(lab.log_dir, kept, dirs_exist_ok=True)
    moto_log = kept / f"{control_plane.NAME}.log"
    if moto_log.exists():
        text = moto_log.read_text(errors="replace")
        # 503 is the lab's own API outage (lab.chaos api-outage), not an error.
        errors = text.count("Error on request") + len(re.findall(r'" 5(?!03)\d\d ', text))
        if errors:
            import warnings

            warnings.warn(f"the control plane answered {errors} request(s) with a server "
                          f"error; its log is kept in {moto_log}", stacklevel=1)


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


# -- the full estate -------------------------------------------------------------------
#
# ``lab_estate`` is the whole lab: core plus the Terraform estate (hosts from the
# Auto Scaling groups) and, once playbooks/site.yml exists, the site playbook
# (PostgreSQL, DNS records, the app). It lives in the same lab directory and the
# same namespaces as ``lab_core``, so the two can never be up at once: the estate
# replaces a core lab this session brought up (down, then a full up), and a test
# asking for ``lab_core`` while the estate is up simply uses it (it is a superset).
# Tests that take the lab down (test_lab_network) would cost a second full up, so
# every test that needs the estate is run after the others (see the hook below):
# one full up per session. ``_lab_session`` takes it down at the end, also when a
# test or the up itself failed.

#: How long to wait for another session's lab (other engineers share drk-*
#: namespaces on one machine) to go away before skipping the estate tests.
FOREIGN_LAB_WAIT_S = float(os.environ.get("DRKIT_TEST_FOREIGN_LAB_WAIT_S", "300"))

SITE_PLAYBOOK = PROJECT_ROOT / controller.SITE_PLAYBOOK


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run the tests that need the full estate last (stable otherwise), so tests
    that take the lab down or rebuild its core run before the one full up."""
    items.sort(key=lambda item: "lab_estate" in getattr(item, "fixturenames", ()))


def _ours_is_up(lab: paths.LabPaths) -> bool:
    """True if the running lab is this session's (its moto is the one we started)."""
    from drkit.lab import processes

    record = processes.read_pid_file(lab.pid_file(control_plane.NAME))
    return bool(record and record.matches())


def _wait_for_foreign_lab(lab: paths.LabPaths) -> None:
    """Another session's lab holds the namespaces: wait for it, never take it down."""
    deadline = time.monotonic() + FOREIGN_LAB_WAIT_S
    while netns.gateway_exists() and not _ours_is_up(lab):
        if time.monotonic() > deadline:
            pytest.skip(f"another lab (not this session's) has been up for more than "
                        f"{FOREIGN_LAB_WAIT_S:.0f} s ({paths.GATEWAY_NS} exists); "
                        "the estate tests need the machine's lab namespaces")
        time.sleep(2)


@dataclass
class Estate(Lab):
    """The running full lab, as tests use it."""

    up_result: dict

    @property
    def configured(self) -> bool:
        """True if the site playbook ran (PostgreSQL, DNS records, app)."""
        return "site playbook" in self.up_result.get("phases", {})

    def hosts(self, *, role: str | None = None, dr_region: str | None = None) -> list[dict]:
        """Running, hosted instances, optionally of one role and DrRegion."""
        return [r for r in self.view().values()
                if r["state"] == "running" and r["ns"]
                and (role is None or r["role"] == role)
                and (dr_region is None or r["dr_region"] == dr_region)]

    def host(self, *, role: str, dr_region: str, zone: str | None = None) -> dict:
        """The one running host of ``role`` in ``dr_region`` (and ``zone``). A
        region's db host is its first database node's (``us-east``, in its first
        db zone) unless ``zone`` names another: ``db_node`` takes a node key."""
        found = self.hosts(role=role, dr_region=dr_region)
        if zone is None and role == "db" and len(found) > 1:
            zone = next(n.zone for n in lab_db_nodes() if n.region == dr_region)
        if zone is not None:
            found = [r for r in found if r.get("zone") == zone]
        assert len(found) == 1, f"expected one {role} host in {dr_region} {zone or ''}, got {found}"
        return found[0]

    def db_node(self, key: str) -> dict:
        """The running host of database node ``key`` (``us-east-b``)."""
        node = next(n for n in lab_db_nodes() if n.key == key)
        return self.host(role="db", dr_region=node.region, zone=node.zone)

    def ssh(self, address: str, command: str, *, user: str = "root",
            timeout: float = 30) -> subprocess.CompletedProcess:
        """Run ``command`` on a lab host over ssh (the lab key), as ``user``."""
        from drkit.lab.hosts import ssh_argv

        return subprocess.run(ssh_argv(self.paths, address, command, user=user),
                              capture_output=True, text=True, timeout=timeout)

    def psql(self, address: str, sql: str, *, db: str = "postgres",
             timeout: float = 30) -> str:
        """Run ``sql`` with psql as the postgres user on a lab host; its output
        (unaligned, tuples only). Fails the test with psql's message on error."""
        import shlex

        # root logs in (the lab key); psql runs as postgres over the local socket.
        proc = self.ssh(address, f"cd /tmp && runuser -u postgres -- psql -h /run/postgresql "
                                 f"-XAtq -v ON_ERROR_STOP=1 -d {shlex.quote(db)} "
                                 f"-c {shlex.quote(sql)}", timeout=timeout)
        assert proc.returncode == 0, f"psql on {address} failed: {proc.stderr.strip()}"
        return proc.stdout.strip()


def require_site(estate: Estate) -> None:
    """Skip (saying why) a test that needs PostgreSQL while the site playbook is absent."""
    if not SITE_PLAYBOOK.exists():
        pytest.skip(f"{controller.SITE_PLAYBOOK} does not exist yet: the lab has hosts "
                    "but no PostgreSQL, DNS records or app")
    assert estate.configured, "site playbook exists but did not run during lab up"


@pytest.fixture(scope="session")
def lab_estate(_lab_session: paths.LabPaths) -> Estate:
    """The session's full lab (Terraform estate + site playbook), brought up once.

    Replaces a core lab this session left up; waits (never touches) while another
    session's lab is up. Torn down by ``_lab_session`` at the end of the session.
    """
    _wait_for_foreign_lab(_lab_session)
    if netns.gateway_exists():  # ours, without the estate (lab_core): replace it
        controller.down(PROJECT_ROOT)
    result = controller.up(PROJECT_ROOT, estate=True, configure=True)
    return Estate(_lab_session, PROJECT_ROOT, result)


@pytest.fixture
def lab_site(lab_estate: Estate) -> Estate:
    """The full lab, for tests that need what the site playbook configures
    (PostgreSQL primary and replicas, DNS records, the app); skipped, saying why,
    while playbooks/site.yml does not exist."""
    require_site(lab_estate)
    return lab_estate


@pytest.fixture(scope="session")
def lab_environment(lab_estate: Estate):
    """The lab's drkit environment (settings, boto3 clients through its endpoint), for
    tests that need the configured site; skipped like ``lab_site`` without it."""
    from drkit.env import load_environment
    from drkit.project import find_project

    require_site(lab_estate)
    return load_environment(find_project(PROJECT_ROOT))


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """Keep each phase's report on the item (``rep_setup``, ``rep_call``), so a
    fixture's teardown knows whether its test failed."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture(autouse=True)
def _estate_reset_after_a_failure(request: pytest.FixtureRequest) -> Iterator[None]:
    """After a lab test that used the estate and failed: ``lab.reset``, so the next
    test starts from the baseline (the primary in us-east and writable, replicas
    streaming, no scratch host, DNS and the app as configured) instead of failing
    on what the failed one left behind. Tests that pass leave the baseline
    themselves (their failback, their cleanup), and cost no reset."""
    yield
    failed = any(getattr(getattr(request.node, f"rep_{when}", None), "failed", False)
                 for when in ("setup", "call"))
    if not failed or "lab_estate" not in request.fixturenames \
            or not netns.gateway_exists() or not SITE_PLAYBOOK.exists():
        return
    import warnings

    try:
        result = controller.reset(PROJECT_ROOT)
    except Exception as exc:  # the next test reports what is left
        warnings.warn(f"lab.reset after the failed {request.node.name} failed: {exc}",
                      stacklevel=1)
    else:
        warnings.warn(f"lab.reset after the failed {request.node.name}: "
                      f"{result['total_s']:.0f} s", stacklevel=1)


@pytest.fixture(autouse=True)
def _stale_run_lock_removed() -> Iterator[None]:
    """After each lab test: a run lock whose process is gone (a test failed while a
    run it killed held the lab environment's lock) is removed with a warning, as
    ``--break-lock`` would, so one failure does not fail every lab test after it."""
    import json
    import socket
    import warnings

    from drkit.lock import pid_alive

    yield
    path = PROJECT_ROOT / ".drkit" / "locks" / "lab.lock"
    try:
        holder = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return
    if holder.get("host") == socket.gethostname() and not pid_alive(int(holder.get("pid", 0))):
        path.unlink(missing_ok=True)
        warnings.warn(f"removed the stale lab lock of run {holder.get('run_id')} "
                      f"(pid {holder.get('pid')} is gone)", stacklevel=1)
