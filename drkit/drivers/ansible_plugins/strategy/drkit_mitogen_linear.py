"""Mitogen's linear strategy, with the installed collections listed once per playbook
and no CPU pinning.

Collections listed once. For every task whose module comes from a collection
(community.postgresql, amazon.aws, ...), Mitogen's planner lists the directory of
every installed collection (~100 with the ``ansible`` package, each from its
metadata files), and it does so in the worker process Ansible forks for the task,
so the answer dies with the worker. Measured on localhost, idle: a collection
module task took ~0.19-0.25 s against ~0.09 s for a builtin one (docs/internals.md,
"Ansible speed"). The list cannot change while a playbook runs, so the main
process lists them once before the first task and every forked worker inherits
the answer.

No CPU pinning. Mitogen pins its processes to CPUs: on a machine with 2 or 3 CPUs
its connection multiplexer gets CPU 0 and Ansible's main process, every forked
worker and every process they start (ssh, local module interpreters) share CPU 1,
however busy CPU 1 is and however idle CPU 0. A bastion that runs a recovery is
rarely idle (the lab's hosts, PostgreSQL and the canary share it here), so a
playbook waited for one CPU while the other had time to spare: 100 ``set_fact``
tasks on localhost took 6.2-10.4 s pinned and 3.4-4.6 s unpinned with the lab
busy (docs/internals.md, "Ansible speed"). The scheduler places them instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import ansible.collections.list as collection_list
import ansible_mitogen.affinity
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

# Mitogen's base Policy does nothing; its callers look the policy up at each call.
ansible_mitogen.affinity.policy = ansible_mitogen.affinity.Policy()

Base = ansible_mitogen.loaders.strategy_loader.get("linear", class_only=True)


class StrategyModule(ansible_mitogen.strategy.StrategyMixin, Base):  # type: ignore[misc,valid-type]
    def run(self, *args: Any, **kwargs: Any) -> Any:
        global _all_dirs
        if _all_dirs is None:
            _all_dirs = list(_list_collection_dirs())
        return super().run(*args, **kwargs)
