"""Mitogen's linear strategy, with the installed collections listed once per playbook.

For every task whose module comes from a collection (community.postgresql,
amazon.aws, ...), Mitogen's planner lists the directory of every installed
collection (~100 with the ``ansible`` package, each from its metadata files),
and it does so in the worker process Ansible forks for the task, so the answer
dies with the worker. Measured on localhost, idle: a collection module task took
~0.19-0.25 s against ~0.09 s for a builtin one (docs/internals.md, "Ansible
speed"). The list cannot change while a playbook runs, so the main process lists
them once before the first task and every forked worker inherits the answer.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import ansible.collections.list as collection_list
import ansible_mitogen.loaders
import ansible_mitogen.strategy

_list_collection_dirs = collection_list.list_collection_dirs
_all_dirs: list[Any] | None = None


def _listed_once(*args: Any, **kwargs: Any) -> Iterator[Any]:
    """``list_collection_dirs()`` as first answered in this process; a call with
    arguments (a filtered listing) still goes to Ansible."""
    if args or kwargs or _all_dirs is None:
        return _list_collection_dirs(*args, **kwargs)
    return iter(_all_dirs)


collection_list.list_collection_dirs = _listed_once

Base = ansible_mitogen.loaders.strategy_loader.get("linear", class_only=True)


class StrategyModule(ansible_mitogen.strategy.StrategyMixin, Base):  # type: ignore[misc,valid-type]
    def run(self, *args: Any, **kwargs: Any) -> Any:
        global _all_dirs
        if _all_dirs is None:
            _all_dirs = list(_list_collection_dirs())
        return super().run(*args, **kwargs)
