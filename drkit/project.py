"""Where a drkit project lives: its runbooks, inventories and state directory.

A project is a directory holding ``runbooks/`` and ``inventory/``. Operators run
drkit from anywhere inside it (like git), or point DRKIT_PROJECT at it.
Run state (journals, locks, reports, the lab) goes to ``<project>/.drkit`` unless
DRKIT_STATE_DIR says otherwise.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from drkit.errors import ConfigError

_SOURCE_CHECKOUT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Project:
    root: Path
    state_dir: Path

    @property
    def runbooks_dir(self) -> Path:
        return self.root / "runbooks"

    @property
    def inventory_dir(self) -> Path:
        return self.root / "inventory"

    @property
    def runs_dir(self) -> Path:
        return self.state_dir / "runs"

    def path(self, relative: str | Path) -> Path:
        """A project-relative path made absolute (absolute paths pass through)."""
        p = Path(relative)
        return p if p.is_absolute() else self.root / p


def _is_project(path: Path) -> bool:
    return (path / "runbooks").is_dir() and (path / "inventory").is_dir()


def find_project(start: Path | None = None) -> Project:
    """Locate the project: DRKIT_PROJECT, else the nearest parent of ``start``
    (default: the working directory) holding runbooks/ and inventory/, else the
    source checkout drkit was installed from."""
    explicit = os.environ.get("DRKIT_PROJECT")
    if explicit:
        root = Path(explicit).resolve()
        if not _is_project(root):
            raise ConfigError(
                f"DRKIT_PROJECT={explicit} is not a drkit project (no runbooks/ and inventory/)",
                hint="point DRKIT_PROJECT at the directory holding runbooks/ and inventory/",
            )
    else:
        here = (start or Path.cwd()).resolve()
        candidates = [here, *here.parents, _SOURCE_CHECKOUT]
        root = next((c for c in candidates if _is_project(c)), None)
        if root is None:
            raise ConfigError(
                f"no drkit project found from {here}",
                hint="run drkit inside a project (a directory with runbooks/ and inventory/) "
                "or set DRKIT_PROJECT",
            )
    state = Path(os.environ.get("DRKIT_STATE_DIR") or root / ".drkit").resolve()
    return Project(root=root, state_dir=state)
