"""The Terraform CLI configuration drkit writes for itself.

drkit never relies on the operator's ~/.terraformrc: a bastion in a failed region
may have no route to the Terraform registry, so providers come from a local
filesystem mirror when one exists (DESIGN.md, "Facts measured on these machines").
The generated file is pointed at with TF_CLI_CONFIG_FILE.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from drkit.errors import ConfigError

MIRROR_ENV = "DRKIT_TF_MIRROR"
REGISTRY_HOST = "registry.terraform.io"

#: Where a provider mirror is looked for, in order, after an explicit path.
MIRROR_CANDIDATES: tuple[str, ...] = (
    "/opt/tf-plugins",
    "~/.terraform.d/plugins",
    "/usr/share/terraform/plugins",
    "/usr/local/share/terraform/plugins",
)


def find_provider_mirror(explicit: str | None = None) -> Path | None:
    """The first plugins folder that holds a ``registry.terraform.io`` tree, or None.

    An explicit path (argument, else ``DRKIT_TF_MIRROR``) is taken as given when it
    holds such a tree; otherwise the well-known locations are searched.
    """
    candidates = [c for c in (explicit, os.environ.get(MIRROR_ENV)) if c]
    candidates += list(MIRROR_CANDIDATES)
    for candidate in candidates:
        path = Path(candidate).expanduser()
        if (path / REGISTRY_HOST).is_dir():
            return path.resolve()
    return None


def _hcl_string(value: str | Path) -> str:
    # JSON string escaping is valid HCL string escaping for paths.
    return json.dumps(str(value))


def render_cli_config(mirror: Path | None, plugin_cache: Path | None) -> str:
    """The text of a CLI config file (HCL).

    With a mirror: providers from registry.terraform.io come from the mirror only,
    any other registry directly. Without: the registry, as Terraform's default.
    ``plugin_cache_dir`` makes every data dir link to one unpacked provider rather
    than copying ~600 MB per run; lock files are not committed (.gitignore), so
    the cache must be allowed to populate without one.
    """
    lines = ["# Written by drkit (drkit.drivers.tfconfig); regenerated on every run."]
    if plugin_cache is not None:
        lines += [
            f"plugin_cache_dir = {_hcl_string(plugin_cache)}",
            "plugin_cache_may_break_dependency_lock_file = true",
        ]
    lines.append("provider_installation {")
    if mirror is not None:
        lines += [
            "  filesystem_mirror {",
            f"    path    = {_hcl_string(mirror)}",
            f'    include = ["{REGISTRY_HOST}/*/*"]',
            "  }",
            "  direct {",
            f'    exclude = ["{REGISTRY_HOST}/*/*"]',
            "  }",
        ]
    else:
        lines += ["  direct {}"]
    lines.append("}")
    return "\n".join(lines) + "\n"


def write_cli_config(
    path: Path, *, mirror: Path | None = None, plugin_cache: Path | None = None
) -> Path:
    """Write the CLI config to ``path`` (creating the plugin cache dir) and return it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if plugin_cache is not None:
        Path(plugin_cache).mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(render_cli_config(mirror, plugin_cache))
    os.replace(tmp, path)
    return path


def check_terraform(binary: str = "terraform") -> str:
    """The installed Terraform version (e.g. ``"1.11.4"``).

    Raises ConfigError naming the fix when the binary is missing or unusable.
    """
    hint = ("install Terraform >= 1.9 (https://developer.hashicorp.com/terraform/install) "
            "and put it on PATH, or run the project's setup command")
    found = shutil.which(binary)
    if found is None:
        raise ConfigError(f"terraform not found on PATH ({binary!r})", hint=hint)
    try:
        proc = subprocess.run(
            [found, "version", "-json"], capture_output=True, text=True, timeout=60,
            check=False,
        )
        version = json.loads(proc.stdout)["terraform_version"]
    except (OSError, subprocess.TimeoutExpired, ValueError, KeyError) as exc:
        raise ConfigError(f"{found} version -json failed: {exc}", hint=hint) from exc
    return str(version)
