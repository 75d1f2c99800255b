"""service.hosts_healthy after a rotation: a host on a revoked password fails the
check, unless an approved partial rotation left its region on the old value."""

from __future__ import annotations

from types import SimpleNamespace

from drkit.checks import rotation

ROWS = [{"region": "us-east", "host": "10.10.1.5", "status": 200, "error": None},
        {"region": "eu-west", "host": "10.20.1.5", "status": 503,
         "error": "password authentication failed"}]


def test_a_host_on_the_old_password_fails_the_check(monkeypatch):
    monkeypatch.setattr(rotation, "health_of", lambda *_: ROWS)
    result = rotation.hosts_healthy_probe(None)
    assert not result["ok"]
    assert result["summary"] == "eu-west 10.20.1.5: 503 password authentication failed"
    assert "decision" not in result


def test_a_region_left_behind_by_an_approved_partial_rotation_is_named_not_failed(
        monkeypatch):
    monkeypatch.setattr(rotation, "health_of", lambda *_: ROWS)
    decided: list[str] = []
    result = rotation.hosts_healthy_probe(SimpleNamespace(decide=decided.append),
                                          left_behind=["eu-west"])
    assert result["ok"] and result["left_behind"] == ["eu-west"]
    assert result["summary"].startswith("1 app hosts healthy; left on the old value")
    assert "eu-west 10.20.1.5: 503" in result["summary"]
    assert result["decision"].startswith("left on the old value, as approved")
    assert decided == [result["decision"]]


def test_no_healthy_host_outside_the_regions_left_behind_fails(monkeypatch):
    monkeypatch.setattr(rotation, "health_of", lambda *_: ROWS[1:])
    probe_ctx = SimpleNamespace(decide=lambda _text: None)
    assert not rotation.hosts_healthy_probe(probe_ctx, left_behind=["eu-west"])["ok"]
