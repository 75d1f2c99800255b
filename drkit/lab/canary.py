"""The canary: numbered writes through DNS, every acknowledgement on disk, and
afterwards an exact count of acknowledged-but-lost writes.

    python -m drkit.lab.canary --rate 100 --for 60s --resolver 10.77.0.2 \\
        --name db.lab.internal --out DIR
    python -m drkit.lab.canary report --out DIR --dsn "host=10.20.1.5 dbname=app user=app"

A run writes rows (run_id, seq) into ``drkit_canary`` at a steady rate, resolving
the database name through the given resolver on every (re)connect, so it follows
a DNS cutover. A write counts as acknowledged only once COMMIT has returned; the
ack is then appended to ``DIR/acks.jsonl`` and fsynced. Failed attempts go to
``DIR/failures.jsonl``. ``report()`` later reads the rows present on a surviving
database and reports:

- ``lost``: acknowledged seqs absent from that database (exact, by construction);
- ``write_unavailable_s``: write unavailability as a client sees it, the longest
  time without an acknowledgement (between consecutive acknowledgements, the run's
  start and, if it ended while writes were failing, its end); blocked writes count;
- ``failing_s``: total time writes were failing (from the first failed attempt
  after a success to the next acknowledgement); writes that block instead of
  failing do not count, so it can be 0 while ``write_unavailable_s`` is not.

The password comes from PGPASSWORD or a passfile (PGPASSFILE), never the command
line, and is never written to the output directory.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import psycopg

from drkit.checks.dns import resolve as dns_resolve
from drkit.durations import parse_duration
from drkit.fsutil import atomic_write_json

TABLE_SQL = """
CREATE TABLE IF NOT EXISTS drkit_canary (
    run_id     text        NOT NULL,
    seq        bigint      NOT NULL,
    written_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, seq)
)
"""

ACKS = "acks.jsonl"
FAILURES = "failures.jsonl"
RUN = "run.json"
REPORT = "report.json"


def _now() -> float:
    return time.time()


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


@dataclass
class CanaryConfig:
    """What to write to, how fast, for how long. ``resolver`` None/"" uses the
    system resolver; ``name`` may also be an IP address."""

    name: str
    out: Path
    rate: float = 100.0
    duration_s: float | None = 60.0
    resolver: str | None = None
    port: int = 5432
    dbname: str = "app"
    user: str = "app"
    password: str | None = field(default=None, repr=False)
    connect_timeout: int = 2
    #: Asked for (user, password) on every (re)connect, when set: a client that
    #: re-reads its credentials (from Secrets Manager) after a rotation.
    credentials: Callable[[], tuple[str, str]] | None = field(default=None, repr=False)
    run_id: str = field(default_factory=lambda: datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
                        + "-" + uuid.uuid4().hex[:6])


class _Log:
    """Append-only JSON lines, each flushed and fsynced before the caller goes on."""

    def __init__(self, path: Path) -> None:
        self._fh: IO[str] = open(path, "a", encoding="utf-8")  # noqa: SIM115

    def append(self, obj: dict[str, Any]) -> None:
        self._fh.write(json.dumps(obj, separators=(",", ":")) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        self._fh.close()


def _resolve(name: str, resolver: str | None) -> str:
    """An IPv4 address for ``name`` (itself when it is one)."""
    parts = name.split(".")
    if len(parts) == 4 and all(p.isdigit() for p in parts):
        return name
    answer = dns_resolve(name, resolver=resolver or None)
    if not answer["addresses"]:
        raise OSError(f"{name} does not resolve via {resolver or 'system resolver'}: "
                      f"{answer.get('error') or answer.get('rcode')}")
    return str(answer["addresses"][0])


class Canary:
    """One canary run. ``run()`` blocks until the duration passes or ``stop()``."""

    def __init__(self, config: CanaryConfig,
                 on_event: Callable[[str, dict[str, Any]], None] | None = None) -> None:
        self.config = config
        self._stop = threading.Event()
        self._conn: psycopg.Connection[Any] | None = None
        self._address: str | None = None
        self._on_event = on_event or (lambda kind, data: None)
        self.acks = 0
        self.failures = 0

    def stop(self) -> None:
        """Ask the run to finish after the current attempt."""
        self._stop.set()

    def _connect(self) -> psycopg.Connection[Any]:
        c = self.config
        self._address = _resolve(c.name, c.resolver)
        user, password = c.credentials() if c.credentials else (c.user, c.password)
        params: dict[str, Any] = {}
        if password:
            params["password"] = password
        conn = psycopg.connect(
            host=c.name if not c.name[0].isdigit() else self._address, hostaddr=self._address,
            port=c.port, dbname=c.dbname, user=user, connect_timeout=c.connect_timeout,
            autocommit=True, application_name="drkit-canary", keepalives=1,
            keepalives_idle=2, keepalives_interval=1, keepalives_count=2,
            tcp_user_timeout=5000, **params)
        conn.execute(TABLE_SQL)
        return conn

    def _write(self, seq: int) -> None:
        if self._conn is None or self._conn.closed:
            self._conn = self._connect()
        # autocommit: execute() returns only after COMMIT has returned.
        self._conn.execute("INSERT INTO drkit_canary (run_id, seq) VALUES (%s, %s)",
                           (self.config.run_id, seq))

    def _drop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.close()
        self._conn = None

    def run(self) -> dict[str, Any]:
        """Write until the duration passes or stop() is called; return the summary
        (also written to ``out/run.json``)."""
        c = self.config
        c.out.mkdir(parents=True, exist_ok=True)
        started = _now()
        meta: dict[str, Any] = {
            "run_id": c.run_id, "name": c.name, "resolver": c.resolver, "rate": c.rate,
            "duration_s": c.duration_s, "dbname": c.dbname, "user": c.user,
            "started_at": started, "finished_at": None, "attempts": 0, "acks": 0,
            "failures": 0,
        }
        # A run starts its own record: acks left by an earlier run in this directory
        # would be counted as lost (its rows are in another run's table).
        for name in (ACKS, FAILURES):
            (c.out / name).unlink(missing_ok=True)
        atomic_write_json(c.out / RUN, meta)
        acks, fails = _Log(c.out / ACKS), _Log(c.out / FAILURES)
        interval = 1.0 / c.rate if c.rate > 0 else 0.0
        deadline = started + c.duration_s if c.duration_s else None
        seq = 0
        try:
            while not self._stop.is_set():
                now = _now()
                if deadline is not None and now >= deadline:
                    break
                seq += 1
                t0 = now
                try:
                    self._write(seq)
                except (psycopg.Error, OSError) as exc:
                    self._drop()
                    self.failures += 1
                    err = str(exc).strip().splitlines()
                    rec = {"seq": seq, "t": t0, "t_end": _now(), "address": self._address,
                           "error": f"{type(exc).__name__}: {err[0] if err else ''}"}
                    fails.append(rec)
                    self._on_event("failure", rec)
                else:
                    self.acks += 1
                    rec = {"seq": seq, "t": t0, "ack": _now(), "address": self._address}
                    acks.append(rec)
                    self._on_event("ack", rec)
                # Steady schedule: the next attempt is due interval after this one
                # started; a slow attempt is not followed by a burst.
                wait = t0 + interval - _now()
                if wait > 0:
                    self._stop.wait(wait)
        finally:
            self._drop()
            acks.close()
            fails.close()
            meta.update(finished_at=_now(), attempts=seq, acks=self.acks,
                        failures=self.failures)
            atomic_write_json(c.out / RUN, meta)
        return meta


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Records of a JSONL file; a torn last line (killed mid-write) is ignored."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def analyse(acks: Sequence[dict[str, Any]], failures: Sequence[dict[str, Any]],
            present: Iterable[int], *, started_at: float,
            finished_at: float | None) -> dict[str, Any]:
    """Compare what the canary was told with what the database holds.

    ``acks`` and ``failures`` are the records of a run; ``present`` the seqs found
    on the surviving database. Pure: unit tests feed it directly."""
    present_set = set(present)
    acked = sorted(int(a["seq"]) for a in acks)
    acked_set = set(acked)
    lost = [s for s in acked if s not in present_set]
    failed_seqs = {int(f["seq"]) for f in failures}
    # Commit outcome unknown to the client, row there anyway: not a loss.
    unacked_present = sorted(present_set & failed_seqs)
    unknown_present = sorted(present_set - acked_set - failed_seqs)

    events = sorted([(float(a["ack"]), "ack", float(a["t"])) for a in acks]
                    + [(float(f["t"]), "fail", float(f["t"])) for f in failures])
    end = finished_at if finished_at is not None else (events[-1][0] if events else started_at)

    # Write unavailability: the longest time clients went without an acknowledgement.
    # It runs from the last acknowledgement, not from the first failure: a write
    # blocked in COMMIT fails nothing but answers nobody (a planned failover once
    # showed 9.3 s of this with no failed attempt at all). The run's start is a
    # point because a canary started into an outage has had no acknowledgement
    # since it began; its end only if writes were still failing then (an outage
    # still open), not after a run that stopped while writes succeeded.
    ack_times = sorted(float(a["ack"]) for a in acks)
    points = [started_at, *ack_times]
    if failures and (not ack_times or max(float(f["t"]) for f in failures) > ack_times[-1]):
        points.append(end)
    gaps = [(b - a, a, b) for a, b in itertools.pairwise(points)]
    longest = max(gaps, default=(0.0, None, None))

    # Windows of failing writes: first failed attempt after a success -> next ack.
    windows: list[dict[str, Any]] = []
    open_at: float | None = None
    for at, kind, _start in events:
        if kind == "fail" and open_at is None:
            open_at = at
        elif kind == "ack" and open_at is not None:
            windows.append({"from": _iso(open_at), "to": _iso(at), "seconds": at - open_at})
            open_at = None
    if open_at is not None:
        windows.append({"from": _iso(open_at), "to": None, "seconds": max(0.0, end - open_at),
                        "open": True})

    failing_s = round(sum(w["seconds"] for w in windows), 6)
    return {
        "acknowledged": len(acked),
        "failed_attempts": len(failures),
        "present": len(present_set),
        "lost": len(lost),
        "lost_seqs": lost[:1000],
        "unacknowledged_present": len(unacked_present),
        "unknown_present": len(unknown_present),
        "write_unavailable_s": round(longest[0], 6),
        "write_unavailable_from": _iso(longest[1]),
        "write_unavailable_to": _iso(longest[2]),
        "failing_s": failing_s,
        # The old name of failing_s; tests/lab/test_failover.py still reads it.
        "failed_write_s": failing_s,
        "failure_windows": windows,
        "last_ack_at": _iso(ack_times[-1]) if ack_times else None,
    }


def present_seqs(dsn: str, run_id: str, *, timeout: int = 5) -> list[int]:
    """Seqs of ``run_id`` present on the database at ``dsn`` (libpq conninfo)."""
    with psycopg.connect(dsn, connect_timeout=timeout, autocommit=True) as conn:
        try:
            rows = conn.execute("SELECT seq FROM drkit_canary WHERE run_id = %s",
                                (run_id,)).fetchall()
        except psycopg.errors.UndefinedTable:
            return []
    return [int(r[0]) for r in rows]


def report(out: str | os.PathLike[str], dsn: str | None = None, *,
           present: Iterable[int] | None = None) -> dict[str, Any]:
    """Report a finished (or killed) run in ``out`` against the database at ``dsn``
    (or an explicit set of ``present`` seqs). Writes ``out/report.json`` and returns
    it: ``lost`` is the exact number of acknowledged writes missing there."""
    out_dir = Path(out)
    meta = json.loads((out_dir / RUN).read_text(encoding="utf-8"))
    acks = read_jsonl(out_dir / ACKS)
    failures = read_jsonl(out_dir / FAILURES)
    if present is None:
        if dsn is None:
            raise ValueError("report() needs a dsn or the present seqs")
        present = present_seqs(dsn, meta["run_id"])
    result = analyse(acks, failures, present, started_at=float(meta["started_at"]),
                     finished_at=meta.get("finished_at"))
    result.update(run_id=meta["run_id"], name=meta["name"], rate=meta["rate"],
                  started_at=_iso(meta["started_at"]), finished_at=_iso(meta.get("finished_at")))
    atomic_write_json(out_dir / REPORT, result)
    return result


def _run_cli(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m drkit.lab.canary",
                                description="Numbered writes through DNS; acks on disk.")
    p.add_argument("--rate", type=float, default=100.0, help="writes per second")
    p.add_argument("--for", dest="duration", default="60s",
                   help="how long (30s, 2m); 0 = until SIGINT/SIGTERM")
    p.add_argument("--resolver", default="", help="DNS resolver address (default: system)")
    p.add_argument("--name", default="db.lab.internal", help="database DNS name")
    p.add_argument("--port", type=int, default=5432)
    p.add_argument("--dbname", default="app")
    p.add_argument("--user", default="app")
    p.add_argument("--out", required=True, help="directory for acks, failures, run.json")
    p.add_argument("--run-id", help="run id (default: time + random)")
    a = p.parse_args(argv)
    duration = parse_duration(a.duration)
    config = CanaryConfig(name=a.name, out=Path(a.out), rate=a.rate,
                          duration_s=duration or None, resolver=a.resolver or None,
                          port=a.port, dbname=a.dbname, user=a.user,
                          password=os.environ.get("PGPASSWORD"))
    if a.run_id:
        config.run_id = a.run_id
    canary = Canary(config)
    signal.signal(signal.SIGTERM, lambda s, f: canary.stop())
    signal.signal(signal.SIGINT, lambda s, f: canary.stop())
    meta = canary.run()
    print(json.dumps({k: meta[k] for k in ("run_id", "attempts", "acks", "failures")}))
    return 0


def _report_cli(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m drkit.lab.canary report",
                                description="Compare a canary run with a database.")
    p.add_argument("--out", required=True, help="the run's directory")
    p.add_argument("--dsn", required=True,
                   help="libpq conninfo of the surviving database (password via PGPASSWORD)")
    a = p.parse_args(argv)
    result = report(a.out, a.dsn)
    print(json.dumps({k: v for k, v in result.items() if k not in ("lost_seqs",)}, indent=2))
    return 1 if result["lost"] else 0


def main(argv: list[str] | None = None) -> int:
    """CLI: run a canary (default) or ``report`` on one."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "report":
        return _report_cli(args[1:])
    if args and args[0] == "run":
        args = args[1:]
    return _run_cli(args)


if __name__ == "__main__":
    sys.exit(main())
