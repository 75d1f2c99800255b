"""Backups from a standby on the real lab (RB-BK-001, issue 12): while a replica
streams, `invoke backup` copies the files from it and only starts and stops the
backup on the primary (pgBackRest's backup-standby, through the primary's TLS
server with certificates from the lab's CA); with no healthy standby it backs
up on the primary and says why.

Leaves behind: two full and two incremental backups more in each repository
(from a standby and from the primary), expired by retention as usual; the lab
in its baseline topology (primary in us-east, both replicas streaming again,
every db host's pgBackRest TLS server running with its own certificate).
"""

from __future__ import annotations

import configparser
import json

import pytest

from drkit import backups
from drkit.lab import control_plane, database
from tests.lab.runs import decisions, drkit, journal, result_of, wait

pytestmark = [pytest.mark.lab, pytest.mark.slow]

PG_CTL = "/usr/lib/postgresql/15/bin/pg_ctl"
PGDATA = "/var/lib/postgresql/15/main"


@pytest.fixture(scope="module")
def lab(lab_estate):
    from tests.lab.conftest import require_site

    require_site(lab_estate)
    return lab_estate


def backup_run(*args: str) -> tuple[str, dict]:
    """Run `drkit backup`; its run id and what its backup step reported."""
    proc = drkit("backup", *args, "--yes", "--json")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    run_id = result_of(proc)["run_id"]
    outputs = [e["outputs"] for e in journal(run_id)
               if e["event"] == "step_output" and e["step"] == "backup"]
    assert outputs, f"run {run_id} reported no backup outputs"
    facts = outputs[-1]["facts"]
    assert len(facts) == 1, facts
    return run_id, next(iter(facts.values()))


def backup_info_entries() -> dict[tuple[int, str], dict]:
    """pgBackRest's own record of every backup, read from each bucket's backup.info:
    (repo, label) -> its JSON entry (backup-standby among the options)."""
    settings = database._context().env.settings
    found = {}
    for repo in backups.repositories(settings):
        s3 = control_plane.client("s3", repo.cloud_region)
        body = s3.get_object(Bucket=repo.bucket, Key=repo.backup_info_key)["Body"].read().decode()
        parser = configparser.ConfigParser(interpolation=None, strict=False)
        parser.optionxform = str
        parser.read_string(body)
        for label, raw in parser.items("backup:current"):
            found[(repo.number, label)] = json.loads(raw)
    return found


def node_of(host: str, topo: dict) -> str:
    """The database node an inventory host (``<Name>_<instance id>``) is."""
    return next(k for k, n in topo["nodes"].items()
                if n.get("instance_id") and host.endswith(n["instance_id"]))


def test_a_backup_is_taken_from_a_streaming_standby_not_the_primary(lab):
    topo = database.topology()
    assert topo["primary_region"] == "us-east", topo
    run_id, out = backup_run("--type", "full")

    assert out["from_standby"] is True, out
    assert node_of(out["primary"], topo) == "us-east"
    source = node_of(out["source"], topo)
    assert source != "us-east"
    assert topo["nodes"][source]["role"] == "replica"
    assert [b["repo"] for b in out["backups"]] == [1, 2]
    assert all(b["from_standby"] and b["type"] == "full" for b in out["backups"])
    # pgBackRest recorded each backup as taken from a standby.
    info = backup_info_entries()
    for b in out["backups"]:
        entry = info[(b["repo"], b["label"])]
        assert entry["option-backup-standby"] is True, entry
        assert entry["backup-lsn-stop"] == b["lsn_stop"]
    assert any(d.startswith("backup: backup from standby") and out["source"] in d
               for d in decisions(run_id)), decisions(run_id)


def test_with_no_standby_streaming_the_backup_is_taken_on_the_primary_and_says_why(lab):
    topo = database.topology()
    replicas = [r for r, n in topo["nodes"].items() if n["role"] == "replica"]
    assert replicas, topo
    addresses = {r: topo["nodes"][r]["host"] for r in replicas}
    try:
        for address in addresses.values():
            stop = lab.ssh(address, f"cd / && runuser -u postgres -- {PG_CTL} stop -D {PGDATA} "
                                    "-m fast -w")
            assert stop.returncode == 0, stop.stderr
        run_id, out = backup_run("--type", "full")
    finally:
        for address in addresses.values():
            lab.ssh(address, f"cd / && runuser -u postgres -- {PG_CTL} start -D {PGDATA} "
                             f"-l {PGDATA}.log -w -t 60")
    assert out["from_standby"] is False, out
    assert out["source"] == out["primary"]
    assert node_of(out["source"], topo) == "us-east"
    info = backup_info_entries()
    for b in out["backups"]:
        assert info[(b["repo"], b["label"])]["option-backup-standby"] is False
    said = [d for d in decisions(run_id) if d.startswith("backup: backup on primary")]
    assert said and "no healthy standby" in said[0], decisions(run_id)
    assert all(out["primary"] not in part for part in said[0].split(";")[1:])
    # Baseline again: every replica streams.
    wait("the replicas to stream again", lambda: all(
        database.topology()["nodes"][r].get("streaming") for r in replicas), timeout=60)


def test_when_the_backup_from_the_standby_fails_the_primary_takes_it_and_says_why(lab):
    """The primary's TLS server cannot start (its certificate is not its key's):
    the standby's backup cannot reach the primary, and the primary backs up."""
    primary = lab.host(role="db", dr_region="us-east")["ip"]
    tls = "/var/lib/postgresql/pgbackrest/tls"
    stop_server = ("start-stop-daemon --stop --pidfile /run/pgbackrest-server.pid "
                   "--exec /usr/bin/pgbackrest --remove-pidfile --retry TERM/10/KILL/5 --oknodo")
    broken = lab.ssh(primary, f"cp -p {tls}/host.crt {tls}/host.crt.keep && "
                              f"cp -p {tls}/ca.crt {tls}/host.crt && {stop_server}")
    assert broken.returncode == 0, broken.stderr
    try:
        run_id, out = backup_run("--type", "incr")
    finally:
        # Its own certificate back; the next backup starts the server again.
        lab.ssh(primary, f"mv {tls}/host.crt.keep {tls}/host.crt && {stop_server}")
    assert out["from_standby"] is False, out
    assert out["source"] == out["primary"] and "-us-east-" in out["source"]
    assert [b["type"] for b in out["backups"]] == ["incr", "incr"]
    said = [d for d in decisions(run_id) if d.startswith("backup: backup on primary")]
    assert said and "the backup from standby" in said[0] and "failed" in said[0], decisions(run_id)
    # And the next backup is taken from the standby again.
    _, again = backup_run("--type", "incr")
    assert again["from_standby"] is True, again
