"""The drivers against the real tools: terraform and ansible on localhost only.

Each test works on copies under tmp_path, so nothing lands in the repository.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from drkit.drivers.ansible import run_playbook
from drkit.drivers.reaper import RUN_TOKEN_ENV, carrying
from drkit.drivers.terraform import SENSITIVE, Terraform
from drkit.drivers.tfconfig import find_provider_mirror, write_cli_config

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "examples" / "demo"
INVENTORY = DEMO / "inventory" / "hosts.yml"


def _module(tmp_path: Path, main_tf: str | None = None) -> Path:
    """The demo module copied to tmp_path, or a module with the given main.tf."""
    module = tmp_path / "module"
    if main_tf is None:
        # Only the sources: a demo run from the checkout may have left state there.
        shutil.copytree(DEMO / "terraform", module, ignore=shutil.ignore_patterns(
            "*.tfstate", "*.tfstate.*", "terraform.tfstate.d", ".terraform*"))
    else:
        module.mkdir()
        (module / "main.tf").write_text(main_tf)
    return module


def _terraform(tmp_path: Path, module: Path, events: list[dict] | None = None) -> Terraform:
    cli_config = write_cli_config(tmp_path / "terraformrc", mirror=find_provider_mirror(),
                                  plugin_cache=tmp_path / "plugin-cache")
    return Terraform(module, data_dir=tmp_path / "data", log_dir=tmp_path / "logs",
                     cli_config=cli_config,
                     on_event=events.append if events is not None else None)


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")} if root.exists() else set()


# --- terraform ------------------------------------------------------------------


def test_plan_changes_nothing_and_lists_the_resource(tmp_path: Path):
    module = _module(tmp_path)
    before = _files(module)
    events: list[dict] = []
    tf = _terraform(tmp_path, module, events)
    out_dir = tmp_path / "out"

    assert tf.init().ok
    plan = tf.plan(plan_file=tmp_path / "run" / "tfplan", vars={"out_dir": str(out_dir)})

    assert plan.ok and plan.rc == 2
    assert plan.summary == "plan: 1 to add, 0 to change, 0 to destroy"
    assert plan.changes == [{"address": "terraform_data.marker", "action": "create"}]
    assert not out_dir.exists()
    assert _files(module) == before
    assert not list(tmp_path.rglob("*.tfstate"))
    assert {"planned_change", "change_summary"} <= {e["type"] for e in events}
    assert (tmp_path / "logs" / "plan.jsonl").is_file()
    # Variable values went through a temporary file, which is gone.
    assert not list((tmp_path / "data").glob("*.tfvars.json"))


def test_apply_creates_the_file_and_returns_outputs(tmp_path: Path):
    module = _module(tmp_path)
    events: list[dict] = []
    tf = _terraform(tmp_path, module, events)
    out_dir = tmp_path / "out"
    plan_file = tmp_path / "run" / "tfplan"

    assert tf.init().ok
    assert tf.select_workspace("drill").ok
    assert tf.plan(plan_file=plan_file, vars={"out_dir": str(out_dir),
                                              "message": "restored"}).ok
    applied = tf.apply(plan_file)

    assert applied.ok, applied.tail
    assert applied.summary == "apply: 1 added, 0 changed, 0 destroyed"
    assert applied.changes == [{"address": "terraform_data.marker", "action": "create"}]
    assert (out_dir / "terraform.txt").read_text() == "restored\n"
    assert applied.outputs["marker_path"] == str(out_dir / "terraform.txt")
    assert {"apply_start", "apply_complete"} <= {e["type"] for e in events}

    outputs = tf.output()
    assert outputs.ok
    assert outputs.outputs["marker_path"] == str(out_dir / "terraform.txt")
    assert outputs.outputs["marker_id"] == applied.outputs["marker_id"]

    # Planning again finds nothing to do.
    again = tf.plan(plan_file=plan_file, vars={"out_dir": str(out_dir), "message": "restored"})
    assert again.ok and again.rc == 0 and again.changes == []

    # Another directory replaces the resource, so the file is written there too.
    elsewhere = tmp_path / "elsewhere"
    moved = tf.plan(plan_file=plan_file, vars={"out_dir": str(elsewhere)})
    assert moved.changes == [{"address": "terraform_data.marker", "action": "replace"}]
    assert tf.apply(plan_file).ok
    assert (elsewhere / "terraform.txt").read_text() == "written by terraform\n"


def test_apply_now_plans_and_applies_in_one_run(tmp_path: Path):
    module = _module(tmp_path)
    tf = _terraform(tmp_path, module)
    out_dir = tmp_path / "out"
    assert tf.init().ok

    applied = tf.apply_now(vars={"out_dir": str(out_dir), "message": "at once"})

    assert applied.ok, applied.tail
    assert applied.summary == "apply: 1 added, 0 changed, 0 destroyed"
    assert applied.changes == [{"address": "terraform_data.marker", "action": "create"}]
    assert (out_dir / "terraform.txt").read_text() == "at once\n"
    assert applied.outputs["marker_path"] == str(out_dir / "terraform.txt")
    assert not list((tmp_path / "data").glob("*.tfvars.json"))
    again = tf.apply_now(vars={"out_dir": str(out_dir), "message": "at once"})
    assert again.ok and again.summary == "apply: 0 added, 0 changed, 0 destroyed"


FAILING_TF = """
resource "terraform_data" "broken" {
  provisioner "local-exec" {
    command = "echo promoting the replica; echo 'replica not found' >&2; exit 3"
  }
}
"""


def test_failing_apply_returns_the_error_without_raising(tmp_path: Path):
    events: list[dict] = []
    tf = _terraform(tmp_path, _module(tmp_path, FAILING_TF), events)
    assert tf.init().ok
    assert tf.plan(plan_file=tmp_path / "tfplan").ok

    result = tf.apply(tmp_path / "tfplan")

    assert not result.ok and result.rc == 1
    assert result.summary.startswith("apply failed: Error: local-exec provisioner error")
    tail = "\n".join(result.tail)
    assert "exit status 3" in tail
    assert "replica not found" in tail
    assert "apply_errored" in {e["type"] for e in events}


def test_invalid_variable_fails_the_plan_with_the_validation_message(tmp_path: Path):
    tf = _terraform(tmp_path, _module(tmp_path))
    assert tf.init().ok
    result = tf.plan(plan_file=tmp_path / "tfplan", vars={"out_dir": "relative/dir"})
    assert not result.ok and result.rc == 1
    assert "out_dir must be an absolute path." in result.tail


def test_timeout_kills_terraform_and_says_so(tmp_path: Path):
    slow = 'resource "terraform_data" "slow" {\n' \
           '  provisioner "local-exec" { command = "sleep 60" }\n}\n'
    tf = _terraform(tmp_path, _module(tmp_path, slow))
    assert tf.init().ok
    assert tf.plan(plan_file=tmp_path / "tfplan").ok

    result = tf.apply(tmp_path / "tfplan", timeout=2)

    assert not result.ok
    assert result.summary == "apply: timed out after 2s"


def test_sensitive_outputs_are_never_returned_or_logged(tmp_path: Path):
    module = _module(tmp_path, 'output "db_password" {\n  value     = "hunter2"\n'
                               '  sensitive = true\n}\noutput "region" {\n'
                               '  value = "eu-west"\n}\n')
    tf = _terraform(tmp_path, module)
    assert tf.init().ok
    assert tf.plan(plan_file=tmp_path / "run" / "tfplan").ok
    applied = tf.apply(tmp_path / "run" / "tfplan")
    outputs = tf.output()

    assert applied.outputs == {"db_password": SENSITIVE, "region": "eu-west"}
    assert outputs.outputs == {"db_password": SENSITIVE, "region": "eu-west"}
    for log in (tmp_path / "logs").iterdir():
        assert "hunter2" not in log.read_text(), log


def test_missing_module_dir_is_a_failed_result(tmp_path: Path):
    tf = _terraform(tmp_path, tmp_path / "no-such-module")
    result = tf.init()
    assert not result.ok
    assert result.tail


# --- ansible --------------------------------------------------------------------


def test_check_mode_reports_what_would_change_and_writes_nothing(tmp_path: Path):
    events: list[dict] = []
    out_dir = tmp_path / "out"

    result = run_playbook(DEMO / "playbook.yml", inventory=INVENTORY,
                          private_data_dir=tmp_path / "pdd", check=True, diff=True,
                          extra_vars={"demo_out_dir": str(out_dir)}, on_event=events.append)

    assert result.ok, result.tail
    assert not out_dir.exists()
    changed = {c["task"] for c in result.changes}
    assert "Write the marker file" in changed
    write = next(c for c in result.changes if c["task"] == "Write the marker file")
    assert write["host"] == "localhost" and "diff" in write
    assert result.summary.endswith("(check mode)")
    types = [e["type"] for e in events]
    assert types[0] == "play_start"
    assert {"task_start", "task_ok", "task_changed"} <= set(types)


def test_playbook_writes_the_file_and_publishes_outputs(tmp_path: Path):
    out_dir = tmp_path / "out"
    pdd = tmp_path / "pdd"

    result = run_playbook(DEMO / "playbook.yml", inventory=INVENTORY, private_data_dir=pdd,
                          extra_vars={"demo_out_dir": str(out_dir),
                                      "unused_secret": "hunter2"})

    assert result.ok, result.tail
    assert result.rc == 0
    assert (out_dir / "ansible.txt").read_text() == "written by ansible\n"
    assert result.summary == "playbook: ok=4 changed=2 failed=0"
    assert result.outputs["stats"]["localhost"]["changed"] == 2
    assert result.outputs["facts"] == {
        "localhost": {"marker_path": str(out_dir / "ansible.txt")}}
    [play] = result.outputs["plays"]
    assert play["name"] == "Demo - write a marker file on localhost"
    assert play["duration_s"] > 0
    assert result.log_path is not None and result.log_path.is_file()
    # The extra vars file is gone: the run directory holds no secrets.
    assert not (pdd / "env" / "extravars").exists()
    for path in pdd.rglob("*"):
        if path.is_file():
            assert "hunter2" not in path.read_text(errors="replace"), path

    again = run_playbook(DEMO / "playbook.yml", inventory=INVENTORY, private_data_dir=pdd,
                         extra_vars={"demo_out_dir": str(out_dir)})
    assert again.ok and again.changes == []


FAILING_PLAYBOOK = """
- name: Promote
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Before
      ansible.builtin.debug: {msg: starting}
    - name: Promote the replica
      ansible.builtin.command:
        argv: [/bin/sh, -c, "echo 'pg_ctl: server is not in standby mode' >&2; exit 1"]
      changed_when: true
    - name: Never reached
      ansible.builtin.debug: {msg: unreachable}
"""


def test_failing_playbook_returns_the_failed_task(tmp_path: Path):
    playbook = tmp_path / "promote.yml"
    playbook.write_text(FAILING_PLAYBOOK)
    events: list[dict] = []

    result = run_playbook(playbook, inventory=INVENTORY, private_data_dir=tmp_path / "pdd",
                          on_event=events.append)

    assert not result.ok and result.rc != 0
    assert result.summary == "playbook: ok=1 changed=0 failed=1"
    assert result.tail[0] == ("failed: localhost | Promote the replica | non-zero return "
                              "code (rc=1): pg_ctl: server is not in standby mode")
    assert any(e["type"] == "task_failed" and e["task"] == "Promote the replica"
               for e in events)
    assert not any(e.get("task") == "Never reached" for e in events)


def test_collection_modules_run_under_drkits_strategy_task_after_task(tmp_path: Path):
    """The strategy lists the installed collections once, in the main process; each
    task's forked worker still finds its collection module (and the next one)."""
    ini = tmp_path / "settings.ini"
    playbook = tmp_path / "collections.yml"
    playbook.write_text(
        "- hosts: localhost\n  connection: local\n  gather_facts: false\n  tasks:\n"
        + "".join(f"    - community.general.ini_file: {{path: {ini}, section: s, "
                  f"option: o{i}, value: '{i}'}}\n" for i in range(3))
        + f"    - community.general.read_csv: {{path: {ini}, fieldnames: [line]}}\n"
          "      register: lines\n"
          "    - ansible.builtin.set_stats: {data: {drkit_outputs: {lines: '{{ lines.list "
          "| length }}'}}}\n")
    result = run_playbook(playbook, inventory=INVENTORY, private_data_dir=tmp_path / "pdd")
    assert result.ok, result.tail
    assert ini.read_text().split() == ["[s]", "o0", "=", "0", "o1", "=", "1", "o2", "=", "2"]
    assert result.outputs["facts"]["localhost"]["lines"] == 4


def test_a_playbooks_commands_may_run_on_every_cpu_drkit_may_use(tmp_path: Path):
    """Mitogen would pin Ansible's workers and what they start to one CPU (on 2 or 3
    CPUs); drkit's strategy leaves placement to the scheduler."""
    playbook = tmp_path / "cpus.yml"
    playbook.write_text(
        "- hosts: localhost\n  connection: local\n  gather_facts: false\n  tasks:\n"
        "    - ansible.builtin.command: grep Cpus_allowed_list /proc/self/status\n"
        "      register: cpus\n      changed_when: false\n"
        "    - ansible.builtin.set_stats: {data: {drkit_outputs: {cpus: "
        "'{{ cpus.stdout.split()[-1] }}'}}}\n")
    result = run_playbook(playbook, inventory=INVENTORY, private_data_dir=tmp_path / "pdd")
    assert result.ok, result.tail
    allowed = Path("/proc/self/status").read_text().split("Cpus_allowed_list:")[1].split()[0]
    assert result.outputs["facts"]["localhost"]["cpus"] == allowed


def test_playbook_timeout_is_a_failed_result(tmp_path: Path):
    playbook = tmp_path / "slow.yml"
    playbook.write_text("- hosts: localhost\n  connection: local\n  gather_facts: false\n"
                        "  tasks:\n    - name: Wait\n      ansible.builtin.command: sleep 60\n"
                        "      changed_when: false\n")
    result = run_playbook(playbook, inventory=INVENTORY, private_data_dir=tmp_path / "pdd",
                          timeout=2)
    assert not result.ok
    assert result.summary == "playbook: timed out after 2s"
    # The killed play still has a start and a duration (up to its last event).
    assert [p["name"] for p in result.outputs["plays"]] == ["localhost"]
    # Nothing of the run is left behind (Mitogen's connection process has a session
    # of its own, out of reach of the runner's process-group kill).
    left = [p.name for p in Path("/proc").iterdir() if p.name.isdigit()
            and str(playbook).encode() in _cmdline(p)]
    assert left == []


def test_a_drkit_killed_mid_playbook_leaves_no_process_of_it_behind(tmp_path: Path):
    """SIGKILL to drkit's process group: the playbook's processes are in sessions
    of their own, ignore SIGHUP, and would go on acting on the hosts; the env
    files, deleted when a run ends, would stay."""
    playbook = tmp_path / "slow.yml"
    playbook.write_text("- hosts: localhost\n  connection: local\n  gather_facts: false\n"
                        "  tasks:\n    - name: Wait\n      ansible.builtin.command: sleep 60\n"
                        "      changed_when: false\n")
    pdd = tmp_path / "pdd"
    script = (f"from pathlib import Path\nfrom drkit.drivers.ansible import run_playbook\n"
              f"run_playbook(Path({str(playbook)!r}), inventory={str(INVENTORY)!r}, "
              f"private_data_dir=Path({str(pdd)!r}))\n")
    drkit = subprocess.Popen([sys.executable, "-c", script], start_new_session=True)
    try:
        token = _wait_for(lambda: _running_token(pdd, "sleep"), 60, "the playbook's task")
    finally:
        os.killpg(drkit.pid, signal.SIGKILL)
        drkit.wait()
    assert _wait_for(lambda: not carrying(token), 10, "the playbook's processes to go")
    # The runner's env files (they may hold credentials) went with them.
    assert _wait_for(lambda: not list((pdd / "env").iterdir()), 10, "the env files to go")


def _running_token(pdd: Path, command: str) -> str | None:
    """The token of the playbook run in ``pdd`` once a process running ``command``
    carries it."""
    try:
        token = json.loads((pdd / "env" / "envvars").read_text())[RUN_TOKEN_ENV]
    except (OSError, ValueError, KeyError):
        return None
    running = any(_cmdline(Path(f"/proc/{pid}")).split(b"\0")[0] == command.encode()
                  for pid in carrying(token))
    return token if running else None


def _wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")


def _cmdline(proc: Path) -> bytes:
    try:
        return (proc / "cmdline").read_bytes()
    except OSError:
        return b""


def test_missing_playbook_is_a_failed_result_that_says_so(tmp_path: Path):
    result = run_playbook(tmp_path / "nope.yml", inventory=INVENTORY,
                          private_data_dir=tmp_path / "pdd")
    assert not result.ok
    assert result.summary.endswith("nope.yml could not be found")


def test_broken_playbook_yaml_is_reported_with_its_location(tmp_path: Path):
    playbook = tmp_path / "broken.yml"
    playbook.write_text("- hosts: localhost\n  tasks:\n    - ansible.builtin.command: a: b: c\n")
    result = run_playbook(playbook, inventory=INVENTORY, private_data_dir=tmp_path / "pdd")
    assert not result.ok
    assert result.summary.startswith("playbook failed (rc=4)")
    assert any(str(playbook) in line for line in result.tail)


def test_init_is_reused_until_an_input_changes_and_a_stale_data_dir_heals(tmp_path: Path):
    module = _module(tmp_path)
    tf = _terraform(tmp_path, module)
    assert tf.init().summary == "init: ok"
    assert tf.init().summary == "init: up to date (reused)"

    # A module block added: the root module's files changed, so init runs again.
    (module / "child").mkdir()
    (module / "child" / "main.tf").write_text('output "ok" { value = true }\n')
    (module / "child.tf").write_text('module "child" {\n  source = "./child"\n}\n')
    assert tf.init().summary == "init: ok"

    # The data dir lost its modules behind drkit's back: the reused init is not
    # enough, terraform asks for one, and ensure_init runs it and applies.
    shutil.rmtree(tmp_path / "data" / "modules")
    assert tf.init().summary == "init: up to date (reused)"
    out_dir = tmp_path / "out"
    applied = tf.ensure_init(lambda: tf.apply_now(vars={"out_dir": str(out_dir)}))
    assert applied.ok, applied.tail
    assert (out_dir / "terraform.txt").exists()


SLOW_TF = """
variable "out_dir" { type = string }
resource "terraform_data" "slow" {
  provisioner "local-exec" {
    command = "sleep 3; echo applied > ${var.out_dir}/finished"
  }
}
"""


def test_an_apply_outlives_a_killed_drkit_and_the_resumed_apply_waits_for_it(tmp_path: Path):
    """kill -9 of drkit mid-apply: terraform (its own session, writing to a file,
    not a pipe) finishes the apply and unlocks the state; the resumed apply waits
    for it instead of racing it for the lock, and its output is kept apart."""
    module = _module(tmp_path, SLOW_TF)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    driver = (f"import sys; from pathlib import Path; sys.path.insert(0, {str(ROOT)!r})\n"
              "from tests.unit.test_drivers_real import _terraform\n"
              f"tf = _terraform(Path({str(tmp_path)!r}), Path({str(module)!r}))\n"
              "assert tf.init().ok\n"
              f"tf.apply_now(vars={{'out_dir': {str(out_dir)!r}}})\n")
    drkit = subprocess.Popen([sys.executable, "-c", driver], start_new_session=True)
    log = tmp_path / "logs" / "apply.jsonl"
    try:
        deadline = time.monotonic() + 60
        while not (log.exists() and '"apply_start"' in log.read_text()):
            assert drkit.poll() is None and time.monotonic() < deadline, "no apply started"
            time.sleep(0.05)
    finally:
        os.killpg(drkit.pid, signal.SIGKILL)
        drkit.wait()
    assert not (out_dir / "finished").exists()  # the survivor is still applying

    events: list[dict] = []
    again = _terraform(tmp_path, module, events).apply_now(vars={"out_dir": str(out_dir)})

    assert [e["@message"] for e in events if e["type"] == "drkit_wait"] == [
        "waiting for terraform apply (pid {}), left running by an interrupted run, to finish"
        .format(*[p.name.split(".")[1] for p in (tmp_path / "logs").glob("apply.*.out")])]
    assert (out_dir / "finished").read_text() == "applied\n"
    assert not (module / ".terraform.tfstate.lock.info").exists()
    assert again.ok and again.summary == "apply: 0 added, 0 changed, 0 destroyed", again.tail
    # The survivor's own output stays for the post-mortem, whole and apart.
    [kept] = (tmp_path / "logs").glob("apply.*.out")
    assert '"type":"apply_complete"' in kept.read_text()
    assert not (tmp_path / "data" / "drkit-running.json").exists()


def test_a_survivor_that_outlasts_the_timeout_fails_the_command_and_says_how_to_stop_it(
        tmp_path: Path):
    module = _module(tmp_path, SLOW_TF)
    tf = _terraform(tmp_path, module)
    (tmp_path / "data").mkdir()
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        tf._mark_running("apply", sleeper.pid, tmp_path / "logs" / f"apply.{sleeper.pid}.out")
        result = tf.apply_now(vars={"out_dir": str(tmp_path)}, timeout=1)
    finally:
        sleeper.kill()
        sleeper.wait()

    assert not result.ok
    assert f"stop it with `kill -TERM {sleeper.pid}`" in result.summary + "\n".join(result.tail)
    assert not (tmp_path / "out").exists()


def test_a_secret_in_drkits_environment_is_masked_in_the_runners_command_file(
        tmp_path: Path, monkeypatch):
    # ansible-runner records the whole environment in artifacts/<id>/command; a
    # PGPASSWORD there was found by the lab's secret scan (a lab reset run by a
    # test that had set it).
    monkeypatch.setenv("PGPASSWORD", "correct-horse-battery")
    pdd = tmp_path / "pdd"
    result = run_playbook(DEMO / "playbook.yml", inventory=INVENTORY, private_data_dir=pdd,
                          extra_vars={"demo_out_dir": str(tmp_path / "out")})
    assert result.ok, result.tail
    [command] = pdd.glob("artifacts/*/command")
    assert json.loads(command.read_text())["env"]["PGPASSWORD"] != "correct-horse-battery"
    for path in pdd.rglob("*"):
        if path.is_file():
            assert "correct-horse-battery" not in path.read_text(errors="replace"), path
