"""Jinja2 for runbooks: one strict environment, rendering, expressions, name analysis.

Runbook fields are templates (``"{{ env.regions[params.region].db_host }}"``) and
``when`` / ``expect`` are expressions. Everything goes through one Environment
with StrictUndefined, so a typo is an error rather than an empty string that
reaches a playbook. The same parser serves the loader, which checks every
template before anything runs (see ``undeclared`` and ``attribute_uses``).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from typing import Any

import jinja2
from jinja2 import StrictUndefined, meta, nodes
from jinja2.parser import Parser

from drkit.durations import format_duration, parse_duration
from drkit.errors import ConfigError


def _to_json(value: Any, indent: int | None = None) -> str:
    """Plain JSON (Jinja's own tojson HTML-escapes, which is wrong for shell and YAML)."""
    return json.dumps(value, indent=indent, sort_keys=True, default=str)


def _duration(value: Any) -> str:
    """Human form of a duration given in seconds or in runbook form ("90s" -> "1m 30s")."""
    return format_duration(parse_duration(value))


ENV = jinja2.Environment(
    undefined=StrictUndefined,
    autoescape=False,
    keep_trailing_newline=True,
)
ENV.filters["to_json"] = _to_json
ENV.filters["tojson"] = _to_json
ENV.filters["duration"] = _duration
ENV.filters["seconds"] = parse_duration

#: Names a template may use without declaring them: Jinja's globals (range,
#: dict, namespace, lipsum, cycler, joiner). true/false/none are literals.
BUILTIN_NAMES: frozenset[str] = frozenset(ENV.globals)

_SINGLE_EXPR = re.compile(r"^\s*\{\{(?P<expr>.*)\}\}\s*$", re.DOTALL)


def is_template(text: str) -> bool:
    """True when ``text`` holds Jinja syntax and so must be rendered."""
    return "{{" in text or "{%" in text or "{#" in text


def _single_expression(text: str) -> str | None:
    """The expression inside a string that is exactly one ``{{ expr }}``, else None."""
    match = _SINGLE_EXPR.match(text)
    if match is None:
        return None
    expr = match.group("expr")
    if any(token in expr for token in ("{{", "{%", "%}", "{#", "#}")):
        return None
    # "}}" may close a dict literal ({'a': {'b': 1}}); "{{ a }} and {{ b }}" is two
    # expressions: only the first parses as one.
    try:
        ENV.parse("{{" + expr + "}}")
    except jinja2.TemplateSyntaxError:
        return None
    return expr


def _undefined_error(where: str, text: str, exc: jinja2.UndefinedError) -> ConfigError:
    prefix = f"{where}: " if where else ""
    return ConfigError(
        f"{prefix}undefined variable in {text!r}: {exc.message}",
        hint="check the name against the runbook's params and the template context",
    )


def render_string(text: str, context: Mapping[str, Any], *, where: str = "") -> Any:
    """Render one string.

    A string that is exactly one ``{{ expr }}`` returns the expression's native
    value (a list stays a list, an int an int), so ``args: {port: "{{ params.port }}"}``
    reaches a probe as an int. Anything else renders to a string. Strings with
    no Jinja syntax are returned unchanged.
    """
    if not is_template(text):
        return text
    try:
        expr = _single_expression(text)
        if expr is not None:
            value = ENV.compile_expression(expr, undefined_to_none=False)(**context)
            _fail_if_undefined(value)
            return value
        return ENV.from_string(text).render(**context)
    except jinja2.UndefinedError as exc:
        raise _undefined_error(where, text, exc) from exc
    except jinja2.TemplateSyntaxError as exc:
        prefix = f"{where}: " if where else ""
        raise ConfigError(f"{prefix}template syntax error in {text!r}: {exc.message}") from exc


def render(value: Any, context: Mapping[str, Any], *, where: str = "") -> Any:
    """Deep-render every string inside ``value`` (dicts, lists, tuples), see render_string.

    ``where`` is the dotted path of ``value`` in the runbook; errors name the
    path of the exact string that failed (``steps[2].ansible.extra_vars.host``).
    """
    if isinstance(value, str):
        return render_string(value, context, where=where)
    if isinstance(value, Mapping):
        return {
            key: render(item, context, where=f"{where}.{key}" if where else str(key))
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [render(item, context, where=f"{where}[{i}]") for i, item in enumerate(value)]
    return value


def _fail_if_undefined(value: Any) -> None:
    if isinstance(value, jinja2.Undefined):
        # Raises UndefinedError naming the missing variable or attribute.
        value._fail_with_undefined_error()


def evaluate(expr: str, context: Mapping[str, Any], *, where: str = "") -> Any:
    """Evaluate a Jinja2 expression (a step's ``when``, a check's ``expect``).

    Returns the expression's value; callers decide truthiness. Undefined names
    raise ConfigError naming the variable, never silently evaluate to false.
    """
    try:
        value = ENV.compile_expression(expr, undefined_to_none=False)(**context)
        _fail_if_undefined(value)
        return value
    except jinja2.UndefinedError as exc:
        raise _undefined_error(where, expr, exc) from exc
    except jinja2.TemplateSyntaxError as exc:
        prefix = f"{where}: " if where else ""
        raise ConfigError(f"{prefix}expression syntax error in {expr!r}: {exc.message}") from exc


@functools.lru_cache(maxsize=1024)
def parse(source: str, *, expression: bool) -> nodes.Template:
    """Parse a template (or an expression, as ``{{ expr }}``) to a Jinja AST.

    Raises jinja2.TemplateSyntaxError; the loader turns it into a problem.
    Cached: the loader asks several questions of each template; callers must
    not modify the returned tree.
    """
    if expression:
        # Parse the way compile_expression does, so errors match evaluation.
        parser = Parser(ENV, source, state="variable")
        expr = parser.parse_expression()
        if not parser.stream.eos:
            token = parser.stream.current
            raise jinja2.TemplateSyntaxError(
                f"unexpected {jinja2.lexer.describe_token(token)!r} after the expression",
                token.lineno,
            )
        ast = nodes.Template([nodes.Output([expr])], lineno=1)
        ast.set_environment(ENV)
        return ast
    return ENV.parse(source)


def undeclared(template_or_expr: str, *, expression: bool) -> set[str]:
    """Top-level names the template or expression reads and does not define itself.

    Jinja's globals (``range``, ``dict``, ...) are not reported. Raises
    jinja2.TemplateSyntaxError on bad syntax.
    """
    ast = parse(template_or_expr, expression=expression)
    return set(meta.find_undeclared_variables(ast)) - BUILTIN_NAMES


def attribute_uses(template_or_expr: str, root: str, *, expression: bool) -> set[str]:
    """Attributes read from the top-level name ``root``: ``params.region`` and
    ``params['region']`` both give ``"region"``.

    The loader uses it to reject ``params.X`` for undeclared X and ``steps.Y`` for
    steps that have not run yet. Dynamic lookups (``params[name]``) cannot be
    known statically and are not reported. Raises jinja2.TemplateSyntaxError.
    """
    ast = parse(template_or_expr, expression=expression)
    if root not in meta.find_undeclared_variables(ast):
        return set()  # ``root`` is shadowed by a {% set %} or a loop, or not used
    found: set[str] = set()
    for node in ast.find_all((nodes.Getattr, nodes.Getitem)):
        target = node.node
        if not (isinstance(target, nodes.Name) and target.name == root):
            continue
        if isinstance(node, nodes.Getattr):
            found.add(node.attr)
        elif isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
            found.add(node.arg.value)
    return found
