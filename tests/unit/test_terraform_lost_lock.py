"""A state lock that a terraform command took itself and then lost (its lock
request succeeded on the server, the answer never reached it, the retry found
the lock taken) is released and the command runs once more; anyone else's lock,
or an older one, is left alone.

The driver runs a fake ``terraform`` (a shell script) that fails its first apply
with the diagnostic Terraform 1.11 printed in a CI run on the lab, and succeeds
after ``force-unlock``.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

from drkit.drivers.terraform import Terraform, lock_holder, own_lost_lock


def lock_error(who: str, created: datetime, lock_id: str = "5681876b-c6ae-9542") -> dict:
    stamp = created.strftime("%Y-%m-%d %H:%M:%S.%f") + "301 +0000 UTC"
    return {"type": "diagnostic", "diagnostic": {
        "severity": "error", "summary": "Error acquiring the state lock",
        "detail": ("Error message: operation error DynamoDB: PutItem, https response error "
                   "StatusCode: 400, ConditionalCheckFailedException: The conditional request "
                   f"failed\nLock Info:\n  ID:        {lock_id}\n  Path:      "
                   "drkit-lab-tfstate/envs/lab/terraform.tfstate\n  Operation: "
                   f"OperationTypeApply\n  Who:       {who}\n  Version:   1.11.4\n  "
                   f"Created:   {stamp}\n  Info:      \n\n\nTerraform acquires a state lock")}}


def test_only_a_lock_this_command_took_counts_as_its_own():
    now = time.time()
    created = datetime.fromtimestamp(now + 0.4, UTC)
    assert own_lost_lock([lock_error("root@vm", created)], now, "root@vm") == "5681876b-c6ae-9542"
    # Someone else's lock, or one older than the command: never released.
    assert own_lost_lock([lock_error("ops@bastion", created)], now, "root@vm") is None
    older = datetime.fromtimestamp(now - 30, UTC)
    assert own_lost_lock([lock_error("root@vm", older)], now, "root@vm") is None
    assert own_lost_lock([{"type": "diagnostic", "diagnostic": {"summary": "other"}}],
                         now, "root@vm") is None


def fake_terraform(tmp_path: Path, who: str) -> Path:
    """A terraform whose first apply fails on its own lock; force-unlock is recorded."""
    created = datetime.now(UTC)
    message = json.dumps(lock_error(who, created))
    script = tmp_path / "terraform"
    calls = tmp_path / "calls"
    script.write_text(f"""#!/bin/sh
shift  # -chdir=...
echo "$*" >> {calls}
case "$1" in
  apply)
    if [ ! -e {tmp_path}/unlocked ]; then
      printf '%s\n' '{message}'
      exit 1
    fi
    printf '%s\n' '{{"type": "change_summary", "changes": {{"add": 1, "change": 0, "remove": 0}}}}'
    exit 0 ;;
  force-unlock) touch {tmp_path}/unlocked; exit 0 ;;
esac
exit 2
""")
    script.chmod(0o755)
    return script


def test_an_apply_that_lost_its_own_lock_releases_it_and_applies(tmp_path: Path):
    binary = fake_terraform(tmp_path, lock_holder())
    tf = Terraform(tmp_path, data_dir=tmp_path / "data", log_dir=tmp_path / "logs",
                   binary=str(binary))
    result = tf.apply_now()  # the fake's lock is from just before: within the 1 s slack
    assert result.ok, result.summary
    assert "released state lock 5681876b-c6ae-9542" in result.summary
    calls = (tmp_path / "calls").read_text().splitlines()
    assert [c.split()[0] for c in calls] == ["apply", "force-unlock", "apply"]
    assert "force-unlock -force 5681876b-c6ae-9542" in calls[1]


def test_someone_elses_lock_fails_the_apply_and_is_left_alone(tmp_path: Path):
    binary = fake_terraform(tmp_path, "ops@bastion")
    tf = Terraform(tmp_path, data_dir=tmp_path / "data", log_dir=tmp_path / "logs",
                   binary=str(binary))
    result = tf.apply_now()
    assert not result.ok
    assert "Error acquiring the state lock" in result.summary
    assert [c.split()[0] for c in (tmp_path / "calls").read_text().splitlines()] == ["apply"]
