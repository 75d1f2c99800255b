"""RB-DR-005 on the real lab, under a canary writing through db.lab.internal
that re-reads its credentials from Secrets Manager when a connection fails (what a
well-behaved client of a rotated secret does).

- `key-compromise --key db-credentials`: a session held with the old password on
  every db node is ended; the old password is refused by both roles on every db
  node (tried here too), the new one works, the app takes a write through DNS,
  every region holds one current version and the old one keeps no label; the
  exposure window and the canary's failed writes are in the report.
- `key-compromise --key ssh`: every host refuses the old key and takes the new one
  (fresh ssh connections, tried here too); the revoked private key is deleted.
- `rotate-keys --key db-credentials` after it: Ansible reaches every db and app
  host with the new SSH key, and the canary sees no failed write.
- Refused with nothing changed: an unknown key, --all or --allow-partial with no
  terminal and no --yes (exit 2), a region's Secrets Manager down (preflight), a
  second run while one holds the lock. A run killed (SIGKILL) while it sets the
  database passwords completes with --resume: one current version per region.
- With eu-west's Secrets Manager down and --allow-partial approved: rotated in
  us-east and ap-south, the old password refused on every db node, eu-west's copy
  untouched and named in a decision as left on the old value.
- No run's output, journal, report or artifacts holds an old or new password.

Leaves the lab on the rotated credentials (every consumer follows Secrets
Manager, so later tests are unaffected) and two more key backups.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from drkit.checks.rotation import try_login
from drkit.errors import ExitCode
from drkit.lab.canary import Canary as Writer
from drkit.lab.canary import CanaryConfig
from tests.lab.runs import (
    PROJECT,
    RATE,
    RUNS,
    drkit,
    journal,
    kill_when,
    lab_db_nodes,
    result_of,
    started_after,
    wait,
)

pytestmark = [pytest.mark.lab, pytest.mark.slow]

SECRET = "drkit/lab/REGION/db-credentials"


def _credentials(environment) -> dict:
    from drkit.keys.sources import read_secret

    return json.loads(read_secret(environment, SECRET)[0])


class FollowingCanary:
    """The lab canary in a thread, its credentials re-read (at most twice a second)
    on every reconnect."""

    def __init__(self, environment, out: Path) -> None:
        self.environment, self.out, self.acks = environment, out, 0
        self._cached: tuple[float, tuple[str, str]] = (0.0, ("", ""))
        creds = _credentials(environment)
        dns = environment.settings["dns"]
        config = CanaryConfig(name=f"db.{dns['zone']}", out=out, rate=RATE, duration_s=None,
                              resolver=dns["resolver"], dbname=creds.get("dbname", "app"),
                              credentials=self._read)
        self.writer = Writer(config, on_event=self._on_event)
        self.thread = threading.Thread(target=self.writer.run, daemon=True)

    def _read(self) -> tuple[str, str]:
        at, value = self._cached
        if time.monotonic() - at > 0.5:
            creds = _credentials(self.environment)
            value = (creds["username"], creds["password"])
            self._cached = (time.monotonic(), value)
        return value

    def _on_event(self, kind: str, record: dict) -> None:
        self.acks += kind == "ack"

    def __enter__(self) -> FollowingCanary:
        self.thread.start()
        wait("the canary's first writes", lambda: self.acks >= RATE, 60)
        return self

    def __exit__(self, *exc: object) -> None:
        target = self.acks + int(RATE)
        wait("the canary writing after the run", lambda: self.acks >= target, 60)
        self.writer.stop()
        self.thread.join(timeout=30)

    def failures(self) -> list[dict]:
        path = self.out / "failures.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] \
            if path.exists() else []


def _region_secret(environment, region: str) -> dict:
    """The database credentials as one region's Secrets Manager holds them."""
    cloud = environment.settings["regions"][region]["cloud_region"]
    return json.loads(environment.client("secretsmanager", cloud).get_secret_value(
        SecretId=SECRET.replace("REGION", region))["SecretString"])


def _db_hosts(lab_site) -> list[str]:
    return [h["ip"] for h in lab_site.hosts(role="db")]


def _outputs(run_id: str, step: str) -> dict:
    return next(e["outputs"] for e in reversed(journal(run_id))
                if e["event"] == "step_output" and e["step"] == step)


def _run(*args: str, key: str = "db-credentials") -> tuple[str, str]:
    """A run that must succeed: its id and everything it printed."""
    started = time.monotonic()
    proc = drkit(*args, "--key", key, "--yes", "--json", timeout=600)
    printed = proc.stdout + proc.stderr
    assert proc.returncode == 0, printed[-4000:]
    run_id = result_of(proc)["run_id"]
    print(f"{args[0]}: {time.monotonic() - started:.1f} s")
    return run_id, printed


def _files_of(run_id: str) -> list[Path]:
    return [p for p in (RUNS / run_id).rglob("*") if p.is_file()]


def test_compromised_db_credentials_are_revoked_everywhere_then_rotated_without_loss(
        lab_site, lab_environment, tmp_path):
    env = lab_environment
    hosts = _db_hosts(lab_site)
    assert len(hosts) == len(lab_db_nodes())
    first = _credentials(env)
    seen = [first["password"]]
    printed = []

    # Whoever holds the stolen password is logged in on every node: ended by the run.
    held = {host: psycopg.connect(make_conninfo(host=host, user=first["username"],
                                                password=first["password"],
                                                dbname="postgres", connect_timeout="3"),
                                  autocommit=True) for host in hosts}
    with FollowingCanary(env, tmp_path / "canary-1") as canary:
        run_id, out = _run("key-compromise", "--reason", "lab drill",
                           "--canary", str(tmp_path / "canary-1"))
    printed.append(out)
    for conn in held.values():
        with pytest.raises(psycopg.OperationalError):
            conn.execute("SELECT 1")
        conn.close()
    ended = {h: f.get("sessions_ended") for h, f in _outputs(run_id, "revoke-db")["facts"].items()}
    print(f"sessions ended: {ended}")
    second = _credentials(env)
    seen.append(second["password"])
    assert second["password"] != first["password"]
    for host in hosts:  # tried here too, not only by the runbook's own check
        assert try_login(host, first["username"], first["password"]) == "refused", host
        assert try_login(host, "replicator", first["password"]) == "refused", host
        assert try_login(host, second["username"], second["password"]) == "accepted", host
    logins = _outputs(run_id, "old-refused")
    assert logins["ok"] and logins["nodes"] == len(lab_db_nodes())
    versions = _outputs(run_id, "stage")["postgres_version"]
    for region, cloud in ((r, s["cloud_region"]) for r, s in env.regions.items()):
        stages = env.client("secretsmanager", cloud).describe_secret(
            SecretId=SECRET.replace("REGION", region))["VersionIdsToStages"]
        assert [v for v, s in stages.items() if "AWSCURRENT" in s] == [versions], region
        assert not [v for v, s in stages.items() if v != versions and s], stages
    promoted = _outputs(run_id, "promote")
    impact = _outputs(run_id, "impact")
    report = (RUNS / run_id / "report.md").read_text()
    assert "exposure window" in report and "canary:" in report
    print(f"exposure {promoted['exposure_s']} s; canary {impact['summary']}")
    assert impact["failed_writes"] == len([f for f in canary.failures()
                                           if f["t"] >= _started(run_id)])
    assert _outputs(run_id, "smoke")["ok"]

    # The SSH key Ansible uses: the old one can no longer log in anywhere...
    from drkit.keys import ssh
    from drkit.keys.sources import expand

    key_file = expand("${DRKIT_LAB_DIR:-.drkit/lab}/ssh/id_ed25519", PROJECT)
    old_key = tmp_path / "old_id_ed25519"
    old_key.write_bytes(key_file.read_bytes())
    old_key.chmod(0o600)
    ssh_id, out = _run("key-compromise", key="ssh")
    printed.append(out)
    all_hosts = [h["ip"] for h in lab_site.hosts()]
    assert len(all_hosts) >= 5
    for host in all_hosts:
        assert ssh.try_login(old_key, host) == "refused", host
        assert ssh.try_login(key_file, host) == "accepted", host
    assert _outputs(ssh_id, "ssh-refused")["hosts"] == len(all_hosts)
    assert not ssh.revoked_key(key_file).exists()
    secrets_seen = [old_key.read_text().strip(), key_file.read_text().strip()]

    # ...and the next run reaches every db and app host with the new one (Ansible),
    # a planned rotation that no canary write notices.
    with FollowingCanary(env, tmp_path / "canary-2") as canary:
        planned_id, out = _run("rotate-keys", "--canary", str(tmp_path / "canary-2"))
    printed.append(out)
    third = _credentials(env)
    seen.append(third["password"])
    assert third["password"] != second["password"]
    assert canary.failures() == [], canary.failures()[:3]
    assert _outputs(planned_id, "impact")["failed_writes"] == 0
    for host in hosts:
        assert try_login(host, second["username"], second["password"]) == "refused", host

    # The leak grep: no password, old or new, in anything these runs wrote or printed.
    files = (_files_of(run_id) + _files_of(ssh_id) + _files_of(planned_id)
             + list(tmp_path.rglob("*.json*")))
    seen += [line for key in secrets_seen for line in key.splitlines()[1:-1]]
    for value in seen:
        assert all(value not in text for text in printed)
        leaked = [str(p) for p in files if value.encode() in p.read_bytes()]
        assert not leaked, f"a password is in {leaked}"


def _started(run_id: str) -> float:
    from drkit.journal import parse_ts

    return parse_ts(journal(run_id)[0]["ts"]).timestamp()


def test_refusals_change_nothing_and_a_killed_rotation_resumes_to_one_version(
        lab_site, lab_environment):
    """Secrets Manager down in eu-west: refused by the preflight, nothing revoked;
    with --allow-partial (approved), rotated in us-east and ap-south, eu-west named
    as left on the old value.
    A second run while one holds the lock: refused. A run killed with SIGKILL while
    it sets the new database passwords: --resume completes it, one current version
    per region, every app host healthy on it, the old password refused."""
    env = lab_environment
    before = _credentials(env)

    # Bad input, refused (exit 2) before anything runs: an unknown key; --all or
    # --allow-partial with no terminal to approve them and no --yes.
    for args, said in ((["--key", "no-such-key"], "no-such-key"),
                       (["--all"], "--all needs an approval"),
                       (["--key", "db-credentials", "--allow-partial"],
                        "--allow-partial needs an approval")):
        proc = drkit("key-compromise", *args)
        out = proc.stdout + proc.stderr
        assert proc.returncode == ExitCode.BAD_INPUT, (args, out[-2000:])
        assert said in out, (args, out[-2000:])
    assert _credentials(env) == before

    assert drkit("lab.chaos", "api-outage", "--region", "eu-west", "--service",
                 "secretsmanager").returncode == 0
    try:
        proc = drkit("key-compromise", "--key", "db-credentials", "--yes")
        said = proc.stdout + proc.stderr
        assert proc.returncode == ExitCode.PREFLIGHT_FAILED, said[-3000:]
        assert "Secrets Manager does not answer in eu-west" in said and "--allow-partial" in said
        assert _credentials(env) == before
        host = _db_hosts(lab_site)[0]
        assert try_login(host, before["username"], before["password"]) == "accepted"

        # Approved: rotated where Secrets Manager answers, eu-west named as left
        # on the old value (its app host no longer reaches the database).
        partial, printed = _run("key-compromise", "--allow-partial")
    finally:
        assert drkit("lab.chaos", "restore", "--region", "eu-west").returncode == 0
    rotated = _credentials(env)
    assert rotated["password"] != before["password"]
    assert _region_secret(env, "eu-west") == before
    assert _region_secret(env, "ap-south") == rotated
    for host in _db_hosts(lab_site):
        assert try_login(host, before["username"], before["password"]) == "refused"
    left = [e["text"] for e in journal(partial) if e["event"] == "decision"
            and e["text"].startswith("consumers-on-it: left on the old value")]
    assert len(left) == 1 and "eu-west" in left[0] and "us-east" not in left[0], left
    assert before["password"] not in printed and rotated["password"] not in printed
    before = rotated

    second: dict = {}

    def moment(run_id: str, since: int) -> bool:
        if "rc" not in second and started_after(run_id, "stage", since):
            other = drkit("rotate-keys", "--key", "db-credentials", "--yes")
            second.update(rc=other.returncode, said=other.stdout + other.stderr)
        return started_after(run_id, "revoke-db", since)

    run_id = kill_when(["key-compromise", "--key", "db-credentials", "--yes", "--json"],
                       None, "the database passwords being set", moment, delay=2.0)
    assert second["rc"] == ExitCode.LOCK_HELD, second["said"][-2000:]
    assert "lock held by" in second["said"]

    started = time.monotonic()
    proc = drkit("key-compromise", "--resume", run_id, "--yes", "--json", timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    print(f"resume: {time.monotonic() - started:.1f} s")
    assert _outputs(run_id, "one-version")["ok"]
    assert _outputs(run_id, "consumers-on-it")["ok"]
    after = _credentials(env)
    assert after["password"] != before["password"]
    for host in _db_hosts(lab_site):
        assert try_login(host, before["username"], before["password"]) == "refused"
        assert try_login(host, after["username"], after["password"]) == "accepted"


def test_an_isolated_app_host_answers_only_the_bastion_and_the_service_keeps_serving(lab_site):
    """--isolate: the host's volume is snapshotted (the report lists it), it leaves
    app., and the lab's security groups make it answer nothing but the bastion's
    ssh; the other hosts go on serving, and the rotation leaves it alone."""
    from drkit.checks.http import request
    from drkit.lab.processes import port_open

    app_hosts = lab_site.hosts(role="app", dr_region="us-east")
    victim, other = app_hosts[0], app_hosts[1]
    db = lab_site.host(role="db", dr_region="eu-west")
    for host, says in ((db["ip"], "a db node"), ("10.99.9.9", "no running host matches")):
        proc = drkit("key-compromise", "--key", "db-credentials", "--isolate", host, "--yes")
        assert proc.returncode == ExitCode.BAD_INPUT and says in proc.stderr, proc.stderr
    run_id, _ = _run("key-compromise", "--isolate", victim["instance_id"])

    assert port_open(victim["ip"], 22, timeout=2.0), "the bastion lost ssh to the isolated host"
    assert not port_open(victim["ip"], 8080, timeout=2.0), "the isolated host's app still answers"
    probe = lab_site.ssh(other["ip"], f"timeout 3 bash -c 'echo > /dev/tcp/{victim['ip']}/22' "
                                      f"|| timeout 3 bash -c 'echo > /dev/tcp/{victim['ip']}/8080'"
                                      " || echo cut-off")
    assert "cut-off" in probe.stdout, (probe.stdout, probe.stderr)
    report = (RUNS / run_id / "report.md").read_text()
    assert "forensic snapshots snap-" in report and victim["instance_id"] in report
    for _ in range(5):
        got = request("http://app.lab.internal:8080/health", resolver="10.77.0.2")
        assert got["status"] == 200 and got["address"] != victim["ip"], got

    # Back to the baseline once the investigation is done: the quarantined host is
    # replaced through its group (--force; its replacement joins app.), the
    # quarantine group stays for the next one.
    auto = drkit("replace-node", "--auto", "--yes")
    assert auto.returncode == ExitCode.BAD_INPUT and "every node is healthy" in auto.stderr, \
        auto.stderr  # a quarantined host is evidence: --auto never terminates it
    proc = drkit("replace-node", "--host", victim["instance_id"], "--force", "--yes", "--json",
                 timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    answer = request("http://app.lab.internal:8080/health", resolver="10.77.0.2")
    assert answer["status"] == 200, answer
