"""Templates: strict rendering that keeps native types, expressions, name analysis."""

from __future__ import annotations

import jinja2
import pytest

from drkit.errors import ConfigError
from drkit.templating import attribute_uses, evaluate, render, undeclared

CONTEXT = {
    "params": {"region": "eu-west", "replicas": 3, "paths": ["/a", "/b"], "lag": 90.0},
    "env": {"regions": {"eu-west": {"db_host": "10.20.1.10"}}},
    "steps": {"scale-up": {"outputs": {"app_count": 2}}},
    "run": {"id": "20261122T030112Z-RB-DR-003", "dry_run": False},
}


@pytest.mark.parametrize(
    ("template", "value"),
    [
        ("{{ params.replicas }}", 3),
        ("{{ params.paths }}", ["/a", "/b"]),
        ("  {{ run.dry_run }} ", False),
        ("{{ steps['scale-up'].outputs.app_count + 1 }}", 3),
        ("{{ env.regions[params.region].db_host }}", "10.20.1.10"),
        ("replicas={{ params.replicas }}", "replicas=3"),
        ("{{ params.region }}-{{ params.replicas }}", "eu-west-3"),
        ("{{ params.paths | to_json }}", '["/a", "/b"]'),  # a string, for shells
        ("{{ params.paths | tojson }} <raw>", '["/a", "/b"] <raw>'),
        ("{{ params.lag | duration }}", "1m 30s"),
        ("no template here", "no template here"),
        ("{% if params.replicas > 2 %}big{% else %}small{% endif %}", "big"),
    ],
)
def test_render_keeps_native_types_for_a_single_expression(template: str, value: object) -> None:
    assert render(template, CONTEXT) == value


def test_render_walks_dicts_and_lists() -> None:
    spec = {"vars": {"count": "{{ params.replicas }}", "hosts": ["{{ params.region }}", 7]},
            "flag": True}
    assert render(spec, CONTEXT) == {"vars": {"count": 3, "hosts": ["eu-west", 7]}, "flag": True}


def test_undefined_variable_is_an_error_naming_it_and_the_path() -> None:
    with pytest.raises(ConfigError) as info:
        render({"args": {"host": "db-{{ params.zone }}"}}, CONTEXT, where="steps[2].action")
    message = str(info.value)
    assert message.startswith("steps[2].action.args.host: undefined variable")
    assert "zone" in message


def test_a_single_undefined_expression_is_not_silently_none() -> None:
    with pytest.raises(ConfigError, match="'nope' is undefined"):
        render("{{ nope }}", CONTEXT)


@pytest.mark.parametrize(
    ("expr", "result"),
    [
        ("result.streaming and result.lag_s < 5", True),
        ("result.lag_s", 1.5),
        ("params.region == 'eu-west'", True),
        ("params.replicas > 5", False),
        ("'b' in params.paths | map('replace', '/', '') | list", True),
    ],
)
def test_evaluate(expr: str, result: object) -> None:
    context = {**CONTEXT, "result": {"streaming": True, "lag_s": 1.5}}
    assert evaluate(expr, context) == result


def test_evaluate_missing_attribute_raises_rather_than_being_false() -> None:
    with pytest.raises(ConfigError, match="has no attribute 'streaming'"):
        evaluate("result.streaming", {"result": {}}, where="preflight[0].check.expect")


def test_evaluate_syntax_error_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="expression syntax error"):
        evaluate("result.ok ==", {"result": {}})


def test_undeclared_names_exclude_locals_and_jinja_globals() -> None:
    template = "{% for x in range(3) %}{{ x }}{{ params.a }}{% endfor %}{{ foo | default(1) }}"
    assert undeclared(template, expression=False) == {"params", "foo"}
    assert undeclared("result.ok and params.a", expression=True) == {"result", "params"}
    assert undeclared("true and none is none", expression=True) == set()


def test_undeclared_raises_on_bad_syntax() -> None:
    with pytest.raises(jinja2.TemplateSyntaxError):
        undeclared("{{ params.a ", expression=False)
    with pytest.raises(jinja2.TemplateSyntaxError):
        undeclared("params.a params.b", expression=True)


def test_attribute_uses_finds_dotted_and_subscript_access() -> None:
    text = "{{ env.regions[params.region].db }} {{ params['mode'] }} {{ params[name] }}"
    assert attribute_uses(text, "params", expression=False) == {"region", "mode"}
    assert attribute_uses("steps['scale-up'].outputs.n > 0", "steps", expression=True) == {
        "scale-up"
    }
    # a loop variable that shadows the root is not the root
    assert attribute_uses("{% set params = {} %}{{ params.x }}", "params", expression=False) \
        == set()


def test_a_dict_literal_closing_with_double_braces_keeps_its_native_type():
    from drkit.templating import render as _render

    ctx = {"params": {"region": "eu-west", "n": 2}}
    assert _render("{{ {params.region: {'app': params.n}} }}", ctx) == {"eu-west": {"app": 2}}
    assert _render("{{ params.region }} and {{ params.n }}", ctx) == "eu-west and 2"
