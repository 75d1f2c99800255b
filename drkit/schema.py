"""YAML with line numbers, and a collector of problems with dotted paths.

Validation in drkit reports every problem of a file at once, each as
``steps[3].ansible.limit: expected a string, got a list (line 41)``. This module
provides the two pieces that make that possible for any YAML file (runbooks,
environment settings): ``load_yaml`` keeps the line of every mapping key and
sequence item by dotted path, and ``Problems`` collects messages and attaches
the line of the nearest known path.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import yaml


def join(path: str, key: str | int) -> str:
    """Dotted path of ``key`` under ``path``: join("steps[2]", "ansible") -> "steps[2].ansible"."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


_LAST_PART = re.compile(r"(\.[^.\[]*|\[\d+\])$")


def parent(path: str) -> str:
    """The enclosing path: parent("steps[2].ansible") -> "steps[2]"; parent("id") -> ""."""
    return _LAST_PART.sub("", path) if ("." in path or "[" in path) else ""


@dataclass
class Problems:
    """Problems found in one document, each with its dotted path and line."""

    lines: dict[str, int] = field(default_factory=dict)
    _items: list[tuple[int, int, str]] = field(default_factory=list)

    def line_of(self, path: str) -> int | None:
        """Line of ``path``, or of its nearest enclosing path that has one."""
        while True:
            if path in self.lines:
                return self.lines[path]
            if not path:
                return None
            path = parent(path)

    def add(self, path: str, message: str, *, line: int | None = None) -> None:
        """Record ``path: message (line N)``."""
        line = line if line is not None else self.line_of(path)
        text = f"{path}: {message}" if path else message
        if line is not None:
            text += f" (line {line})"
        self._items.append((line if line is not None else 10**9, len(self._items), text))

    def __bool__(self) -> bool:
        return bool(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def messages(self) -> list[str]:
        """All problems, in file order (by line), so the list reads top to bottom."""
        return [text for _, _, text in sorted(self._items)]


def describe(value: Any) -> str:
    """How a YAML value reads to a user: "a string", "a list", "null"."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


def suggest(word: str, options: Iterable[str]) -> str:
    """'; did you mean "ansible"?' when ``word`` is a likely typo of an option, else ''."""
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.75)
    return f"; did you mean {close[0]!r}?" if close else ""


# libyaml's parser when present (about 10x faster); same nodes, same marks.
_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class YAMLSyntaxError(Exception):
    """The text is not YAML. ``line`` is 1-based (or None when unknown)."""

    def __init__(self, problem: str, line: int | None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.line = line


def load_yaml(text: str, problems: Problems) -> Any:
    """Parse one YAML document, filling ``problems.lines`` with the line of every path.

    Duplicate mapping keys are recorded in ``problems`` (YAML silently keeps the
    last one, which hides mistakes). Keys are converted to strings' natural form
    by YAML's safe constructors. Raises YAMLSyntaxError when the text is not YAML.
    """
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or str(exc)
        if exc.context:
            problem = f"{problem} ({exc.context})"
        raise YAMLSyntaxError(problem, mark.line + 1 if mark else None) from exc
    except yaml.YAMLError as exc:
        raise YAMLSyntaxError(str(exc), None) from exc
    finally:
        loader.dispose()
    if node is None:
        return None
    try:
        return _construct(loader, node, "", problems)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise YAMLSyntaxError(exc.problem or str(exc), mark.line + 1 if mark else None) from exc


def _construct(loader: yaml.SafeLoader, node: yaml.Node, path: str, problems: Problems) -> Any:
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)  # resolves YAML merge keys (<<: *anchor)
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, str | int | float | bool):
                problems.add(path, f"mapping key {key!r} must be a string",
                             line=key_node.start_mark.line + 1)
                continue
            key_path = join(path, str(key))
            line = key_node.start_mark.line + 1
            if key in result:
                problems.add(key_path, f"duplicate key (first at line {problems.lines[key_path]})",
                             line=line)
                continue
            problems.lines[key_path] = line
            result[key] = _construct(loader, value_node, key_path, problems)
        return result
    if isinstance(node, yaml.SequenceNode):
        items = []
        for index, item_node in enumerate(node.value):
            item_path = join(path, index)
            problems.lines[item_path] = item_node.start_mark.line + 1
            items.append(_construct(loader, item_node, item_path, problems))
        return items
    return loader.construct_object(node, deep=True)
