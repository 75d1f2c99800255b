"""Checking a step's templates and expressions when the runbook loads.

Syntax errors, and names a template cannot know at run time: ``params.X`` for an
undeclared X, an unknown ``run`` or ``targets`` field, a step that has not run
yet or runs in another lane of the same block.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import jinja2

from drkit import templating
from drkit.runbook.render import CONTEXT_NAMES, RESULT_FIELDS, RUN_FIELDS, TARGET_FIELDS
from drkit.schema import Problems, join, suggest


def _strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    """Every string inside ``value`` with its dotted path."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, join(path, str(key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(item, join(path, index))


def check_step_templates(raw: dict[str, Any], step_path: str, params: set[str],
                          earlier: set[str], all_ids: set[str], problems: Problems) -> None:
    """Parse every template and expression in a step and check the names it uses,
    and that a check ``of`` a step names one that has run by then."""
    of = raw.get("check", {}).get("of") if isinstance(raw.get("check"), dict) else None
    if isinstance(of, str):
        if of not in all_ids:
            problems.add(join(step_path, "check.of"), f"there is no step {of!r}"
                         f"{suggest(of, all_ids)}")
        elif of not in earlier:
            problems.add(join(step_path, "check.of"), f"step {of!r} has not run yet at this "
                         "point; a check can look at the result of an earlier step only")
    for key, value in raw.items():
        if key in ("id", "timeout", "marks"):
            continue
        for path, text in _strings(value, join(step_path, str(key))):
            relative = path[len(step_path) + 1:]
            expression = relative == "when" or relative == "check.expect"
            if not expression and not templating.is_template(text):
                continue
            allow_result = relative in RESULT_FIELDS
            _check_template(text, path, expression, allow_result, params, earlier, all_ids,
                            problems)


def _check_template(text: str, path: str, expression: bool, allow_result: bool,
                    params: set[str], earlier: set[str], all_ids: set[str],
                    problems: Problems) -> None:
    if expression and text.lstrip().startswith("{{"):
        problems.add(path, f"{text!r} is an expression; write it without {{{{ }}}}")
        return
    try:
        names = templating.undeclared(text, expression=expression)
    except jinja2.TemplateSyntaxError as exc:
        what = "expression" if expression else "template"
        problems.add(path, f"{what} syntax error: {exc.message}")
        return
    allowed = CONTEXT_NAMES + (("result",) if allow_result else ())
    for name in sorted(names - set(allowed)):
        problems.add(path, f"undefined variable {name!r} in {text.strip()!r}; templates can use "
                     f"{', '.join(allowed)}{suggest(name, allowed)}")
    checks = (
        ("params", params, "is not a declared parameter"),
        ("run", set(RUN_FIELDS), "is not a run field"),
        ("targets", set(TARGET_FIELDS), "is not a target field"),
    )
    for root, known, problem in checks:
        if root not in names:
            continue
        for attr in sorted(templating.attribute_uses(text, root, expression=expression) - known):
            choices = ", ".join(sorted(known)) or "none"
            problems.add(path, f"{root}.{attr} {problem}; declared: {choices}"
                         f"{suggest(attr, known)}")
    if "steps" in names:
        for ref in sorted(templating.attribute_uses(text, "steps", expression=expression)):
            if ref not in all_ids:
                problems.add(path, f"steps.{ref}: there is no step {ref!r}"
                             f"{suggest(ref, all_ids)}")
            elif ref not in earlier:
                problems.add(path, f"steps.{ref}: step {ref!r} has not run yet at this point; "
                             "a step can only use outputs of steps before it, "
                             "not of steps in another lane of its block")
