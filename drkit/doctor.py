"""Check that this machine has what drkit and its lab need, with the fix for each gap.

``python -m drkit.doctor`` (run by scripts/setup) exits 1 when something is missing.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from drkit.drivers.tfconfig import check_terraform, find_provider_mirror
from drkit.errors import DrkitError

COLLECTIONS = ("amazon.aws", "community.aws", "community.postgresql", "community.general",
               "ansible.posix")
PG_BIN = Path("/usr/lib/postgresql/15/bin")


def _terraform() -> str:
    return check_terraform()


def _mirror() -> str:
    mirror = find_provider_mirror()
    if mirror is None:
        raise DrkitError(
            "no Terraform provider mirror found (the registry may be unreachable)",
            hint="put hashicorp/aws under /opt/tf-plugins/registry.terraform.io/... "
                 "or set DRKIT_TF_MIRROR; without one, terraform init uses the registry")
    return str(mirror)


def _collections() -> str:
    out = subprocess.run(["ansible-galaxy", "collection", "list", "--format", "json"],
                         capture_output=True, text=True, check=False)
    missing = [c for c in COLLECTIONS if f'"{c}"' not in out.stdout]
    if missing:
        raise DrkitError(f"Ansible collections missing: {', '.join(missing)}",
                         hint="pip install 'ansible>=12,<13' (it carries the collections)")
    return ", ".join(COLLECTIONS)


def _binary(name: str, path: str | None = None, package: str = "") -> Callable[[], str]:
    def check() -> str:
        found = path if path and Path(path).exists() else shutil.which(name)
        if not found:
            raise DrkitError(f"{name} not found", hint=f"apt-get install {package or name}")
        return found
    return check


def _python(module: str, package: str) -> Callable[[], str]:
    def check() -> str:
        if importlib.util.find_spec(module) is None:
            raise DrkitError(f"Python module {module} missing", hint=f"pip install {package}")
        return module
    return check


CHECKS: list[tuple[str, Callable[[], str], bool]] = [
    ("terraform", _terraform, True),
    ("terraform provider mirror", _mirror, False),
    ("ansible collections", _collections, True),
    ("ansible-runner", _python("ansible_runner", "ansible-runner"), True),
    ("boto3", _python("boto3", "boto3"), True),
    ("moto server (lab)", _python("moto.server", "'moto[server]'"), True),
    ("PostgreSQL 15 (lab)", _binary("pg_ctl", str(PG_BIN / "pg_ctl"), "postgresql-15"), True),
    ("pgBackRest", _binary("pgbackrest", "/usr/bin/pgbackrest", "pgbackrest"), True),
    ("sshd (lab)", _binary("sshd", "/usr/sbin/sshd", "openssh-server"), True),
    ("ip (lab)", _binary("ip", None, "iproute2"), True),
    ("nft (lab security groups)", _binary("nft", "/usr/sbin/nft", "nftables"), True),
    ("dig (lab)", _binary("dig", None, "dnsutils"), False),
]


def main() -> int:
    failed = 0
    for name, check, required in CHECKS:
        try:
            print(f"ok    {name}: {check()}")
        except DrkitError as exc:
            failed += required
            print(f"{'FAIL' if required else 'warn'}  {name}: {exc}")
    if failed:
        print(f"doctor: {failed} required piece(s) missing; fix them and re-run scripts/setup")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
