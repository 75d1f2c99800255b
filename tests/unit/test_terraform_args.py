"""Terraform command lines and CLI config, built by pure functions."""

from __future__ import annotations

from pathlib import Path

import pytest

from drkit.drivers import tfconfig
from drkit.drivers.terraform import (
    apply_args,
    apply_now_args,
    command_line,
    init_args,
    output_args,
    plan_args,
    show_plan_args,
    workspace_args,
)

PLAN = ["plan", "-json", "-input=false", "-lock-timeout=60s", "-detailed-exitcode"]

ARGV_TABLE = [
    (init_args, {}, ["init", "-input=false", "-json"]),
    (init_args, {"reconfigure": True}, ["init", "-input=false", "-json", "-reconfigure"]),
    (init_args, {"backend_config": {"bucket": "st", "encrypt": True}},
     ["init", "-input=false", "-json", "-backend-config=bucket=st",
      "-backend-config=encrypt=true"]),
    (init_args, {"backend_config_file": "/d/backend.tfbackend", "reconfigure": True},
     ["init", "-input=false", "-json", "-backend-config=/d/backend.tfbackend", "-reconfigure"]),
    (plan_args, {"out": "/r/tfplan"}, [*PLAN, "-out=/r/tfplan"]),
    (plan_args, {"out": "p", "destroy": True}, [*PLAN, "-out=p", "-destroy"]),
    (plan_args, {"out": "p", "refresh": False}, [*PLAN, "-out=p", "-refresh=false"]),
    (plan_args, {"out": "p", "vars_file": "/d/step-vars.tfvars.json",
                 "var_files": ["a.tfvars", "b.tfvars"]},
     [*PLAN, "-out=p", "-var-file=/d/step-vars.tfvars.json", "-var-file=a.tfvars",
      "-var-file=b.tfvars"]),
    (plan_args, {"out": "p", "targets": ["module.region", "aws_instance.db[0]"]},
     [*PLAN, "-out=p", "-target=module.region", "-target=aws_instance.db[0]"]),
    (plan_args, {"out": "p", "destroy": True, "targets": ("x.y",)},
     [*PLAN, "-out=p", "-destroy", "-target=x.y"]),
    (apply_args, {"plan_file": "/r/tfplan"},
     ["apply", "-json", "-input=false", "-lock-timeout=60s", "/r/tfplan"]),
    (apply_now_args, {},
     ["apply", "-json", "-input=false", "-lock-timeout=60s", "-auto-approve"]),
    (apply_now_args, {"vars_file": "/d/v.tfvars.json", "targets": ["module.eu-west"]},
     ["apply", "-json", "-input=false", "-lock-timeout=60s", "-auto-approve",
      "-var-file=/d/v.tfvars.json", "-target=module.eu-west"]),
    (output_args, {}, ["output", "-json"]),
    (show_plan_args, {"plan_file": "/r/tfplan"}, ["show", "-json", "/r/tfplan"]),
    (workspace_args, {"name": "eu-west"}, ["workspace", "select", "-or-create", "eu-west"]),
    (workspace_args, {"name": "prod", "create": False}, ["workspace", "select", "prod"]),
    (workspace_args, {}, ["workspace", "show"]),
    (command_line, {"module_dir": "/m", "args": ["output", "-json"]},
     ["terraform", "-chdir=/m", "output", "-json"]),
]


@pytest.mark.parametrize(("builder", "kwargs", "argv"), ARGV_TABLE,
                         ids=[f"{b.__name__}-{i}" for i, (b, _, _) in enumerate(ARGV_TABLE)])
def test_argv(builder, kwargs, argv):
    assert builder(**kwargs) == argv


def test_variable_values_never_reach_argv():
    # Values travel in the vars file; only its path is on the command line.
    argv = plan_args(out="p", vars_file="/d/step-vars.tfvars.json")
    assert not any(a.startswith("-var=") for a in argv)


def test_cli_config_with_mirror_uses_it_for_the_registry_only(tmp_path: Path):
    text = tfconfig.render_cli_config(Path("/opt/tf-plugins"), tmp_path / "cache")
    assert 'path    = "/opt/tf-plugins"' in text
    assert 'include = ["registry.terraform.io/*/*"]' in text
    assert 'exclude = ["registry.terraform.io/*/*"]' in text
    assert f'plugin_cache_dir = "{tmp_path / "cache"}"' in text


def test_cli_config_without_mirror_goes_direct():
    text = tfconfig.render_cli_config(None, None)
    assert "filesystem_mirror" not in text
    assert "direct {}" in text
    assert "plugin_cache_dir" not in text


def test_write_cli_config_creates_the_cache(tmp_path: Path):
    path = tfconfig.write_cli_config(tmp_path / "etc" / "terraformrc", mirror=None,
                                     plugin_cache=tmp_path / "cache")
    assert path.read_text() == tfconfig.render_cli_config(None, tmp_path / "cache")
    assert (tmp_path / "cache").is_dir()


def test_mirror_found_explicitly_or_by_env(tmp_path: Path, monkeypatch):
    mirror = tmp_path / "plugins"
    (mirror / "registry.terraform.io").mkdir(parents=True)
    assert tfconfig.find_provider_mirror(str(mirror)) == mirror.resolve()
    monkeypatch.setenv("DRKIT_TF_MIRROR", str(mirror))
    assert tfconfig.find_provider_mirror() == mirror.resolve()


def test_folder_without_registry_tree_is_not_a_mirror(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(tfconfig, "MIRROR_CANDIDATES", ())
    monkeypatch.delenv("DRKIT_TF_MIRROR", raising=False)
    assert tfconfig.find_provider_mirror(str(tmp_path)) is None


def test_missing_terraform_names_the_fix():
    from drkit.errors import ConfigError

    with pytest.raises(ConfigError, match="not found on PATH") as info:
        tfconfig.check_terraform("terraform-that-does-not-exist")
    assert "install Terraform" in str(info.value)
