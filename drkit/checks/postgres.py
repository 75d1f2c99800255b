"""PostgreSQL probes: what role a node plays, where its WAL is, how far behind it is.

Every function here is read-only (dry runs call them) and returns a plain dict,
so a runbook's ``expect`` can test it and the journal can keep it. A node that
cannot be reached is a finding (``reachable: False`` with the error), not an
exception: "the old primary is unreachable" is exactly what a failover expects.

Connection strings are libpq ones (``host=10.10.1.5 port=5432 user=postgres
dbname=postgres``); passwords come from the environment (PGPASSWORD/PGPASSFILE)
or the string itself, and never appear in what these functions return.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import dict_row

from drkit.registry import StepContext, probe

_LSN = re.compile(r"^([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})$")


def parse_lsn(lsn: str | None) -> int | None:
    """``'16/B374D848'`` -> its byte position; None stays None."""
    if lsn is None:
        return None
    m = _LSN.match(str(lsn))
    if not m:
        raise ValueError(f"not an LSN: {lsn!r}")
    return (int(m.group(1), 16) << 32) | int(m.group(2), 16)


def format_lsn(pos: int) -> str:
    """Byte position -> ``'16/B374D848'``."""
    return f"{pos >> 32:X}/{pos & 0xFFFFFFFF:X}"


def lag_bytes(ahead: str | None, behind: str | None) -> int | None:
    """How many bytes of WAL ``behind`` is short of ``ahead`` (never negative);
    None when either is unknown."""
    a, b = parse_lsn(ahead), parse_lsn(behind)
    if a is None or b is None:
        return None
    return max(0, a - b)


def safe_conninfo(dsn: str) -> str:
    """The connection string without its password, for messages and journals."""
    try:
        params = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "<unparsable conninfo>"
    params.pop("password", None)
    return make_conninfo(**params)


def _connect(dsn: str, timeout: float) -> psycopg.Connection[dict[str, Any]]:
    conn = psycopg.connect(dsn, connect_timeout=max(1, int(timeout)), autocommit=True,
                           row_factory=dict_row)
    conn.execute("SELECT set_config('statement_timeout', %s, false)",
                 (f"{int(timeout * 1000)}ms",))
    return conn


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


_NODE_SQL = """
SELECT pg_is_in_recovery() AS in_recovery,
       current_setting('server_version') AS server_version,
       current_setting('cluster_name') AS cluster_name,
       current_setting('synchronous_standby_names') AS synchronous_standby_names,
       CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_lsn()::text END AS current_lsn,
       CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_flush_lsn()::text END
         AS flush_lsn,
       CASE WHEN pg_is_in_recovery() THEN NULL
            ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int
       END AS primary_timeline,
       pg_last_wal_receive_lsn()::text AS receive_lsn,
       pg_last_wal_replay_lsn()::text AS replay_lsn,
       pg_last_xact_replay_timestamp() AS last_replay_at,
       CASE WHEN has_function_privilege('pg_control_checkpoint()', 'EXECUTE')
            THEN (SELECT timeline_id FROM pg_control_checkpoint()) END AS checkpoint_timeline,
       CASE WHEN pg_is_in_recovery() AND has_function_privilege('pg_ls_waldir()', 'EXECUTE')
            THEN (SELECT max(('x' || substr(name, 1, 8))::bit(32)::int) FROM pg_ls_waldir()
                  WHERE name ~ '^[0-9A-F]{8}([0-9A-F]{16}|[.]history)$') END AS wal_timeline
"""

_RECEIVER_SQL = """
SELECT status, receive_start_tli, received_tli, written_lsn::text AS written_lsn,
       flushed_lsn::text AS flushed_lsn, latest_end_lsn::text AS latest_end_lsn,
       last_msg_receipt_time, slot_name, sender_host, sender_port
FROM pg_stat_wal_receiver
"""

_SENDERS_SQL = """
SELECT application_name, client_addr::text AS client_addr, state, sync_state,
       sent_lsn::text AS sent_lsn, write_lsn::text AS write_lsn,
       flush_lsn::text AS flush_lsn, replay_lsn::text AS replay_lsn,
       pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint AS replay_lag_bytes,
       extract(epoch FROM replay_lag)::float AS replay_lag_s
FROM pg_stat_replication ORDER BY application_name
"""

_SLOTS_SQL = """
SELECT slot_name, slot_type, active, restart_lsn::text AS restart_lsn, wal_status
FROM pg_replication_slots ORDER BY slot_name
"""


def node_status(dsn: str, *, timeout: float = 3.0) -> dict[str, Any]:
    """Role and WAL positions of one node.

    Returns ``{reachable, error, role ('primary' | 'replica' | None), in_recovery,
    timeline, current_lsn, flush_lsn, receive_lsn, replay_lsn, last_replay_at,
    cluster_name, synchronous_standby_names, server_version, node}``. ``timeline`` is the
    primary's current timeline, or on a replica the one it receives; when it receives
    nothing (its primary is gone), the newest timeline its pg_wal holds WAL or a
    history file of (the last restartpoint's lags behind a timeline switch until the
    next restartpoint)."""
    out: dict[str, Any] = {"node": safe_conninfo(dsn), "reachable": False, "error": None,
                           "role": None, "in_recovery": None, "timeline": None}
    try:
        with _connect(dsn, timeout) as conn:
            row = conn.execute(_NODE_SQL).fetchone() or {}
            receiver = conn.execute(_RECEIVER_SQL).fetchone() if row.get("in_recovery") else None
    except psycopg.Error as exc:
        out["error"] = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
        return out
    in_recovery = bool(row["in_recovery"])
    if in_recovery:
        timeline = (receiver or {}).get("received_tli") or max(
            (t for t in (row["wal_timeline"], row["checkpoint_timeline"]) if t), default=None)
    else:
        timeline = row["primary_timeline"]
    out.update(
        reachable=True,
        role="replica" if in_recovery else "primary",
        in_recovery=in_recovery,
        timeline=timeline,
        current_lsn=row["current_lsn"],
        flush_lsn=row["flush_lsn"],
        receive_lsn=row["receive_lsn"],
        replay_lsn=row["replay_lsn"],
        last_replay_at=_iso(row["last_replay_at"]),
        cluster_name=row["cluster_name"],
        synchronous_standby_names=row["synchronous_standby_names"],
        server_version=row["server_version"],
    )
    return out


def replication_status(dsn: str, *, timeout: float = 3.0) -> dict[str, Any]:
    """Streaming state seen from one node.

    On a replica: ``receiver`` (pg_stat_wal_receiver: status, slot, sender,
    timelines, LSNs) and ``streaming`` (the receiver's status is 'streaming'). On a
    primary: ``senders`` (pg_stat_replication, one per connected replica, with its
    replay lag in bytes and seconds) and ``slots``. Both carry the node_status
    fields."""
    out = node_status(dsn, timeout=timeout)
    out.update(streaming=False, receiver=None, senders=[], slots=[])
    if not out["reachable"]:
        return out
    try:
        with _connect(dsn, timeout) as conn:
            if out["in_recovery"]:
                rec = conn.execute(_RECEIVER_SQL).fetchone()
                if rec:
                    rec["last_msg_receipt_time"] = _iso(rec["last_msg_receipt_time"])
                out["receiver"] = rec
                out["streaming"] = bool(rec and rec["status"] == "streaming")
            else:
                out["senders"] = conn.execute(_SENDERS_SQL).fetchall()
                out["slots"] = conn.execute(_SLOTS_SQL).fetchall()
    except psycopg.Error as exc:
        out["error"] = str(exc).strip().splitlines()[0]
    return out


def replica_lag(primary_dsn: str, replica_dsn: str, *, timeout: float = 3.0) -> dict[str, Any]:
    """How far a replica is behind a primary, measured from both ends.

    ``lag_bytes`` = primary's flush LSN - replica's replay LSN (None when either is
    unreachable); ``caught_up`` is True only when that is 0, the evidence a planned
    failover needs for RPO 0."""
    primary = node_status(primary_dsn, timeout=timeout)
    replica = node_status(replica_dsn, timeout=timeout)
    lag = lag_bytes(primary.get("flush_lsn"), replica.get("replay_lsn"))
    return {"primary": primary, "replica": replica, "lag_bytes": lag,
            "caught_up": lag == 0,
            "last_replay_at": replica.get("last_replay_at")}


@probe("postgres.status")
def status_probe(ctx: StepContext, dsn: str, timeout: float = 3.0) -> dict[str, Any]:
    """Role, timeline and LSNs of the node at ``dsn``."""
    return node_status(dsn, timeout=timeout)


@probe("postgres.replication")
def replication_probe(ctx: StepContext, dsn: str, timeout: float = 3.0) -> dict[str, Any]:
    """Streaming state of the node at ``dsn`` (receiver on a replica, senders on a primary)."""
    return replication_status(dsn, timeout=timeout)


@probe("postgres.lag")
def lag_probe(ctx: StepContext, primary: str, replica: str,
              timeout: float = 3.0) -> dict[str, Any]:
    """Replay lag in bytes of ``replica`` behind ``primary`` (both libpq conninfo)."""
    return replica_lag(primary, replica, timeout=timeout)
