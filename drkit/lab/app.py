"""The lab's sample application: a small HTTP service that reads and writes the
database through DNS, so smoke tests and client-observed downtime are real.

    GET  /health      200 when the database is reachable and writable (a primary),
                      503 otherwise; the body says which address, which role, why
    POST /write       insert a row ({"payload": "..."} optional) -> 201 {"id": n}
    GET  /read/<n>    the row with id n -> 200, or 404

The database host is a DNS name (db.lab.internal). The app keeps one connection
and, when it breaks (a failover, a restart), drops it and reconnects on the next
request, resolving the name again, so it follows a DNS cutover without restart.

Deployed as this single file to /srv/app/app.py by the sample_app role and run as
``python3 app.py --config /srv/app/config.json``; it therefore imports nothing
from drkit, only the standard library and psycopg. The config file (mode 0600)
holds the database password and the application secret; neither is ever logged
or returned (health shows a short SHA-256 fingerprint of the secret so a smoke
test can tell the right secret was restored).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import logging
import re
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import psycopg
from psycopg.rows import dict_row

log = logging.getLogger("drkit.lab.app")

SCHEMA = """
CREATE TABLE IF NOT EXISTS app_writes (
    id         bigserial PRIMARY KEY,
    payload    text NOT NULL DEFAULT '',
    region     text NOT NULL DEFAULT '',
    written_at timestamptz NOT NULL DEFAULT now()
)
"""


@dataclass
class DbSettings:
    """Where and as whom the app connects. ``host`` is a DNS name, resolved again
    on every (re)connect."""

    host: str
    port: int = 5432
    dbname: str = "app"
    user: str = "app"
    password: str = field(default="", repr=False)
    connect_timeout: int = 3


@dataclass
class AppConfig:
    """The app's settings, read from the JSON config file."""

    db: DbSettings
    bind: str = "127.0.0.1"
    port: int = 8080
    region: str = ""
    secret: str = field(default="", repr=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AppConfig:
        """Build from the config file's JSON; unknown keys are an error."""
        known = {"db", "bind", "port", "region", "secret"}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown config keys: {', '.join(sorted(unknown))}")
        db = dict(data.get("db") or {})
        unknown_db = set(db) - {"host", "port", "dbname", "user", "password", "connect_timeout"}
        if unknown_db:
            raise ValueError(f"unknown db config keys: {', '.join(sorted(unknown_db))}")
        if not db.get("host"):
            raise ValueError("db.host is required (e.g. db.lab.internal)")
        return cls(
            db=DbSettings(**db),
            bind=str(data.get("bind", "127.0.0.1")),
            port=int(data.get("port", 8080)),
            region=str(data.get("region", "")),
            secret=str(data.get("secret", "")),
        )


def resolve(host: str, port: int) -> str:
    """The first IPv4 address of ``host`` through the system resolver (no caching
    in glibc: a Route53 change is seen on the next connect)."""
    infos = socket.getaddrinfo(host, port, family=socket.AF_INET, type=socket.SOCK_STREAM)
    return str(infos[0][4][0])


class Database:
    """One shared connection that is dropped when broken and re-made, re-resolving
    the host name, on next use."""

    def __init__(self, settings: DbSettings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._conn: psycopg.Connection[dict[str, Any]] | None = None
        self.address: str | None = None
        self.schema_ready = False

    def _connect(self) -> psycopg.Connection[dict[str, Any]]:
        s = self.settings
        self.address = resolve(s.host, s.port)
        conn = psycopg.connect(
            host=s.host, hostaddr=self.address, port=s.port, dbname=s.dbname, user=s.user,
            password=s.password, connect_timeout=s.connect_timeout, autocommit=True,
            row_factory=dict_row, application_name="drkit-sample-app",
            keepalives=1, keepalives_idle=5, keepalives_interval=2, keepalives_count=2,
            tcp_user_timeout=10000,
        )
        log.info("connected to %s (%s)", s.host, self.address)
        return conn

    def run(self, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        """Execute one statement (autocommit: it has committed when this returns)
        and return its rows. A broken connection is closed and the error raised;
        the next call reconnects."""
        with self._lock:
            if self._conn is None or self._conn.closed:
                self._conn = self._connect()
                self.schema_ready = False
            try:
                cur = self._conn.execute(sql, params)
                return cur.fetchall() if cur.description else []
            except (psycopg.OperationalError, psycopg.InterfaceError):
                self.close_locked()
                raise

    def ensure_schema(self) -> None:
        """Create the app's table (on a primary, once per connection)."""
        if not self.schema_ready:
            self.run(SCHEMA)
            self.schema_ready = True

    def close_locked(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.close()
        self._conn = None

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self.close_locked()


def _error_text(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


class App:
    """The request logic, independent of the HTTP plumbing (tests call it directly)."""

    def __init__(self, config: AppConfig) -> None:
        self.config = config
        self.db = Database(config.db)

    def secret_fingerprint(self) -> str | None:
        """First 12 hex digits of the secret's SHA-256, or None without a secret."""
        if not self.config.secret:
            return None
        return hashlib.sha256(self.config.secret.encode()).hexdigest()[:12]

    def health(self) -> tuple[int, dict[str, Any]]:
        """Is the database reachable, and is it a writable primary? A connection made
        before a failover may be broken or lead to a demoted node: the check is a
        read, so it is asked once more on a fresh connection (the name resolved
        again) before it answers 503."""
        status, body = self._health_once()
        if status != HTTPStatus.OK:
            status, body = self._health_once()
        return status, body

    def _health_once(self) -> tuple[int, dict[str, Any]]:
        body: dict[str, Any] = {"region": self.config.region, "db_host": self.config.db.host,
                                "secret_fingerprint": self.secret_fingerprint()}
        try:
            row = self.db.run("SELECT pg_is_in_recovery() AS in_recovery")[0]
        except psycopg.Error as exc:
            body.update(status="unavailable", db_reachable=False, db_primary=None,
                        db_address=self.db.address, error=_error_text(exc))
            return HTTPStatus.SERVICE_UNAVAILABLE, body
        except OSError as exc:  # name resolution
            body.update(status="unavailable", db_reachable=False, db_primary=None,
                        db_address=None, error=_error_text(exc))
            return HTTPStatus.SERVICE_UNAVAILABLE, body
        primary = not row["in_recovery"]
        if not primary:
            # Connected to a node that takes no writes (DNS moved on, or this node
            # was demoted): drop it, so the next request resolves the name again.
            self.db.close()
        body.update(status="ok" if primary else "read-only", db_reachable=True,
                    db_primary=primary, db_address=self.db.address, error=None)
        return (HTTPStatus.OK if primary else HTTPStatus.SERVICE_UNAVAILABLE), body

    def write(self, payload: str) -> tuple[int, dict[str, Any]]:
        """Insert one row; 201 with its id only after the commit returned."""
        try:
            self.db.ensure_schema()
            row = self.db.run(
                "INSERT INTO app_writes (payload, region) VALUES (%s, %s) RETURNING id",
                (payload, self.config.region))[0]
        except (psycopg.errors.ReadOnlySqlTransaction,
                psycopg.errors.FeatureNotSupported) as exc:  # a replica: find the primary
            address = self.db.address
            self.db.close()
            return HTTPStatus.SERVICE_UNAVAILABLE, {"error": _error_text(exc),
                                                    "db_address": address}
        except (psycopg.Error, OSError) as exc:
            return HTTPStatus.SERVICE_UNAVAILABLE, {"error": _error_text(exc),
                                                    "db_address": self.db.address}
        return HTTPStatus.CREATED, {"id": row["id"], "db_address": self.db.address}

    def read(self, row_id: int) -> tuple[int, dict[str, Any]]:
        """The row with ``row_id``, or 404."""
        try:
            rows = self.db.run(
                "SELECT id, payload, region, written_at FROM app_writes WHERE id = %s",
                (row_id,))
        except psycopg.errors.UndefinedTable:
            rows = []
        except (psycopg.Error, OSError) as exc:
            return HTTPStatus.SERVICE_UNAVAILABLE, {"error": _error_text(exc)}
        if not rows:
            return HTTPStatus.NOT_FOUND, {"error": f"no row {row_id}"}
        row = rows[0]
        row["written_at"] = row["written_at"].isoformat()
        return HTTPStatus.OK, row


_READ = re.compile(r"^/read/(\d+)$")


def make_handler(app: App) -> type[BaseHTTPRequestHandler]:
    """A request handler class bound to ``app``."""

    class Handler(BaseHTTPRequestHandler):
        server_version = "drkit-sample-app/1"
        protocol_version = "HTTP/1.1"

        def _send(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body, default=str).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/health":
                self._send(*app.health())
            elif m := _READ.match(path):
                self._send(*app.read(int(m.group(1))))
            else:
                self._send(HTTPStatus.NOT_FOUND, {"error": "not found"})

        def do_POST(self) -> None:
            if self.path.split("?", 1)[0] != "/write":
                self._send(HTTPStatus.NOT_FOUND, {"error": "not found"})
                return
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                payload = str((json.loads(raw) if raw else {}).get("payload", ""))
            except (ValueError, AttributeError):
                self._send(HTTPStatus.BAD_REQUEST, {"error": "body must be a JSON object"})
                return
            self._send(*app.write(payload))

        def log_message(self, format: str, *args: Any) -> None:
            # Request line and status only: bodies may carry anything.
            log.info("%s %s", self.address_string(), format % args)

    return Handler


def serve(config: AppConfig) -> ThreadingHTTPServer:
    """Create (not start) the HTTP server for ``config``."""
    server = ThreadingHTTPServer((config.bind, config.port), make_handler(App(config)))
    server.daemon_threads = True
    return server


def main(argv: list[str] | None = None) -> int:
    """Run the app until SIGTERM/SIGINT."""
    parser = argparse.ArgumentParser(prog="drkit-sample-app", description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True, help="JSON config file (mode 0600)")
    parser.add_argument("--bind", help="override the config's bind address")
    parser.add_argument("--port", type=int, help="override the config's port")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(message)s")
    with open(args.config, encoding="utf-8") as fh:
        config = AppConfig.from_dict(json.load(fh))
    if args.bind:
        config.bind = args.bind
    if args.port:
        config.port = args.port
    server = serve(config)

    def stop(signum: int, frame: Any) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info("listening on %s:%d (db %s, region %s)", config.bind, config.port,
             config.db.host, config.region or "-")
    started = time.monotonic()
    server.serve_forever(poll_interval=0.2)
    server.server_close()
    log.info("stopped after %.1f s", time.monotonic() - started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
