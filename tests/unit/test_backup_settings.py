"""drkit.backup.tls: the estate CA that signs each db host's certificate for
pgBackRest's TLS server (backups from a standby); every problem named by its
dotted path."""

from __future__ import annotations

import pytest

from drkit.env import _backup_problems

REGIONS = {"us-east": {"cloud_region": "us-east-1"}, "eu-west": {"cloud_region": "eu-west-1"}}
BASE = {"stanza": "main", "repositories": [{"region": "eu-west", "retention_full": 2}]}


def test_tls_is_optional_and_a_complete_one_passes():
    assert _backup_problems(dict(BASE), REGIONS) == []
    tls = {"ca_file": "/etc/drkit/ca.crt", "ca_key_file": "/etc/drkit/ca.key", "port": 8432}
    assert _backup_problems({**BASE, "tls": tls}, REGIONS) == []


@pytest.mark.parametrize(("tls", "problem"), [
    ("yes", "drkit.backup.tls: expected a mapping"),
    ({"ca_key_file": "/k"}, "drkit.backup.tls.ca_file: expected a path"),
    ({"ca_file": "/c"}, "drkit.backup.tls.ca_key_file: expected a path"),
    ({"ca_file": "/c", "ca_key_file": "/k", "port": 0}, "drkit.backup.tls.port: expected a port"),
    ({"ca_file": "/c", "ca_key_file": "/k", "cert": "/x"}, "drkit.backup.tls.cert: unknown key"),
])
def test_an_incomplete_tls_setting_is_named(tls, problem):
    problems = _backup_problems({**BASE, "tls": tls}, REGIONS)
    assert any(p.startswith(problem) for p in problems), problems
