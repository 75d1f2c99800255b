"""No secret the estate holds is written by drkit anywhere it keeps its own files.

Runs after every other lab test (the file name sorts after them and the estate
tests run last), so the site and reset playbooks, every runbook's lab runs,
their ansible-runner artifacts, terraform logs, reports, notifications and lab
logs are all on disk. Every value in every region's Secrets Manager (the
database passwords, the app's secret) and the lab's TLS private keys are looked
for, as bytes, in all of them. Where a secret legitimately lives (a host's own
disk: the passfile, the app's configuration; the lab's key files) is not
drkit's output and is not scanned.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from drkit.lab import control_plane

pytestmark = [pytest.mark.lab, pytest.mark.slow]

PROJECT = Path(__file__).resolve().parents[2]
#: What drkit writes in a lab directory for itself (not the hosts' disks).
LAB_OUTPUTS = ("ansible", "terraform", "logs", "run", "canary")
MIN_SECRET_LEN = 8  # shorter strings would match by accident (and are not secrets)


def _secret_values(settings: dict) -> dict[str, bytes]:
    """Every secret string in every region's Secrets Manager, and each JSON field of it."""
    found: dict[str, bytes] = {}
    for region, conf in settings["regions"].items():
        sm = control_plane.client("secretsmanager", conf["cloud_region"])
        for page in sm.get_paginator("list_secrets").paginate():
            for entry in page["SecretList"]:
                value = sm.get_secret_value(SecretId=entry["ARN"])["SecretString"]
                try:
                    fields = json.loads(value)
                except ValueError:
                    fields = None
                if isinstance(fields, dict):
                    for key, field in fields.items():
                        if "password" in key or "secret" in key or "key" in key:
                            found[f"{entry['Name']}.{key} ({region})"] = str(field).encode()
                else:
                    found[f"{entry['Name']} ({region})"] = value.encode()
    return {k: v for k, v in found.items() if len(v) >= MIN_SECRET_LEN}


def _files(roots: list[Path]):
    for root in roots:
        if root.is_file():
            yield root
        elif root.is_dir():
            yield from (p for p in root.rglob("*") if p.is_file() and not p.is_symlink())


def test_no_secret_appears_in_any_file_drkit_wrote(lab_site):
    from drkit.env import load_environment
    from drkit.project import find_project

    settings = load_environment(find_project(PROJECT)).settings
    secrets = _secret_values(settings)
    assert len(secrets) >= 2, f"expected the estate's secrets, found {sorted(secrets)}"
    tls = lab_site.paths.tls_dir
    for key_file in ("ca.key", "server.key"):
        # The base64 of the private scalar (PKCS#8 P-256 keys share a 48-char prefix).
        body = "".join((tls / key_file).read_text().splitlines()[1:-1])
        secrets[f"lab TLS {key_file}"] = body[48:100].encode()

    roots = [PROJECT / ".drkit" / "runs", PROJECT / ".drkit" / "notifications.log",
             *(lab_site.paths.root / name for name in LAB_OUTPUTS),
             *lab_site.paths.root.glob("*.json")]
    scanned, hits = 0, []
    for path in _files(roots):
        data = path.read_bytes()
        scanned += 1
        hits += [f"{path}: {name}" for name, value in secrets.items() if value in data]
    assert scanned > 50, f"only {scanned} files scanned under {roots}: did the runs write?"
    assert not hits, "secrets written to disk:\n" + "\n".join(hits)
