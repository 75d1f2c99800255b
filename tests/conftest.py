"""Shared fixtures: an isolated drkit project per test (runbooks, inventory and
state in a temp dir), and a helper to run the real `drkit` command in it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures"


@dataclass
class Workspace:
    root: Path

    @property
    def runs(self) -> Path:
        return self.root / ".drkit" / "runs"

    def env(self, **extra: str) -> dict[str, str]:
        env = {**os.environ, "DRKIT_PROJECT": str(self.root),
               "DRKIT_STATE_DIR": str(self.root / ".drkit"), "DRKIT_ENV": "test",
               "PYTHONUNBUFFERED": "1"}
        env.pop("DRKIT_LAB_DIR", None)
        env.update(extra)
        return env

    def drkit(self, *args: str, timeout: float = 300, **popen: object
              ) -> subprocess.CompletedProcess[str]:
        """Run the real CLI (no terminal on stdin) and return its outcome."""
        return subprocess.run(
            [sys.executable, "-m", "drkit", *args], cwd=self.root, env=self.env(),
            capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
            **popen,
        )

    def popen(self, *args: str) -> subprocess.Popen[str]:
        """Start the real CLI in its own process group (so a test can kill it all)."""
        return subprocess.Popen(
            [sys.executable, "-m", "drkit", *args], cwd=self.root, env=self.env(),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )

    def only_run(self) -> Path:
        runs = sorted(self.runs.iterdir())
        assert len(runs) == 1, runs
        return runs[0]


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    """A throwaway project: tests/fixtures/engine runbooks, a local inventory
    named `test`, and copies of the demo's terraform module and playbook."""
    root = tmp_path / "project"
    (root / "runbooks").mkdir(parents=True)
    for rb in (FIXTURES / "engine").glob("RB-*.yml"):
        shutil.copy(rb, root / "runbooks" / rb.name)
    shutil.copytree(FIXTURES / "engine" / "inventory", root / "inventory" / "test")
    shutil.copytree(REPO / "examples" / "demo", root / "examples" / "demo",
                    ignore=shutil.ignore_patterns(".terraform*", "*.tfstate*"))
    shutil.copytree(FIXTURES / "engine" / "playbooks", root / "playbooks")
    return Workspace(root)
