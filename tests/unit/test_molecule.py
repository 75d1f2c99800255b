"""`molecule test` for every Ansible role that has a molecule/default scenario.

Each scenario builds a real, minimal setup on this machine (PostgreSQL clusters in
temp dirs on 127.0.0.1, a moto server on a loopback port), converges the role,
runs it again to prove idempotence, verifies the outcome and tears everything
down. HOME and ANSIBLE_HOME point into a tmp dir of the role's own, so nothing
lands in the user's home. Missing prerequisites fail the test with the reason:
nothing is skipped silently.

Ansible runs with Mitogen's strategy, as drkit's own playbooks do
(DRKIT_ANSIBLE_MITOGEN=0 turns it off). The first scenario test starts every
selected scenario in a pool of WORKERS and each test then waits for its own
role's result; they can run side by side because each has its own root and
loopback ports (test_scenarios_use_their_own_roots_and_ports).
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from drkit.drivers.ansible import strategy_envvars

REPO = Path(__file__).resolve().parents[2]
ROLES = REPO / "playbooks" / "roles"
BASE_CONFIG = REPO / "playbooks" / "molecule-base.yml"
PG_BIN = Path("/usr/lib/postgresql/15/bin")
TIMEOUT_S = 900
#: Scenarios running at once. One scenario alone keeps about one core busy
#: (ansible-playbook start-up, a fork per task, Mitogen shipping its modules), so
#: two cores run at most two; the third fills their waits (PostgreSQL, moto
#: start-up). More would only queue for the CPU.
WORKERS = 3


def _roles() -> list[str]:
    return sorted(p.name for p in ROLES.iterdir() if (p / "tasks" / "main.yml").is_file())


def _scenario_roles() -> list[str]:
    return [r for r in _roles()
            if (ROLES / r / "molecule" / "default" / "molecule.yml").is_file()]


def test_every_role_has_a_molecule_scenario() -> None:
    missing = [r for r in _roles() if r not in _scenario_roles()]
    assert not missing, f"roles without molecule/default/molecule.yml: {missing}"


def _test_sequence(role: str) -> list[str]:
    own = yaml.safe_load((ROLES / role / "molecule" / "default" / "molecule.yml").read_text())
    sequence = (own.get("scenario") or {}).get("test_sequence")
    return sequence or yaml.safe_load(BASE_CONFIG.read_text())["scenario"]["test_sequence"]


def test_scenarios_converge_twice_verify_and_destroy() -> None:
    """What a scenario's sequence may not lose to save time: create, a converge, a
    second converge that must change nothing (idempotence), a verify after both,
    and a destroy last (molecule runs it even when an action fails)."""
    wrong = {}
    for role in _scenario_roles():
        sequence = _test_sequence(role)
        steps = [s for s in sequence if s in ("create", "converge", "idempotence", "verify")]
        if steps != ["create", "converge", "idempotence", "verify"] or sequence[-1] != "destroy":
            wrong[role] = sequence
    assert not wrong, ("sequences without create, converge, idempotence, verify in that order "
                       f"and destroy last: {wrong}")


# What a scenario claims for itself: its temporary root and the loopback ports its
# clusters, moto and resolver listen on ("postgresql_common_port: 25611",
# "http://127.0.0.1:25657"). The shared playbooks in pg_fence/molecule/shared
# take all of these from the scenario's variables.
_ROOT = re.compile(r"^\s*molecule_root:\s*(\S+)", re.MULTILINE)
_PORT = re.compile(r"(?:\b\w*port:\s*\"?|127\.0\.0\.1:)(\d{4,5})\b")


def _scenario_text(role: str) -> str:
    return "\n".join(p.read_text() for p in sorted((ROLES / role / "molecule").rglob("*.yml")))


def test_scenarios_use_their_own_roots_and_ports() -> None:
    """Concurrent scenarios must not share a root or a port (one would stop,
    delete or talk to another's cluster)."""
    owners: dict[str, set[str]] = {}
    for role in _scenario_roles():
        text = _scenario_text(role)
        roots = set(_ROOT.findall(text))
        assert roots, f"{role}: no molecule_root in its scenario"
        for claim in roots | {f"port {p}" for p in _PORT.findall(text)}:
            owners.setdefault(claim, set()).add(role)
    shared = {claim: sorted(roles) for claim, roles in owners.items() if len(roles) > 1}
    assert not shared, f"scenarios that would collide when run concurrently: {shared}"


def _ephemeral_ports() -> range:
    low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
    return range(int(low), int(high) + 1)


def test_scenario_ports_are_outside_the_ephemeral_range() -> None:
    """A listener cannot bind an ephemeral port that a client socket (Ansible,
    moto's HTTP, psycopg), open or in TIME_WAIT, holds as its source port:
    EADDRINUSE even with SO_REUSEADDR, so a cluster or a helper would fail to
    start now and then."""
    ephemeral = _ephemeral_ports()
    inside = {role: sorted({int(p) for p in _PORT.findall(_scenario_text(role))
                            if int(p) in ephemeral})
              for role in _scenario_roles()}
    inside = {role: ports for role, ports in inside.items() if ports}
    assert not inside, (f"ports inside the ephemeral range {ephemeral.start}-{ephemeral.stop - 1}: "
                        f"{inside}; use ports below it")


def _ansible_playbook() -> str | None:
    """The ansible-playbook beside the Python running the tests (the one with
    drkit and Mitogen), else the first on PATH."""
    beside = Path(sys.executable).with_name("ansible-playbook")
    return str(beside) if beside.is_file() else shutil.which("ansible-playbook")


def _prerequisites() -> list[str]:
    problems = []
    if importlib.util.find_spec("molecule") is None:
        problems.append(f"molecule is not installed for {sys.executable} (pip install molecule)")
    if _ansible_playbook() is None:
        problems.append("ansible-playbook is not on PATH")
    if os.geteuid() != 0:
        problems.append("the scenarios run PostgreSQL through runuser: run as root")
    if not (PG_BIN / "pg_ctl").is_file():
        problems.append(f"PostgreSQL 15 binaries missing in {PG_BIN}")
    if not BASE_CONFIG.is_file():
        problems.append(f"shared molecule config missing: {BASE_CONFIG}")
    return problems


#: Where ansible reports a failed task ("fatal: [instance]: FAILED! => ...",
#: "failed: [instance] (item=...)").
_FAILURE = re.compile(r"^(fatal|failed): \[")


@dataclass(frozen=True)
class ScenarioResult:
    role: str
    returncode: int | None  # None: killed after TIMEOUT_S
    seconds: float
    log: Path

    def tail(self, lines: int = 60) -> str:
        """The log's failures (each task that failed, with its message) and then
        its last lines: the recap at the end alone does not say what failed."""
        text = self.log.read_text(errors="replace").splitlines()
        failures = [i for i, line in enumerate(text) if _FAILURE.match(line)]
        shown: list[str] = []
        for i in failures[:5]:
            start = next((j for j in range(i, -1, -1) if text[j].startswith("TASK [")), i)
            shown += [*text[start:i + 20], "..."]
        return "\n".join(shown + text[-lines:])


def _answer_version_once(bindir: Path) -> None:
    """Puts an ansible-playbook in bindir that answers ``--version`` from one real
    run and hands every other call to the real one. molecule runs
    ``ansible-playbook --version`` before every action only to see that it is
    installed (molecule/provisioner/ansible_playbook.py, _validate_backend): ~0.3 s
    of CPU each time, six or seven times a scenario."""
    real = _ansible_playbook()
    assert real is not None
    version = bindir / "ansible-playbook.version"
    version.write_text(subprocess.run([real, "--version"], capture_output=True, text=True,
                                      check=True).stdout)
    shim = bindir / "ansible-playbook"
    shim.write_text(f'#!/bin/sh\n[ "$*" = --version ] && exec cat {shlex.quote(str(version))}\n'
                    f'exec {shlex.quote(real)} "$@"\n')
    shim.chmod(0o755)


def _run_scenario(role: str, workdir: Path, bindir: Path) -> ScenarioResult:
    home = workdir / "home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home), "ANSIBLE_HOME": str(workdir / "ansible"),
           "PATH": os.pathsep.join([str(bindir), os.environ.get("PATH", os.defpath)]),
           "ANSIBLE_FORCE_COLOR": "0", "NO_COLOR": "1", "PY_COLORS": "0",
           **strategy_envvars(os.environ)}
    log = workdir / "molecule.log"
    start = time.monotonic()
    # molecule with this Python, not a wrapper on PATH (pyenv's would put its own
    # bin directory before bindir).
    molecule = [sys.executable, "-m", "molecule", "-c", os.path.relpath(BASE_CONFIG, ROLES / role)]
    with log.open("w") as out:
        proc = subprocess.Popen([*molecule, "test"], cwd=ROLES / role, env=env,
                                stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            rc: int | None = proc.wait(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            rc = None
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            # The killed run never reached its destroy: what it built goes now.
            subprocess.run([*molecule, "destroy"], cwd=ROLES / role, env=env,
                           stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                           timeout=300, check=False)
    return ScenarioResult(role, rc, time.monotonic() - start, log)


@dataclass
class Scenarios:
    problems: list[str]
    futures: dict[str, Future[ScenarioResult]]

    def result(self, role: str) -> ScenarioResult:
        return self.futures[role].result()


@pytest.fixture(scope="session")
def molecule_scenarios(request: pytest.FixtureRequest,
                       tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenarios]:
    """Starts the scenarios of every selected test_molecule_scenario_passes (in
    test order) and hands out their results. At the end of the session, queued
    scenarios are cancelled (e.g. after -x) and running ones finish."""
    problems = _prerequisites()
    if problems:
        yield Scenarios(problems, {})
        return
    roles = [item.callspec.params["role"] for item in request.session.items
             if getattr(item, "function", None) is test_molecule_scenario_passes]
    bindir = tmp_path_factory.mktemp("molecule-bin")
    _answer_version_once(bindir)
    pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="molecule")
    try:
        yield Scenarios([], {
            role: pool.submit(_run_scenario, role, tmp_path_factory.mktemp(f"molecule-{role}"),
                              bindir)
            for role in dict.fromkeys(roles)})
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


@pytest.mark.slow
@pytest.mark.parametrize("role", _scenario_roles())
def test_molecule_scenario_passes(role: str, molecule_scenarios: Scenarios) -> None:
    if molecule_scenarios.problems:
        pytest.fail("cannot run molecule: " + "; ".join(molecule_scenarios.problems))
    result = molecule_scenarios.result(role)
    outcome = ("timed out" if result.returncode is None else f"rc {result.returncode}")
    assert result.returncode == 0, (
        f"molecule test failed for {role} ({outcome} after {result.seconds:.0f} s); "
        f"log {result.log}:\n{result.tail()}")
    print(f"{role}: molecule test passed in {result.seconds:.0f} s")
