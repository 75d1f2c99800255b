"""Every kind of bad runbook is refused before anything runs, each problem with
its dotted path and line, all problems of a file at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from drkit.errors import ConfigError, ExitCode
from drkit.runbook import load_runbook

BAD = Path(__file__).parent.parent / "fixtures" / "runbooks" / "bad"


def problems_of(name: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_runbook(BAD / name)
    assert info.value.exit_code == ExitCode.BAD_INPUT
    assert str(BAD / name) in info.value.message
    return info.value.problems


# (file, the start of the problem, the line it must name)
CASES = [
    ("unknown_top_key.yml", "owner: unknown key; expected one of: id, title, why", 5),
    ("unknown_nested_key.yml", "steps[0].ansible.limt: unknown key; expected one of: playbook", 10),
    ("unknown_nested_key.yml", "steps[1].ansibel: unknown key; expected one of: id, title", 12),
    ("wrong_type.yml", "steps[0].ansible.limit: expected a string, got a list", 10),
    ("wrong_type.yml", "steps[0].ansible.extra_vars: expected a mapping, got a list", 13),
    ("unknown_kind.yml", "steps[0].shell: unknown key; expected one of:", 8),
    ("two_kinds.yml", "steps[0].ansible: a step has exactly one kind, this one has 2", 9),
    ("missing_required.yml", "why: required key is missing", 1),
    ("missing_required.yml", "targets.rpo: required key is missing", 4),
    ("missing_required.yml", "steps[0].check.expect: required key is missing", 7),
    ("missing_required.yml", "steps[1].id: required key is missing", 9),
    ("missing_required.yml", "steps[1].terraform.dir: required key is missing", 10),
    ("bad_duration.yml", "targets.rto: '30 minutes' is not a duration; expected <number><unit>", 6),
    ("bad_duration.yml", "steps[0].timeout: '1w' is not a duration", 10),
    ("duplicate_step_id.yml",
     "on_failure[0].id: duplicate step id 'notify' (first used by steps[0])", 12),
    ("undefined_variable.yml", "steps[0].ansible.limit: undefined variable 'region'", 12),
    ("undeclared_param.yml", "steps[0].when: params.mode is not a declared parameter", 10),
    ("undeclared_param.yml",
     "steps[0].action.args.host: params.regoin is not a declared parameter; declared: region; "
     "did you mean 'region'?", 13),
    ("bad_template_syntax.yml", "steps[0].approval.prompt: template syntax error", 11),
    ("bad_template_syntax.yml", "steps[1].when: expression syntax error", 13),
    ("preflight_non_check.yml", "preflight[1].terraform: preflight holds only check steps", 10),
    ("default_not_in_choices.yml",
     "params.mode.default: default 'hot' is not one of planned, unplanned", 8),
    ("default_not_in_choices.yml",
     "params.region.default: a required parameter has no default", 13),
    ("default_not_in_choices.yml", "params.replicas.default: wrong type for a int parameter", 16),
    ("default_not_in_choices.yml", "params.kind.type: 'string' is not one of str, int", 17),
    ("bad_id.yml", "id: 'rb-dr-3' does not match ^RB-[A-Z0-9][A-Z0-9-]*$", 1),
    ("bad_id.yml", "severity: 'SEV0' is not one of SEV1, SEV2, SEV3, SEV4", 4),
    ("bad_id.yml", "steps[0].id: 'Promote_DB' does not match ^[a-z0-9][a-z0-9-]*$", 7),
    ("duplicate_yaml_key.yml", "steps[0].action.name: duplicate key (first at line 9)", 10),
    ("invalid_yaml.yml", "invalid YAML: ", 6),
    ("step_refs.yml", "steps[0].approval.prompt: steps.promote: step 'promote' has not run yet", 9),
    ("step_refs.yml",
     "steps[1].action.args.lsn: steps.chekc-lag: there is no step 'chekc-lag'", 13),
    ("step_refs.yml", "steps[2].marks.finish: 'service_restord' is not a mark", 15),
    ("step_refs.yml", "steps[2].check.args.expected: undefined variable 'result'", 18),
    ("step_refs.yml", "steps[2].check.expect: '{{ result.ok }}' is an expression", 19),
    ("no_steps.yml", "steps: a runbook needs at least one step", 6),
    ("check_of.yml", "steps[0].check.of: step 'later' has not run yet at this point", 8),
    ("check_of.yml", "steps[2].check.probe: a check has exactly one of probe (ask a probe) "
     "or of (the result of an earlier step), not both", 12),
    ("check_of.yml", "steps[3].check.probe: a check has exactly one of probe", 14),
    ("check_of.yml", "steps[4].check.args: a check `of` an earlier step asks no probe", 16),
    ("shadowed_step_id.yml", "steps[0].id: 'copy' is also a method of the steps mapping", 7),
    ("check_of.yml", "steps[5].check.of: there is no step 'latr'; did you mean 'later'?", 18),
]


@pytest.mark.parametrize(("name", "start", "line"), CASES,
                         ids=[f"{c[0]}:{c[1].split(':')[0]}" for c in CASES])
def test_bad_runbook_names_the_path_and_line(name: str, start: str, line: int) -> None:
    problems = problems_of(name)
    matching = [p for p in problems if p.startswith(start)]
    assert matching, f"no problem starting {start!r} in {problems}"
    assert matching[0].endswith(f"(line {line})")


def test_every_bad_fixture_is_covered() -> None:
    covered = {name for name, _, _ in CASES} | {"many_problems.yml"}
    assert covered == {p.name for p in BAD.glob("*.yml")}


def test_misspelt_kind_is_one_problem_with_a_suggestion() -> None:
    problems = [p for p in problems_of("unknown_nested_key.yml") if p.startswith("steps[1]")]
    assert len(problems) == 1
    assert "did you mean 'ansible'?" in problems[0]


def test_all_problems_of_a_file_are_reported_at_once_in_file_order() -> None:
    assert problems_of("many_problems.yml") == [
        "id: 'RB-many' does not match ^RB-[A-Z0-9][A-Z0-9-]*$ (e.g. RB-DR-003) (line 1)",
        "targets.rto: 'soon' is not a duration; expected <number><unit>[<number><unit>...] "
        'with unit ms|s|m|h|d, e.g. "30m", "1h30m", "0s" (line 6)',
        "steps[0].notify.channels: expected a list of strings, got a string (line 12)",
        "steps[1].ansible.limit: params.zone is not a declared parameter; declared: region "
        "(line 16)",
        "steps[2].id: duplicate step id 'promote' (first used by steps[1]); "
        "step ids must be unique (line 17)",
        "steps[2].terraform.action: 'create' is not one of plan, apply, destroy (line 18)",
        "steps[3].check.expect: required key is missing (line 20)",
        "steps[3].approval: a step has exactly one kind, this one has 2: check, approval; "
        "split it into 2 steps (line 21)",
    ]


def test_message_counts_the_problems() -> None:
    with pytest.raises(ConfigError) as info:
        load_runbook(BAD / "many_problems.yml")
    assert "has 8 problems" in info.value.message
    assert "nothing was run" in str(info.value)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("- just\n- a list\n", "expected a mapping with keys id, title"),
        ("", "expected a mapping with keys id, title"),
        ("id: RB-X\n\tbad: tab\n", "invalid YAML"),
    ],
)
def test_not_a_runbook_at_all(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "rb.yml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_runbook(path)
    assert any(problem in p for p in info.value.problems), info.value.problems


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot be read"):
        load_runbook(tmp_path / "nope.yml")
