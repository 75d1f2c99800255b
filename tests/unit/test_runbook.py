"""A good runbook loads into what the engine needs, finds by id, and reads as Markdown."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from drkit.errors import ConfigError
from drkit.runbook import (
    load_runbook,
    load_runbooks,
    render_spec,
    resolve_runbook,
    to_markdown,
)

FIXTURES = Path(__file__).parent.parent / "fixtures" / "runbooks"
FULL = FIXTURES / "good" / "full.yml"


def test_full_runbook_loads_with_every_step_kind() -> None:
    rb = load_runbook(FULL)
    assert (rb.id, rb.severity, rb.rto_s, rb.rpo_s) == ("RB-DR-003", "SEV1", 1800.0, 0.0)
    assert [s.id for s in rb.preflight] == ["target-is-standby", "backups-fresh"]
    assert [s.kind for s in rb.steps] == [
        "notify", "approval", "ansible", "terraform", "action", "ansible", "action", "check",
        "notify",
    ]
    assert [s.id for s in rb.on_failure] == ["page-escalation"]
    assert {s.phase for s in rb.all_steps()} == {"preflight", "main", "on_failure"}
    assert rb.sha256 == hashlib.sha256(FULL.read_bytes()).hexdigest()


def test_steps_carry_timeouts_marks_paths_and_lines() -> None:
    rb = load_runbook(FULL)
    declare, decide, promote = rb.step("declare"), rb.step("decide"), rb.step("promote")
    assert declare.marks_start == ("outage_start",)
    assert decide.marks_finish == ("failover_decided",)
    assert promote.marks_finish == ("data_restored",)
    assert rb.step("scale-up").timeout_s == 1200.0
    assert rb.step("wait-replay").when == "params.mode == 'planned'"
    assert (promote.path, promote.line) == ("steps[5]", 88)
    assert rb.step("tell-customers").title == "tell-customers"  # defaults to the id


def test_specs_stay_unrendered_and_terraform_action_defaults_to_apply() -> None:
    rb = load_runbook(FULL)
    scale = rb.step("scale-up").spec
    assert scale["action"] == "apply"
    assert scale["vars"]["active_region"] == "{{ params.region }}"


def test_unknown_step_id_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="did you mean 'promote'") as info:
        load_runbook(FULL).step("promot")
    assert "declare" in str(info.value)


def test_markdown_shows_what_runs_in_order() -> None:
    md = to_markdown(load_runbook(FULL))
    assert md.startswith("# RB-DR-003: Region failover\n")
    assert "**RTO target:** 30m 00s" in md
    assert "| `region` | str | yes |  | eu-west, ap-south | Region to fail over to |" in md
    order = [
        "## Preflight checks", "1. **`target-is-standby`**", "## Steps",
        "1. **Declare the incident", "2. **Confirm the failover", "3. **Fence the old primary",
        "4. **Scale the standby region up", "5. **Wait for the replica to replay",
        "6. **Promote the replica", "7. **Point db and app", "8. **Smoke test through DNS",
        "9. **`tell-customers`**", "## On failure", "1. **`page-escalation`**",
    ]
    positions = [md.index(text, md.index("## Parameters")) for text in order]
    assert positions == sorted(positions)
    # What each step runs, templates shown as written:
    assert "ansible: playbook `playbooks/fence.yml` limited to `role_db:&region_us_east`" in md
    assert "terraform apply in `terraform/envs/lab` (workspace `default`)" in md
    assert "check: probe `http.get`, expect `result.status == 200`" in md
    assert "approval: asks `Fail over to {{ params.region }} ({{ params.mode }})?`" in md
    assert "notify: template `status-investigating` to `status-page, oncall`" in md
    assert "action: `postgres.wait_replay`" in md
    assert "only when `params.mode == 'planned'`" in md
    assert "marks at finish: service_restored" in md


def copy_runbooks(tmp_path: Path, *names: str) -> Path:
    directory = tmp_path / "runbooks"
    directory.mkdir()
    for name in names:
        shutil.copy(FIXTURES / name, directory / Path(name).name)
    return directory


def test_load_runbooks_sorts_by_id(tmp_path: Path) -> None:
    directory = copy_runbooks(tmp_path, "good/full.yml")
    text = FULL.read_text().replace("id: RB-DR-003", "id: RB-DR-001")
    (directory / "first.yaml").write_text(text)
    assert [rb.id for rb in load_runbooks(directory)] == ["RB-DR-001", "RB-DR-003"]


def test_load_runbooks_refuses_duplicate_ids_and_reports_every_file(tmp_path: Path) -> None:
    directory = copy_runbooks(tmp_path, "good/full.yml", "bad/unknown_top_key.yml")
    shutil.copy(FULL, directory / "copy.yml")
    with pytest.raises(ConfigError) as info:
        load_runbooks(directory)
    problems = info.value.problems
    assert "full.yml: id: RB-DR-003 is also the id of copy.yml; runbook ids must be unique" \
        in problems
    assert any(p.startswith("unknown_top_key.yml: owner: unknown key") for p in problems)


def test_resolve_by_id_is_case_insensitive_and_ignores_broken_neighbours(tmp_path: Path) -> None:
    directory = copy_runbooks(tmp_path, "good/full.yml", "bad/many_problems.yml")
    assert resolve_runbook("rb-dr-003", directory) == directory / "full.yml"
    assert resolve_runbook(str(directory / "full.yml"), tmp_path) == directory / "full.yml"
    assert resolve_runbook("full.yml", directory) == directory / "full.yml"


def test_resolve_unknown_lists_known_ids(tmp_path: Path) -> None:
    directory = copy_runbooks(tmp_path, "good/full.yml", "bad/unknown_top_key.yml")
    with pytest.raises(ConfigError) as info:
        resolve_runbook("RB-DR-009", directory)
    assert "no runbook 'RB-DR-009'" in str(info.value)
    assert "known runbooks: RB-DR-003, RB-TEST-001" in str(info.value)


def test_render_spec_renders_now_what_it_can_and_leaves_result_for_later() -> None:
    rb = load_runbook(FULL)
    ctx = {"params": {"region": "eu-west", "smoke_paths": ["/healthz"]},
           "env": {"dns": {"zone": "lab.internal"}}, "steps": {}, "run": {}, "targets": {}}
    smoke = render_spec(rb.step("smoke"), ctx)
    assert smoke["args"] == {"url": "http://app.lab.internal", "paths": ["/healthz"]}
    assert smoke["message"] == "app answered {{ result.status }}"
    assert smoke["expect"] == "result.status == 200"
    with pytest.raises(ConfigError, match=r"^steps\[1\]\.approval\.prompt: undefined"):
        render_spec(rb.step("decide"), {**ctx, "params": {}})
