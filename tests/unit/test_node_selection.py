"""replace-node's choice of nodes (drkit.checks.nodes.select): --host names one
node exactly or refuses with the candidates, a healthy one only with --force, the
database primary (or a db node that may be it) is refused with the way out;
--auto takes every unhealthy app host and database replica.
And the health of a node is what a client would see: a port that does not
answer, an HTTP status that is not 200."""

from __future__ import annotations

import http.server
import socket
import threading

import pytest

from drkit.checks.nodes import (
    find,
    health,
    in_region_standby,
    possible_primaries,
    select,
    takeovers,
)
from tests.support.topology import REGIONS, probe_result


def node(id_: str, ip: str, role: str = "app", *, healthy: bool = True,
         state: str = "running", name: str | None = None) -> dict:
    return {"id": id_, "ip": ip, "role": role, "state": state, "zone": "us-east-1a",
            "region": "us-east", "name": name or f"lab-us-east-{role}", "asg": "g",
            "healthy": healthy, "problems": [] if healthy else ["ssh: no answer on port 22"]}


ESTATE = [
    node("i-a1", "10.10.1.4"),
    node("i-a2", "10.10.2.4", healthy=False),
    node("i-db", "10.10.1.5", role="db"),
    node("i-replica", "10.20.1.4", role="db"),
    node("i-gone", "10.10.1.9", state="terminated", healthy=False),
]
PRIMARY = frozenset({"i-db"})


@pytest.mark.parametrize("ref", ["i-a2", "10.10.2.4", "lab-us-east-app_i-a2"])
def test_a_node_is_found_by_id_ip_or_inventory_name(ref):
    chosen, problems, _ = select(ESTATE, host=ref)
    assert [n["id"] for n in chosen] == ["i-a2"] and not problems


def test_a_shared_name_tag_is_refused_with_the_candidates():
    chosen, problems, hint = select(ESTATE, host="lab-us-east-app")
    assert not chosen and "names 2 nodes" in problems[0]
    assert "i-a1" in hint and "i-a2" in hint


def test_an_unknown_or_terminated_node_is_refused_with_the_estate_listed():
    for ref in ("i-nope", "i-gone"):
        chosen, problems, hint = select(ESTATE, host=ref)
        assert not chosen and "no node of the estate matches" in problems[0]
        assert "lab-us-east-app_i-a1 (10.10.1.4)" in hint and "i-gone" not in hint


def test_a_healthy_node_needs_force():
    assert select(ESTATE, host="i-a1")[1] == [
        "lab-us-east-app_i-a1 is healthy (EC2 running, ssh and its service answer)"]
    assert select(ESTATE, host="i-a1", force=True)[0][0]["id"] == "i-a1"


def test_the_database_primary_is_refused_with_the_way_out_and_a_replica_is_not():
    chosen, problems, hint = select(ESTATE, host="i-db", force=True, primaries=PRIMARY)
    assert not chosen and "is (or may be) the database primary" in problems[0]
    assert "drkit failover" in hint
    assert select(ESTATE, host="i-replica", force=True, primaries=PRIMARY)[0][0]["role"] == "db"


def test_auto_takes_unhealthy_app_hosts_and_replicas_never_the_primary():
    sick_replica = node("i-replica", "10.20.1.4", role="db", healthy=False)
    estate = [*ESTATE[:3], sick_replica]
    assert [n["id"] for n in select(estate, auto=True, primaries=PRIMARY)[0]] == [
        "i-a2", "i-replica"]
    healthy = [n for n in ESTATE if n["id"] != "i-a2"]
    chosen, problems, _ = select(healthy, auto=True, primaries=PRIMARY)
    assert not chosen and problems == ["every node is healthy: nothing to replace"]
    sick_primary = [*healthy[:1], node("i-db", "10.10.1.5", role="db", healthy=False)]
    chosen, problems, hint = select(sick_primary, auto=True, primaries=PRIMARY)
    assert not chosen and "(the database primary)" in problems[0] and "failover" in hint


TWO_ZONES = {**REGIONS, "us-east": {**REGIONS["us-east"],
                                    "db_zones": ["us-east-1a", "us-east-1b"]}}


def two_zone_topology(primary_role="primary", standby_role="replica", standby_lsn="0/5000000"):
    return probe_result({
        "us-east": {"role": primary_role, "host": "10.10.1.5", "instance_id": "i-db"},
        "us-east-b": {"role": standby_role, "host": "10.10.2.5", "instance_id": "i-db-b",
                      "receive_lsn": standby_lsn},
        "eu-west": {"role": "replica", "host": "10.20.1.4", "instance_id": "i-replica",
                    "receive_lsn": "0/5000100"},
    }, regions=TWO_ZONES)


def test_a_dead_primary_with_an_in_region_standby_is_taken_over_not_refused():
    topo = two_zone_topology(primary_role=None)  # killed: db. still names it
    assert in_region_standby(topo, "i-db")["key"] == "us-east-b"
    assert in_region_standby(topo, "i-replica") is None  # not the primary
    assert takeovers(topo, PRIMARY) == PRIMARY
    sick_primary = [node("i-db", "10.10.1.5", role="db", healthy=False),
                    node("i-db-b", "10.10.2.5", role="db")]
    chosen, problems, _ = select(sick_primary, auto=True, primaries=PRIMARY,
                                 takeovers=takeovers(topo, PRIMARY))
    assert [n["id"] for n in chosen] == ["i-db"] and not problems
    # Healthy, it is replaced only with --force, like any node.
    healthy = [node("i-db", "10.10.1.5", role="db")]
    live = two_zone_topology()
    assert "is healthy" in select(healthy, host="i-db", primaries=PRIMARY,
                                  takeovers=takeovers(live, PRIMARY))[1][0]


def test_without_a_standby_that_answers_in_its_region_the_primary_is_refused():
    topo = two_zone_topology(primary_role=None, standby_role=None)
    assert in_region_standby(topo, "i-db") is None and takeovers(topo, PRIMARY) == frozenset()
    chosen, problems, hint = select([node("i-db", "10.10.1.5", role="db", healthy=False)],
                                    host="i-db", primaries=PRIMARY,
                                    takeovers=takeovers(topo, PRIMARY))
    assert not chosen and "is (or may be) the database primary" in problems[0]
    assert "no in-region standby" in hint


def test_a_dead_db_node_may_be_the_primary_when_none_answers():
    dead = node("i-db", "10.10.1.5", role="db", healthy=False)
    live = node("i-replica", "10.20.1.4", role="db")
    assert possible_primaries([dead, live], {"id": None, "answers": False}) == {"i-db"}
    assert possible_primaries([dead, live], {"id": "i-replica", "answers": True}) == {
        "i-replica"}


def test_find_prefers_an_exact_match_to_a_name_tag():
    nodes = [node("i-1", "10.0.0.1", name="web"), node("i-2", "10.0.0.2", name="i-1")]
    assert [n["id"] for n in find(nodes, "i-1")] == ["i-1"]


@pytest.fixture
def app_server():
    """A local HTTP server whose /health answers with the status the test sets."""
    state = {"status": 200}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(state["status"])
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1], state
    server.shutdown()
    server.server_close()


def test_health_is_what_a_client_sees(app_server, monkeypatch):
    port, state = app_server
    monkeypatch.setattr("drkit.checks.nodes.SSH_PORT", port)  # something that answers
    monkeypatch.setitem(__import__("drkit.checks.nodes", fromlist=["SERVICES"]).SERVICES,
                        "app", {"port": port, "health": "/health"})
    base = {"id": "i-1", "ip": "127.0.0.1", "role": "app", "state": "running"}
    assert health(base)["healthy"]
    state["status"] = 503
    assert health(base)["problems"] == ["app: /health answered 503"]
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        monkeypatch.setattr("drkit.checks.nodes.SSH_PORT", unused.getsockname()[1])
        problems = health(base, timeout=0.5)["problems"]
    assert problems[0].startswith("ssh: no answer on port") and len(problems) == 2
    assert health({**base, "state": "stopped"})["problems"] == ["EC2 state stopped"]


def test_a_quarantined_host_is_evidence_not_a_failure():
    kept = {**node("i-q", "10.10.1.8", healthy=False), "quarantined": True}
    estate = [*ESTATE[:1], kept]
    chosen, problems, _ = select(estate, auto=True)
    assert not chosen and problems == ["every node is healthy: nothing to replace"]
    chosen, problems, hint = select(estate, host="i-q")
    assert not chosen and "quarantined for forensics" in problems[0] and "--force" in hint
    assert select(estate, host="i-q", force=True)[0][0]["id"] == "i-q"
