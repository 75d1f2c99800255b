"""Named probes (read-only checks) and actions (Python steps) runbooks can call.

Runbooks refer to them by dotted name (``postgres.replication``,
``postgres.promote``). A probe must not change anything: dry runs call it.
An action changes things and must be idempotent: a resumed run re-runs an
interrupted one. Both receive a ``StepContext`` plus the step's rendered args
and return a dict of findings/outputs.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from drkit.errors import ConfigError

# Modules whose import registers the built-in probes and actions.
BUILTIN_MODULES = ("drkit.checks", "drkit.actions")


@dataclass
class StepContext:
    """What a probe or action may use: the environment, where to write raw
    output, whether this is a dry run, and a way to report progress."""

    env: Any
    project: Any
    run_dir: Path
    dry_run: bool = False
    progress: Callable[[str], None] = field(default=lambda text: None)
    decisions: list[str] = field(default_factory=list)

    def decide(self, text: str) -> None:
        """Record a one-line decision (it ends up in the journal)."""
        self.decisions.append(text)
        self.progress(text)


Callable_ = Callable[..., dict[str, Any]]
_probes: dict[str, Callable_] = {}
_actions: dict[str, Callable_] = {}


def probe(name: str) -> Callable[[Callable_], Callable_]:
    """Register a read-only probe under ``name``."""
    def deco(fn: Callable_) -> Callable_:
        _probes[name] = fn
        return fn
    return deco


def action(name: str) -> Callable[[Callable_], Callable_]:
    """Register an idempotent action under ``name``."""
    def deco(fn: Callable_) -> Callable_:
        _actions[name] = fn
        return fn
    return deco


def _load_builtins() -> None:
    for module in BUILTIN_MODULES:
        importlib.import_module(module)


def get_probe(name: str) -> Callable_:
    _load_builtins()
    return _lookup(_probes, name, "probe")


def get_action(name: str) -> Callable_:
    _load_builtins()
    return _lookup(_actions, name, "action")


def known_probes() -> list[str]:
    _load_builtins()
    return sorted(_probes)


def known_actions() -> list[str]:
    _load_builtins()
    return sorted(_actions)


def _lookup(table: dict[str, Callable_], name: str, kind: str) -> Callable_:
    try:
        return table[name]
    except KeyError:
        raise ConfigError(
            f"unknown {kind} '{name}'",
            hint=f"known {kind}s: {', '.join(sorted(table)) or 'none'}",
        ) from None


def call(fn: Callable_, ctx: StepContext, args: dict[str, Any]) -> dict[str, Any]:
    """Call a probe/action with ``ctx`` and ``args``; a wrong argument is a ConfigError
    naming the accepted ones, not a TypeError from deep inside."""
    sig = inspect.signature(fn)
    params = [p for p in sig.parameters.values() if p.name != "ctx"]
    accepted = {p.name for p in params}
    takes_kwargs = any(p.kind is p.VAR_KEYWORD for p in params)
    extra = set(args) - accepted
    missing = [
        p.name for p in params
        if p.default is p.empty and p.kind is not p.VAR_KEYWORD and p.name not in args
    ]
    if (extra and not takes_kwargs) or missing:
        parts = []
        if extra and not takes_kwargs:
            parts.append(f"unexpected args {', '.join(sorted(extra))}")
        if missing:
            parts.append(f"missing args {', '.join(missing)}")
        raise ConfigError(
            f"{fn.__module__}.{fn.__name__}: {'; '.join(parts)}",
            hint=f"it takes: {', '.join(sorted(accepted)) or 'no args'}",
        )
    result = fn(ctx, **args)
    if not isinstance(result, dict):
        raise TypeError(f"{fn.__name__} returned {type(result).__name__}, expected a dict")
    return result
