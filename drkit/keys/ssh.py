"""Rotating the SSH key Ansible uses to reach the estate (RB-DR-005, ``rotation: ssh``).

The key lives in one file (``drkit.keys.items[].file``; Ansible's
``ansible_ssh_private_key_file`` names the same path), so moving Ansible to the
new key is replacing that file. In order, each step idempotent:

1. ``prepare``: a new pair is made beside it (``<key>.next``, 0600);
2. the new public key is added to every host (playbook, with the old key);
3. ``switch``: the old pair moves to ``<key>.revoked`` and the new one into place
   (renames, atomic); from now on every ssh and Ansible run uses the new key;
4. the old public key is removed from every host (playbook, with the new key);
5. ``forget``: once every host has refused the old key, its file is deleted.

Public keys are not secret and are returned; private keys never leave their files.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

NEXT, REVOKED = ".next", ".revoked"


class SshKeyError(Exception):
    """The key files are not in a state a rotation can go on from; says which."""


def _pub(path: Path) -> Path:
    return path.with_name(path.name + ".pub")


def _with(path: Path, suffix: str) -> Path:
    return path.with_name(path.name + suffix)


def public_key(path: Path) -> str:
    """``type base64`` of the key's public half (comment dropped)."""
    return " ".join(_pub(path).read_text().split()[:2])


def prepare(path: Path, comment: str) -> dict[str, str]:
    """The new pair at ``<key>.next`` (made once), and both public keys."""
    new, revoked = _with(path, NEXT), _with(path, REVOKED)
    if revoked.exists() and not new.exists():  # switched already: a resumed run
        return {"old": public_key(revoked), "new": public_key(path)}
    if not new.exists():
        tmp = _with(path, ".making")
        for stale in (tmp, _pub(tmp)):
            stale.unlink(missing_ok=True)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment,
                        "-f", str(tmp)], check=True, capture_output=True)
        os.replace(_pub(tmp), _pub(new))
        os.replace(tmp, new)
    return {"old": public_key(path), "new": public_key(new)}


def switch(path: Path) -> dict[str, str]:
    """The old pair to ``<key>.revoked``, the new one into place. Done once: a
    resumed run finds it done."""
    new, revoked = _with(path, NEXT), _with(path, REVOKED)
    if new.exists():
        if revoked.exists():
            raise SshKeyError(f"{revoked} is left from an earlier rotation; check it was "
                              "finished and delete it")
        os.replace(_pub(path), _pub(revoked))
        os.replace(path, revoked)
        os.replace(_pub(new), _pub(path))
        os.replace(new, path)
    elif not revoked.exists():
        raise SshKeyError(f"neither {new} nor {revoked} exists: nothing to switch")
    return {"old": public_key(revoked), "new": public_key(path)}


def revoked_key(path: Path) -> Path:
    return _with(path, REVOKED)


def forget(path: Path) -> bool:
    """Delete the revoked pair; whether there was one."""
    revoked = _with(path, REVOKED)
    found = revoked.exists()
    revoked.unlink(missing_ok=True)
    _pub(revoked).unlink(missing_ok=True)
    return found


def try_login(key: Path, address: str, *, user: str = "root", port: int = 22) -> str:
    """``accepted``, ``refused`` (the host denied the key) or ``error: ...``: a fresh
    connection (no control master), this key only."""
    proc = subprocess.run(
        ["ssh", "-i", str(key), "-p", str(port), "-o", "BatchMode=yes",
         "-o", "IdentitiesOnly=yes", "-o", "ControlMaster=no", "-o", "ControlPath=none",
         "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
         "-o", "ConnectTimeout=5", "-o", "LogLevel=ERROR", f"{user}@{address}", "true"],
        capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    if proc.returncode == 0:
        return "accepted"
    if "Permission denied" in proc.stderr:
        return "refused"
    return "error: " + (proc.stderr.strip().splitlines() or [f"rc {proc.returncode}"])[-1][:160]
