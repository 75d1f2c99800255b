"""Binding parameters: command-line strings become typed values, or every problem
is reported at once with what would be accepted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from drkit.errors import ConfigError, ExitCode
from drkit.runbook import Runbook, bind_params, load_runbook

FULL = Path(__file__).parent.parent / "fixtures" / "runbooks" / "good" / "full.yml"


@pytest.fixture(scope="module")
def runbook() -> Runbook:
    return load_runbook(FULL)


def test_defaults_apply_when_only_required_params_are_given(runbook: Runbook) -> None:
    assert bind_params(runbook, {"region": "eu-west"}) == {
        "region": "eu-west",
        "mode": "planned",
        "max_lag": 30.0,
        "app_instances": 2,
        "smoke_paths": ["/healthz", "/orders"],
        "notify_customers": False,
    }


@pytest.mark.parametrize(
    ("name", "given", "bound"),
    [
        ("mode", "unplanned", "unplanned"),
        ("max_lag", "1m30s", 90.0),
        ("max_lag", "500ms", 0.5),
        ("max_lag", 45, 45.0),
        ("app_instances", "4", 4),
        ("app_instances", 3, 3),
        ("smoke_paths", "/a, /b,,/c", ["/a", "/b", "/c"]),
        ("smoke_paths", ["/x"], ["/x"]),
        ("notify_customers", "yes", True),
        ("notify_customers", "TRUE", True),
        ("notify_customers", "1", True),
        ("notify_customers", "no", False),
        ("notify_customers", "false", False),
        ("notify_customers", "0", False),
        ("notify_customers", True, True),
    ],
)
def test_values_are_coerced_to_the_declared_type(
    runbook: Runbook, name: str, given: object, bound: Any
) -> None:
    params = bind_params(runbook, {"region": "ap-south", name: given})
    assert params[name] == bound
    assert type(params[name]) is type(bound)


@pytest.mark.parametrize(
    ("given", "problem"),
    [
        ({}, "params.region: missing required str parameter (Region to fail over to); "
             "pass region=<value>; one of eu-west, ap-south"),
        ({"region": "mars"}, "params.region: 'mars' is not one of eu-west, ap-south"),
        ({"region": "eu-west", "mode": "hot"},
         "params.mode: 'hot' is not one of planned, unplanned"),
        ({"region": "eu-west", "max_lag": "soon"}, "params.max_lag: 'soon' is not a duration"),
        ({"region": "eu-west", "app_instances": "two"},
         "params.app_instances: 'two' is not an integer"),
        ({"region": "eu-west", "notify_customers": "maybe"},
         "params.notify_customers: 'maybe' is not a boolean; use true/false, yes/no or 1/0"),
        ({"region": "eu-west", "regoin": "x"},
         "params.regoin: unknown parameter; declared: region, mode, max_lag, app_instances, "
         "smoke_paths, notify_customers; did you mean 'region'?"),
    ],
)
def test_bad_values_are_refused_with_the_fix(
    runbook: Runbook, given: dict[str, object], problem: str
) -> None:
    with pytest.raises(ConfigError) as info:
        bind_params(runbook, given)
    assert info.value.exit_code == ExitCode.BAD_INPUT
    assert any(p.startswith(problem) for p in info.value.problems), info.value.problems


def test_all_parameter_problems_at_once(runbook: Runbook) -> None:
    with pytest.raises(ConfigError) as info:
        bind_params(runbook, {"mode": "hot", "app_instances": "x", "colour": "red"})
    fields = sorted(p.split(":")[0] for p in info.value.problems)
    assert fields == ["params.app_instances", "params.colour", "params.mode", "params.region"]
    assert "4 parameter problems" in info.value.message


def test_list_choices_apply_to_each_item(tmp_path: Path) -> None:
    text = FULL.read_text().replace(
        "    default: [/healthz, /orders]\n",
        "    default: [/healthz, /orders]\n    choices: [/healthz, /orders, /admin]\n",
    )
    path = tmp_path / "rb.yml"
    path.write_text(text)
    rb = load_runbook(path)
    assert bind_params(rb, {"region": "eu-west", "smoke_paths": "/admin"})["smoke_paths"] == [
        "/admin"
    ]
    with pytest.raises(ConfigError, match="'/etc' is not one of /healthz, /orders, /admin"):
        bind_params(rb, {"region": "eu-west", "smoke_paths": "/admin,/etc"})
