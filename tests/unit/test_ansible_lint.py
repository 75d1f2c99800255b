"""The project's ansible-lint rule no-log-secret (ansible-lint-rules/): no task
writes a secret into its results, which ansible-runner keeps in its job events
in the clear (issue 18: the login roles' passwords, carried by the loop items of
"Grant the login roles their memberships").

The whole `ansible-lint --profile production playbooks/` runs in .ci/run (~1 min);
these tests run the rule's checks directly, and ansible-lint once on a small
project with the repository's configuration, to prove the production profile
keeps the rule.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import textwrap
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
PLAYBOOKS = REPO / "playbooks"
RULES = REPO / "ansible-lint-rules"


def _load_rule() -> ModuleType:
    spec = importlib.util.spec_from_file_location("drkit_no_log_secret",
                                                  RULES / "drkit_no_log_secret.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


rule = _load_rule()


def _task_files() -> list[Path]:
    roles = PLAYBOOKS / "roles"
    return [*sorted(PLAYBOOKS.glob("*.yml")), *sorted(roles.glob("*/tasks/**/*.yml")),
            *sorted(roles.glob("*/handlers/**/*.yml"))]


def test_every_task_that_handles_a_secret_has_no_log() -> None:
    leaks = [f"{path.relative_to(REPO)}:{line}: {message}"
             for path in _task_files() for line, message in rule.file_leaks(path)]
    assert not leaks, "tasks that would write a secret to ansible-runner's job events:\n" + \
        "\n".join(leaks)


def _without_no_log(data: Any, task_name: str) -> Any:
    if isinstance(data, list):
        return [_without_no_log(item, task_name) for item in data]
    if isinstance(data, dict):
        return {k: _without_no_log(v, task_name) for k, v in data.items()
                if not (k == "no_log" and data.get("name") == task_name)}
    return data


def test_the_memberships_task_without_no_log_is_caught() -> None:
    """Issue 18: the loop label hid the password on screen, not in the events."""
    path = PLAYBOOKS / "roles" / "postgresql_primary" / "tasks" / "objects.yml"
    name = "Grant the login roles their memberships (e.g. pg_monitor for drkit's probes)"
    data = _without_no_log(yaml.safe_load(path.read_text()), name)
    leaks = [message for _, message in rule.file_leaks(path, data)]
    assert len(leaks) == 1
    assert name in leaks[0] and "loop over postgresql_primary_users" in leaks[0]


# A role whose inputs say which of them are secrets, as the project's roles do.
ROLE_FILES = {
    "defaults/main.yml": """
        app_users: []
        app_admins: [{name: root, password: changeme}]
        app_secret_id: drkit/app-secret
        app_keys: {db_password: DB_PASSWORD}
        """,
    "meta/argument_specs.yml": """
        argument_specs:
          main:
            options:
              app_users:
                type: list
                elements: dict
                options:
                  name: {type: str}
                  password: {type: str, no_log: true}
              app_api_key: {type: str, no_log: true}
        """,
    "tasks/read.yml": """
        - name: Read the credentials
          ansible.builtin.set_fact:
            app_credentials_parsed: >-
              {{ lookup('amazon.aws.secretsmanager_secret', app_secret_id) }}
          no_log: true
        """,
}


@pytest.fixture
def role(tmp_path: Path) -> Path:
    for name, text in ROLE_FILES.items():
        path = tmp_path / "roles" / "app" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    rule.project_secret_names.cache_clear()
    return tmp_path / "roles" / "app"


CASES = {
    # Leaks: what each task's results would hold.
    "loop over items that carry a password (argument_specs no_log suboption)": ("""
        - name: Grant
          community.postgresql.postgresql_membership:
            groups: "{{ item.groups }}"
            target_roles: ["{{ item.name }}"]
          loop: "{{ app_users | selectattr('groups', 'defined') | list }}"
          loop_control: {label: "{{ item.name }}"}
        """, "loop over app_users"),
    "loop over a default whose items have a password key": ("""
        - name: Admins
          ansible.builtin.debug: {msg: "{{ item.name }}"}
          with_items: "{{ app_admins }}"
        """, "with_items over app_admins"),
    "module argument named like a password": ("""
        - name: Query
          community.postgresql.postgresql_query: {query: SELECT 1, login_password: "{{ pw }}"}
        """, "argument login_password"),
    "argument reads a variable named like a secret": ("""
        - name: Write
          ansible.builtin.copy: {content: "{{ app_db_password }}", dest: /x}
        """, "arguments read app_db_password"),
    "argument reads a subscript named like a secret": ("""
        - name: Write
          ansible.builtin.copy: {content: "{{ creds['password'] }}", dest: /x}
        """, "arguments read creds.password"),
    "a variable argument_specs marks no_log": ("""
        - name: Call
          ansible.builtin.uri: {url: "https://api/{{ app_api_key }}"}
        """, "arguments read app_api_key"),
    "a fact set under no_log": ("""
        - name: Use
          ansible.builtin.set_fact: {app_url: "{{ app_credentials_parsed.url }}"}
        """, "arguments read app_credentials_parsed.url"),
    "a lookup of a secret store": ("""
        - name: Read
          ansible.builtin.set_fact:
            app_blob: "{{ lookup('community.hashi_vault.hashi_vault', 'secret/app') }}"
        """, "lookup community.hashi_vault.hashi_vault"),
    "task vars that read a secret": ("""
        - name: Render
          ansible.builtin.copy: {content: "{{ cfg | to_json }}", dest: /x}
          vars: {cfg: {token: "{{ app_api_token }}"}}
        """, "vars read app_api_token"),
    "no_log: false is no no_log": ("""
        - name: Write
          ansible.builtin.copy: {content: "{{ app_db_password }}", dest: /x}
          no_log: false
        """, "arguments read app_db_password"),
    # Not leaks.
    "no_log on the task": ("""
        - name: Grant
          ansible.builtin.debug: {msg: "{{ item.name }}"}
          loop: "{{ app_users }}"
          no_log: true
        """, None),
    "no_log on the enclosing block": ("""
        - name: Objects
          no_log: true
          block:
            - name: Grant
              ansible.builtin.debug: {msg: "{{ item.name }}"}
              loop: "{{ app_users }}"
        """, None),
    "conditionals only read it": ("""
        - name: Assert
          ansible.builtin.assert:
            that: [app_db_password | length > 0]
            fail_msg: set app_db_password
          when: app_api_key is defined
        """, None),
    "ids, files and key names are not secrets": ("""
        - name: Record
          ansible.builtin.set_fact:
            app_outputs:
              secret_id: "{{ app_secret_id }}"
              file: "{{ secrets_restore_file }}"
              keys: "{{ app_keys }}"
              path: "{{ 'drkit/' ~ estate ~ '/REGION/db-credentials' }}"
        """, None),
    "environment is not a task result": ("""
        - name: Call AWS
          amazon.aws.ec2_vpc_net_info: {region: us-east-1}
          environment: "{{ app_aws_credentials }}"
        """, None),
    "an include passes vars to tasks checked on their own": ("""
        - name: Include
          ansible.builtin.include_role: {name: other}
          vars: {other_password: "{{ app_db_password }}"}
        """, None),
}


@pytest.mark.parametrize("case", list(CASES))
def test_no_log_secret_rule(case: str, role: Path) -> None:
    tasks, expected = CASES[case]
    path = role / "tasks" / "case.yml"
    path.write_text(textwrap.dedent(tasks))
    leaks = [message for _, message in rule.file_leaks(path)]
    if expected is None:
        assert leaks == []
    else:
        assert len(leaks) == 1 and expected in leaks[0], leaks


def test_molecule_scenarios_are_not_checked(role: Path) -> None:
    path = role / "molecule" / "default" / "verify.yml"
    path.parent.mkdir(parents=True)
    path.write_text("- hosts: all\n  tasks:\n    - name: Q\n"
                    "      community.postgresql.postgresql_query: {login_password: molecule-app}\n")
    assert rule.file_leaks(path) == []


@pytest.mark.slow
def test_ansible_lint_production_profile_runs_the_rule(tmp_path: Path) -> None:
    """The repository's .ansible-lint, under --profile production (which unloads
    every rule outside the profile), fails a task that loops over password-carrying
    items without no_log, and passes it with a `# noqa: no-log-secret` or no_log."""
    ansible_lint = shutil.which("ansible-lint")
    if ansible_lint is None:
        pytest.fail("ansible-lint is not on PATH (pip install -e .[dev])")
    shutil.copy(REPO / ".ansible-lint", tmp_path / ".ansible-lint")
    shutil.copytree(RULES, tmp_path / RULES.name, ignore=shutil.ignore_patterns("__pycache__"))
    role_dir = tmp_path / "playbooks" / "roles" / "app"
    for name in ("defaults/main.yml", "meta/argument_specs.yml"):
        (role_dir / name).parent.mkdir(parents=True, exist_ok=True)
        (role_dir / name).write_text("---\n" + textwrap.dedent(ROLE_FILES[name]))
    tasks = role_dir / "tasks" / "main.yml"
    tasks.parent.mkdir()
    task = textwrap.dedent("""\
        ---
        - name: Grant the users their groups
          ansible.builtin.debug:
            msg: "{{ item.name }}"
          loop: "{{ app_users }}"
          loop_control:
            label: "{{ item.name }}"
        """)

    def lint() -> subprocess.CompletedProcess[str]:
        return subprocess.run([ansible_lint, "--profile", "production", "--nocolor", "-f", "pep8",
                               "playbooks/"], cwd=tmp_path, capture_output=True, text=True,
                              timeout=300, check=False)

    tasks.write_text(task)
    failed = lint()
    assert failed.returncode != 0, failed.stdout + failed.stderr
    assert "playbooks/roles/app/tasks/main.yml:2: no-log-secret" in failed.stdout, \
        failed.stdout + failed.stderr

    tasks.write_text(task.replace("- name: Grant the users their groups",
                                  "- name: Grant the users their groups  # noqa: no-log-secret"))
    skipped = lint()
    assert skipped.returncode == 0, skipped.stdout + skipped.stderr

    tasks.write_text(task + "  no_log: true\n")
    passed = lint()
    assert passed.returncode == 0, passed.stdout + passed.stderr
