"""Where a backup runs: a healthy streaming standby first, else the primary, and why."""

from __future__ import annotations

from typing import Any

from drkit.checks.backup import choose_source


def _primary(region: str = "us-east", sync: tuple[str, ...] = ("eu_west",)) -> dict[str, Any]:
    return {"region": region, "name": region.replace("-", "_"), "host": "10.10.1.5",
            "instance_id": "i-p", "reachable": True,
            "role": "primary",
            "senders": [{"application_name": name, "sync_state": "sync"} for name in sync]}


def _replica(region: str, host: str, *, streaming: bool = True, receive: str = "0/3000000",
             replay: str = "0/3000000", reachable: bool = True) -> dict[str, Any]:
    return {"region": region, "name": region.replace("-", "_"), "host": host,
            "instance_id": f"i-{region}", "reachable": reachable,
            "role": "replica" if reachable else None, "streaming": streaming,
            "receiver": {"status": "streaming" if streaming else "stopping"},
            "receive_lsn": receive, "replay_lsn": replay}


def _topo(*nodes: dict[str, Any]) -> dict[str, Any]:
    return {"nodes": {n["region"]: n for n in nodes}}


def test_an_asynchronous_streaming_standby_is_chosen_over_a_synchronous_one():
    choice = choose_source(_topo(_primary(), _replica("eu-west", "10.20.1.5"),
                                 _replica("ap-south", "10.30.1.5")), tls=True)
    assert choice["ok"] and choice["from_standby"]
    assert choice["source"]["region"] == "ap-south" and not choice["source"]["synchronous"]
    assert choice["primary"] == {"region": "us-east", "host": "10.10.1.5", "instance_id": "i-p"}


def test_a_synchronous_standby_serves_when_it_is_the_only_healthy_one():
    choice = choose_source(_topo(_primary(), _replica("eu-west", "10.20.1.5"),
                                 _replica("ap-south", "10.30.1.5", streaming=False)), tls=True)
    assert choice["source"]["region"] == "eu-west" and choice["source"]["synchronous"]


def test_without_a_healthy_standby_the_primary_backs_up_and_each_standby_says_why():
    choice = choose_source(_topo(_primary(),
                                 _replica("eu-west", "10.20.1.5", reachable=False),
                                 _replica("ap-south", "10.30.1.5", receive="0/9000000",
                                          replay="0/1000000")), tls=True)
    assert not choice["from_standby"] and choice["source"]["host"] == "10.10.1.5"
    assert choice["why_primary"] == (
        "no healthy standby: ap-south (10.30.1.5) 134217728 bytes not replayed > 16777216; "
        "eu-west (10.20.1.5) does not answer")


def test_without_tls_the_primary_backs_up_even_with_healthy_standbys():
    choice = choose_source(_topo(_primary(), _replica("ap-south", "10.30.1.5")), tls=False)
    assert not choice["from_standby"]
    assert "drkit.backup.tls is not set" in choice["why_primary"]


def test_no_primary_or_two_primaries_is_a_problem_naming_them():
    none = choose_source(_topo(_replica("eu-west", "10.20.1.5")), tls=True)
    assert not none["ok"]
    assert none["problem"].startswith("0 database nodes answered as primary (none)")
    two = choose_source(_topo(_primary(), _primary("eu-west")), tls=True)
    assert not two["ok"] and "us-east (10.10.1.5), eu-west (10.10.1.5)" in two["problem"]
