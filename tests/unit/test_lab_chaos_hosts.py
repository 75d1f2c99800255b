"""lab.chaos finds a host by id, name, IP or namespace among running instances;
restoring a killed host finds it also once a fence has stopped it."""

from __future__ import annotations

import json

import pytest

from drkit.errors import ConfigError
from drkit.lab import chaos, paths

ROW = {"instance_id": "i-0abc", "name": "lab-us-east-db", "ip": "10.10.1.5",
       "ns": "drk-h-0abc", "state": "stopped"}


def test_a_killed_host_stopped_since_is_found_to_restore_but_not_to_kill(tmp_path):
    lab = paths.LabPaths(tmp_path)
    lab.hosts_json.parent.mkdir(parents=True, exist_ok=True)
    lab.hosts_json.write_text(json.dumps({"instances": [ROW], "killed": ["i-0abc"]}))
    with pytest.raises(ConfigError, match=r"no running host matches '10\.10\.1\.5'"):
        chaos.find_host(lab, "10.10.1.5")
    assert chaos.find_host(lab, "10.10.1.5", states=chaos.EXISTING)["instance_id"] == "i-0abc"
    lab.hosts_json.write_text(json.dumps({"instances": [{**ROW, "state": "terminated"}]}))
    with pytest.raises(ConfigError, match="no existing host matches"):
        chaos.find_host(lab, "i-0abc", states=chaos.EXISTING)
