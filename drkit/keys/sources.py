"""What the estate's keys are, where each lives and who uses it, from the
environment's settings (``drkit.keys``), and reading their current values.

    keys:
      passphrase_secret: drkit/lab/REGION/keys-backup-passphrase
      items:
        - {name: db-credentials, secret: drkit/lab/REGION/db-credentials,
           consumers: [...]}
        - {name: ssh, file: "${DRKIT_LAB_DIR:-.drkit/lab}/ssh/id_ed25519", consumers: [...]}

``REGION`` in a secret id is each region's logical name (every region keeps a
copy). A file path may use ``${VAR}`` and ``${VAR:-default}``; a relative path is
the project's.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_VAR = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}")
NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")


class KeySourceError(Exception):
    """A key could not be read where the settings say it lives."""


@dataclass(frozen=True)
class KeySource:
    """One key: its name, where it lives (a secret id or a file) and its consumers."""

    name: str
    secret: str | None
    file: str | None
    consumers: tuple[str, ...]

    @property
    def where(self) -> str:
        return f"Secrets Manager {self.secret}" if self.secret else f"file {self.file}"

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "where": self.where, "consumers": list(self.consumers)}


def expand(path: str, root: Path) -> Path:
    """``path`` with ``${VAR}``/``${VAR:-default}`` expanded, relative to ``root``."""
    text = _VAR.sub(lambda m: os.environ.get(m["name"]) or (m["default"] or ""), path)
    p = Path(text)
    return p if p.is_absolute() else root / p


def key_sources(settings: dict[str, Any]) -> list[KeySource]:
    """The keys the settings list (validated by drkit.env)."""
    items = (settings.get("keys") or {}).get("items") or []
    return [KeySource(i["name"], i.get("secret"), i.get("file"), tuple(i.get("consumers", [])))
            for i in items]


def read_secret(env: Any, secret_template: str) -> tuple[str, str]:
    """(value, region read from) of a per-region secret, trying the primary's copy
    first; KeySourceError naming every region tried when none answers."""
    tried = []
    for region in env.regions_primary_first():
        secret_id = secret_template.replace("REGION", region)
        cloud = env.settings["regions"][region]["cloud_region"]
        try:
            value = env.client("secretsmanager", cloud).get_secret_value(SecretId=secret_id)
            return value["SecretString"], region
        except Exception as exc:  # an unreachable region: try the next copy
            tried.append(f"{region} ({type(exc).__name__})")
    raise KeySourceError(f"{secret_template}: no region answered: {', '.join(tried)}")


def read_keys(env: Any, project_root: Path) -> tuple[dict[str, bytes], dict[str, str]]:
    """Every key's current value, and where each was read ({name: where})."""
    values, read_from = {}, {}
    for source in key_sources(env.settings):
        if source.secret:
            value, region = read_secret(env, source.secret)
            values[source.name] = value.encode()
            read_from[source.name] = f"{source.secret.replace('REGION', region)} ({region})"
        else:
            path = expand(source.file or "", project_root)
            try:
                values[source.name] = path.read_bytes()
            except OSError as exc:
                raise KeySourceError(f"key {source.name}: cannot read {path}: "
                                     f"{exc.strerror}") from None
            read_from[source.name] = str(path)
    return values, read_from
