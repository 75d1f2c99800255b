"""`molecule test` for every Ansible role that has a molecule/default scenario.

Each scenario builds a real, minimal setup on this machine (PostgreSQL clusters in
temp dirs on 127.0.0.1, a moto server on a loopback port), converges the role,
runs it again to prove idempotence, verifies the outcome and tears everything
down. HOME and ANSIBLE_HOME point into the test's tmp dir, so nothing lands in
the user's home. Missing prerequisites fail the test with the reason: nothing
is skipped silently.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ROLES = REPO / "playbooks" / "roles"
BASE_CONFIG = REPO / "playbooks" / "molecule-base.yml"
PG_BIN = Path("/usr/lib/postgresql/15/bin")
TIMEOUT_S = 900


def _roles() -> list[str]:
    return sorted(p.name for p in ROLES.iterdir() if (p / "tasks" / "main.yml").is_file())


def _scenario_roles() -> list[str]:
    return [r for r in _roles()
            if (ROLES / r / "molecule" / "default" / "molecule.yml").is_file()]


def test_every_role_has_a_molecule_scenario() -> None:
    missing = [r for r in _roles() if r not in _scenario_roles()]
    assert not missing, f"roles without molecule/default/molecule.yml: {missing}"


def _prerequisites() -> list[str]:
    problems = []
    if shutil.which("molecule") is None:
        problems.append("molecule is not on PATH (pip install molecule)")
    if shutil.which("ansible-playbook") is None:
        problems.append("ansible-playbook is not on PATH")
    if os.geteuid() != 0:
        problems.append("the scenarios run PostgreSQL through runuser: run as root")
    if not (PG_BIN / "pg_ctl").is_file():
        problems.append(f"PostgreSQL 15 binaries missing in {PG_BIN}")
    if not BASE_CONFIG.is_file():
        problems.append(f"shared molecule config missing: {BASE_CONFIG}")
    return problems


@pytest.mark.slow
@pytest.mark.parametrize("role", _scenario_roles())
def test_molecule_scenario_passes(role: str, tmp_path: Path) -> None:
    problems = _prerequisites()
    if problems:
        pytest.fail("cannot run molecule: " + "; ".join(problems))
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home), "ANSIBLE_HOME": str(tmp_path / "ansible"),
           "ANSIBLE_FORCE_COLOR": "0", "NO_COLOR": "1", "PY_COLORS": "0"}
    log = tmp_path / "molecule.log"
    with log.open("w") as out:
        proc = subprocess.run(
            ["molecule", "-c", os.path.relpath(BASE_CONFIG, ROLES / role), "test"],
            cwd=ROLES / role, env=env, stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, timeout=TIMEOUT_S, check=False)
    tail = "\n".join(log.read_text(errors="replace").splitlines()[-60:])
    assert proc.returncode == 0, (
        f"molecule test failed for {role} (rc {proc.returncode}); log {log}:\n{tail}")
