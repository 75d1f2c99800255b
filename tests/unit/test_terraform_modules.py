"""The Terraform code: formatted, valid, and the modules' own logic tests pass.

Every root (each module and each environment) must `terraform validate`; each
module with a tests/ folder must pass `terraform test` (mock providers, plan only:
no cloud). Providers come from the machine's filesystem mirror through drkit's own
CLI config, never from the registry. The lab environment's settings must agree
with its Terraform code (backend, regions).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from drkit.drivers.tfconfig import find_provider_mirror, write_cli_config
from drkit.env import validate_settings

REPO = Path(__file__).resolve().parents[2]
TERRAFORM = REPO / "terraform"
MODULES = sorted(p.parent for p in TERRAFORM.glob("modules/*/versions.tf"))
ENVS = sorted(p.parent for p in TERRAFORM.glob("envs/*/versions.tf"))
ROOTS = MODULES + ENVS

needs_terraform = pytest.mark.skipif(
    shutil.which("terraform") is None, reason="terraform is not on PATH"
)


def _id(path: Path) -> str:
    return str(path.relative_to(TERRAFORM))


@dataclass(frozen=True)
class TerraformRunner:
    """terraform with drkit's CLI config (mirror + shared plugin cache), one data
    dir per root under a temp dir, and no cloud credentials or endpoint: nothing
    here may talk to an API."""

    env: dict[str, str]
    work: Path

    def __call__(self, args: list[str], root: Path) -> subprocess.CompletedProcess[str]:
        env = {**self.env, "TF_DATA_DIR": str(self.work / _id(root).replace("/", "-"))}
        return subprocess.run(
            ["terraform", *args, "-no-color"],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )

    def init(self, root: Path) -> None:
        result = self(["init", "-backend=false", "-input=false"], root)
        assert result.returncode == 0, f"terraform init in {_id(root)}:\n{result.stderr}"


@pytest.fixture(scope="session")
def terraform(tmp_path_factory) -> TerraformRunner:
    work = tmp_path_factory.mktemp("terraform")
    cli_config = write_cli_config(
        work / "terraformrc", mirror=find_provider_mirror(), plugin_cache=work / "plugin-cache"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TF_"))}
    env.update(
        TF_CLI_CONFIG_FILE=str(cli_config),
        TF_IN_AUTOMATION="1",
        CHECKPOINT_DISABLE="1",
        AWS_EC2_METADATA_DISABLED="true",
    )
    return TerraformRunner(env, work)


@pytest.mark.slow
@needs_terraform
def test_terraform_code_is_formatted(terraform) -> None:
    result = terraform(["fmt", "-check", "-recursive", "-diff"], TERRAFORM)
    assert result.returncode == 0, f"run `terraform fmt -recursive terraform`:\n{result.stdout}"


@pytest.mark.slow
@needs_terraform
@pytest.mark.parametrize("root", ROOTS, ids=_id)
def test_root_is_valid(root: Path, terraform) -> None:
    terraform.init(root)
    result = terraform(["validate"], root)
    assert result.returncode == 0, f"terraform validate in {_id(root)}:\n{result.stderr}"


@pytest.mark.slow
@needs_terraform
@pytest.mark.parametrize("module", [m for m in MODULES if (m / "tests").is_dir()], ids=_id)
def test_module_tests_pass(module: Path, terraform) -> None:
    terraform.init(module)
    result = terraform(["test"], module)
    assert result.returncode == 0, (
        f"terraform test in {_id(module)}:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    )
    assert " 0 failed" in result.stdout


def test_there_is_a_region_module_and_a_lab_env() -> None:
    assert TERRAFORM / "modules" / "region" in MODULES
    assert {"lab", "example-aws"} <= {e.name for e in ENVS}


# -- the lab environment's settings agree with its Terraform code -------------------


def _settings(env: str) -> dict:
    return yaml.safe_load(
        (REPO / "inventory" / env / "group_vars" / "all" / "drkit.yml").read_text()
    )["drkit"]


def _hcl_assignments(path: Path) -> dict[str, object]:
    values: dict[str, object] = {}
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if "=" in line:
            key, value = (part.strip() for part in line.split("=", 1))
            values[key] = {"true": True, "false": False}.get(value, value.strip('"'))
    return values


def _terraform_regions(main_tf: Path) -> dict[str, dict]:
    pattern = re.compile(
        r'^\s*([a-z-]+)\s*=\s*\{\s*cloud_region\s*=\s*"([^"]+)",\s*role\s*=\s*'
        r'"([^"]+)",\s*vpc_cidr\s*=\s*"[^"]+",\s*zones\s*=\s*\[([^\]]*)\]',
        re.MULTILINE,
    )
    return {
        m[1]: {"cloud_region": m[2], "role": m[3], "zones": re.findall(r'"([^"]+)"', m[4])}
        for m in pattern.finditer(main_tf.read_text())
    }


@pytest.mark.parametrize(
    ("env", "backend_file"), [("lab", "backend.lab.hcl"), ("example-aws", "backend.hcl")]
)
def test_backend_file_and_settings_name_the_same_state(env: str, backend_file: str) -> None:
    settings = _settings(env)
    backend = _hcl_assignments(TERRAFORM / "envs" / env / backend_file)
    assert settings["terraform"]["backend_config"] == backend
    # Never in a region the estate fails over from.
    assert backend["region"] == settings["control_region"]
    assert backend["region"] not in {r["cloud_region"] for r in settings["regions"].values()}


@pytest.mark.parametrize("env", ["lab", "example-aws"])
def test_settings_regions_are_the_terraform_regions(env: str) -> None:
    settings = _settings(env)
    assert validate_settings(settings) == []
    # db_zones is drkit's alone (checked against capacity.db below).
    regions = {name: {k: v for k, v in region.items() if k != "db_zones"}
               for name, region in settings["regions"].items()}
    assert _terraform_regions(TERRAFORM / "envs" / env / "main.tf") == regions
    assert (REPO / settings["terraform"]["dir"]) == TERRAFORM / "envs" / env


@pytest.mark.parametrize("env", ["lab", "example-aws"])
def test_inventory_queries_the_estate_regions_only(env: str) -> None:
    settings = _settings(env)
    plugin = yaml.safe_load((REPO / "inventory" / env / "aws_ec2.yml").read_text())
    assert plugin["plugin"] == "amazon.aws.aws_ec2"
    assert plugin["regions"] == [r["cloud_region"] for r in settings["regions"].values()]
    assert plugin["filters"] == {"instance-state-name": "running", "tag:Estate": settings["estate"]}
    assert {g["prefix"] for g in plugin["keyed_groups"]} == {"role", "region", "zone"}
