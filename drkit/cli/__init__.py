"""The task tree shared by ``invoke`` (tasks.py) and the ``drkit`` console script."""

from __future__ import annotations

from invoke import Collection

from drkit import __version__
from drkit.cli import (
    app,
    backup,
    compromise,
    corruption,
    db,
    dr,
    keys,
    nodes,
    readiness,
    rebuild,
    rehearse,
    runs,
    zones,
)
from drkit.cli.common import DrkitProgram

ns = Collection()
for _task in (runs.run, runs.resume, runs.runbooks, runs.show, runs.validate, runs.status,
              runs.report, dr.failover, dr.failback, nodes.replace_node, zones.zone_failover,
              rebuild.rebuild, app.app_recovery, db.db_recovery,
              backup.restore, corruption.recover_corruption, readiness.readiness,
              rehearse.history, rehearse.postmortem, compromise.key_compromise,
              compromise.rotate_keys):
    ns.add_task(_task)
ns.add_collection(backup.ns, name="backup")
ns.add_collection(keys.ns, name="keys")
ns.add_collection(rehearse.ns, name="rehearse")

try:  # the lab's tasks need the lab package; a production bastion may not ship it
    from drkit.cli import lab as _lab

    ns.add_collection(_lab.ns, name="lab")
except ImportError:  # pragma: no cover
    pass


def program() -> DrkitProgram:
    """The ``drkit`` command: the task tree, with bad command lines exiting 2."""
    return DrkitProgram(namespace=ns, version=__version__, name="drkit", binary="drkit")


def main() -> None:
    """Entry point of the ``drkit`` console script."""
    try:
        program().run()
    except BrokenPipeError:  # `drkit show RB-DR-003 | head`: the reader left, not an error
        import os
        import sys

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)
