"""The sample app answers health, writes and reads through a database it finds by
name, and comes back by itself after the database restarts."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

# The temporary-PostgreSQL fixture is shared with the canary's tests.
from test_canary import TempPostgres, postgres  # noqa: F401

from drkit.lab.app import App, AppConfig, serve

SECRET = "s3cret-value-never-shown"


def _config(pg: TempPostgres, **kw: Any) -> AppConfig:
    return AppConfig.from_dict({
        "db": {"host": "localhost", "port": pg.port, "dbname": "postgres", "user": "postgres",
               "connect_timeout": 1},
        "bind": "127.0.0.1", "port": 0, "region": "us-east", "secret": SECRET, **kw})


@pytest.fixture
def http_app(postgres: TempPostgres) -> Iterator[str]:  # noqa: F811
    server = serve(_config(postgres))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _call(url: str, data: dict | None = None) -> tuple[int, dict]:
    body = json.dumps(data).encode() if data is not None else None
    req = urllib.request.Request(url, data=body, method="POST" if body else "GET",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_health_write_and_read_over_http(http_app: str) -> None:
    status, health = _call(f"{http_app}/health")
    assert status == 200 and health["db_primary"] is True and health["db_reachable"] is True
    assert SECRET not in json.dumps(health) and health["secret_fingerprint"]
    status, written = _call(f"{http_app}/write", {"payload": "hello"})
    assert status == 201
    status, row = _call(f"{http_app}/read/{written['id']}")
    assert status == 200 and row["payload"] == "hello" and row["region"] == "us-east"
    assert _call(f"{http_app}/read/999999")[0] == 404
    assert _call(f"{http_app}/nope")[0] == 404


def test_the_app_reconnects_after_the_database_restarts(postgres: TempPostgres) -> None:  # noqa: F811
    app = App(_config(postgres))
    assert app.write("before")[0] == 201
    postgres.stop()
    status, body = app.health()
    assert status == 503 and body["db_reachable"] is False
    postgres.start()
    assert app.health()[0] == 200  # a fresh connection, name resolved again
    status, written = app.write("after")
    assert status == 201 and app.read(written["id"])[1]["payload"] == "after"


def test_a_standby_is_reported_unhealthy(postgres: TempPostgres) -> None:  # noqa: F811
    app = App(_config(postgres))
    app.db.run = lambda sql, params=(): [{"in_recovery": True}]  # type: ignore[method-assign]
    status, body = app.health()
    assert status == 503 and body["db_primary"] is False and body["status"] == "read-only"


def test_unknown_config_keys_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown config keys: colour"):
        AppConfig.from_dict({"db": {"host": "db.lab.internal"}, "colour": "blue"})
    with pytest.raises(ValueError, match=r"db\.host is required"):
        AppConfig.from_dict({"db": {}})
    assert SECRET not in repr(AppConfig.from_dict({"db": {"host": "x", "password": SECRET},
                                                   "secret": SECRET}))
