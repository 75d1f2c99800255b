"""One run per environment: a lock that names its holder.

Two operators failing over the same estate at once is the worst thing a DR tool
can allow, so every run takes the environment's lock first. A refusal names the
holder (user, host, pid, run id, since) and says what to do. A lock whose
process is gone is reported as stale and is never stolen silently: only
``--break-lock`` (``break_stale``) or a resume of the very same run
(``takeover_run_id``) replaces it.

Backends: a local file (default) and a DynamoDB item written with conditional
writes, for teams, so the lock lives outside the failed region.
"""

from __future__ import annotations

import contextlib
import fcntl
import getpass
import json
import os
import socket
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from drkit.errors import ConfigError, LockHeld
from drkit.fsutil import fsync_dir, write_temp_beside


@dataclass(frozen=True)
class LockHolder:
    """Who holds (or wants) a lock. ``since`` is ISO UTC, e.g. 2026-11-22T03:01:12Z."""

    user: str
    host: str
    pid: int
    run_id: str
    since: str

    @classmethod
    def current(cls, run_id: str) -> LockHolder:
        """This process, on this host, for ``run_id``, as of now."""
        try:
            user = getpass.getuser()
        except (KeyError, OSError):  # no passwd entry (containers)
            user = f"uid{os.getuid()}"
        now = datetime.now(UTC)
        return cls(user=user, host=socket.gethostname(), pid=os.getpid(), run_id=run_id,
                   since=now.strftime("%Y-%m-%dT%H:%M:%SZ"))

    def describe(self) -> str:
        """``alice@bastion-1 (pid 4121, run 20261122T030112Z-RB-DR-003) since 03:01:12Z``.

        The date is shown too when the lock is not from today (UTC): a lock from
        last week reads very differently from one taken a minute ago.
        """
        since = self.since
        try:
            at = datetime.strptime(self.since, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        except ValueError:
            pass
        else:
            today = datetime.now(UTC).date()
            since = f"{at:%H:%M:%S}Z" if at.date() == today else f"{at:%Y-%m-%d %H:%M:%S}Z"
        return f"{self.user}@{self.host} (pid {self.pid}, run {self.run_id}) since {since}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> LockHolder:
        """Parse a stored holder; raises ValueError if it is not exactly one."""
        names = {f.name for f in fields(cls)}
        if not isinstance(data, dict) or set(data) != names:
            raise ValueError(f"expected exactly the keys {sorted(names)}")
        if not isinstance(data["pid"], int) or not all(
            isinstance(data[k], str) for k in names - {"pid"}
        ):
            raise ValueError("pid must be an integer and the other keys strings")
        return cls(**data)

    def same_owner(self, other: LockHolder) -> bool:
        """Whether ``other`` is this very process's run (host, pid and run id)."""
        return (self.host, self.pid, self.run_id) == (other.host, other.pid, other.run_id)


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host (a zombie counts as gone)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    # The state follows the parenthesised command name, which may hold spaces.
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


def held_message(holder: LockHolder) -> str:
    return (f"lock held by {holder.describe()}; wait for it to finish, "
            "or run `invoke status` to see it")


def judge(existing: LockHolder, me: LockHolder, *, break_stale: bool | str,
          takeover_run_id: str | None, alive: Callable[[int], bool] = pid_alive) -> str:
    """Decide whether ``me`` may replace ``existing``'s lock.

    Returns the one-line decision when it may; raises LockHeld saying why not
    and what to do otherwise. A pid is only meaningful on its own host, so on
    another host staleness is not decided: only an explicit break or a resume
    of the same run replaces the lock.

    A break or takeover only applies to a lock taken before ``me.since``: the
    operator asked to break the lock they were shown, not one another breaker
    took a moment ago. ``break_stale`` may be a run id to pin the break to
    exactly that holder.
    """
    older = _before(existing.since, me.since)
    breaking = bool(break_stale) and (break_stale is True or break_stale == existing.run_id)
    breaking = breaking and older
    takeover = takeover_run_id is not None and takeover_run_id == existing.run_id and older
    why_not = ""
    if (break_stale or takeover_run_id) and not older:
        why_not = (" (it was taken after this run started, so --break-lock and --resume "
                   "do not apply to it)")
    if existing.host == me.host:
        if alive(existing.pid):
            raise LockHeld(held_message(existing))
        if breaking:
            return (f"broke the stale lock of {existing.describe()}: its process is gone "
                    "(--break-lock)")
        if takeover:
            return (f"took over the stale lock of {existing.describe()}: its process is gone "
                    "and this is a resume of the same run")
        raise LockHeld(
            f"stale lock: held by {existing.describe()} whose process is gone{why_not}; "
            "re-run with --break-lock if that run is dead"
        )
    if breaking:
        return (f"broke the lock of {existing.describe()} (--break-lock); it is on another "
                f"host, so whether its process is alive was not checked")
    if takeover:
        return (f"took over the lock of {existing.describe()}: this is a resume of the same "
                f"run; it is on another host, so whether its process is alive was not checked")
    raise LockHeld(
        f"lock held by {existing.describe()}{why_not}; it is on another host, so whether its "
        "process is alive cannot be checked from here; wait for it to finish, run `invoke "
        "status` to see it, or re-run with --break-lock if that run is dead"
    )


def _before(a: str, b: str) -> bool:
    """Whether ISO time ``a`` is strictly earlier than ``b`` (True if unparsable)."""
    try:
        return datetime.fromisoformat(a) < datetime.fromisoformat(b)
    except ValueError:
        return True


class Lock(Protocol):
    """What the engine needs from a lock backend."""

    def acquire(self, holder: LockHolder, *, break_stale: bool | str = False,
                takeover_run_id: str | None = None) -> str: ...

    def release(self, holder: LockHolder) -> str: ...

    def read(self) -> LockHolder | None: ...


class FileLock:
    """A lock file holding its holder as JSON, for one machine (the default).

    The file appears complete or not at all: the holder is written to a temp
    file and hard-linked into place (link fails if the lock exists). Replacing
    or removing a lock happens under a short flock on a guard file beside it,
    so two breakers of one stale lock cannot both win; the kernel drops that
    flock if its process dies, so the guard itself can never go stale.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._guard = self.path.with_name(self.path.name + ".guard")

    @contextlib.contextmanager
    def _guarded(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._guard, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the flock

    def acquire(self, holder: LockHolder, *, break_stale: bool | str = False,
                takeover_run_id: str | None = None) -> str:
        """Take the lock for ``holder`` and return the decision, or raise LockHeld."""
        with self._guarded():
            replaced = None
            existing = self.read()
            if existing is not None:
                replaced = judge(existing, holder, break_stale=break_stale,
                                 takeover_run_id=takeover_run_id)
                os.unlink(self.path)
            tmp = write_temp_beside(self.path, json.dumps(holder.to_dict()) + "\n")
            try:
                os.link(tmp, self.path)
            except FileExistsError:
                # Only a drkit older than the guard, or a hand-made file, gets here.
                raise LockHeld(held_message(self.read() or holder)) from None
            finally:
                os.unlink(tmp)
            fsync_dir(self.path.parent)
        taken = f"acquired lock {self.path} for run {holder.run_id}"
        return f"{replaced}; {taken}" if replaced else taken

    def release(self, holder: LockHolder) -> str:
        """Remove the lock if it still names ``holder``; else LockHeld "not the owner"."""
        with self._guarded():
            existing = self.read()
            if existing is None:
                return f"lock {self.path} was already released"
            if not existing.same_owner(holder):
                raise LockHeld(
                    f"not the owner: lock {self.path} is held by {existing.describe()}, "
                    f"not by run {holder.run_id} (pid {holder.pid})"
                )
            os.unlink(self.path)
            fsync_dir(self.path.parent)
        return f"released lock {self.path} of run {holder.run_id}"

    def read(self) -> LockHolder | None:
        """The current holder, or None when the lock is free."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        try:
            return LockHolder.from_dict(json.loads(text))
        except ValueError as exc:
            raise LockHeld(
                f"lock file {self.path} is unreadable ({exc})",
                hint="if no drkit run is active on this environment, delete that file",
            ) from None


class DynamoDBLock:
    """A lock as one DynamoDB item (hash key ``lock_key``), for teams.

    Conditional writes make every change a compare-and-swap: acquire only if
    no item exists; break or take over only if the item still names the holder
    that was judged; release only if it names us.
    """

    def __init__(self, table: str, key: str, *, client: Any) -> None:
        self.table = table
        self.key = key
        self.client = client

    def _errors(self) -> Any:
        return self.client.exceptions

    def acquire(self, holder: LockHolder, *, break_stale: bool | str = False,
                takeover_run_id: str | None = None) -> str:
        """Take the lock for ``holder`` and return the decision, or raise LockHeld."""
        item = self._item(holder)
        for _ in range(5):  # each retry means the item changed under us; judge again
            try:
                self.client.put_item(TableName=self.table, Item=item,
                                     ConditionExpression="attribute_not_exists(lock_key)")
                return f"acquired lock {self._where()} for run {holder.run_id}"
            except self._errors().ConditionalCheckFailedException:
                pass
            except self._errors().ResourceNotFoundException:
                raise self._no_table() from None
            existing = self.read()
            if existing is None:
                continue  # released between our put and our read
            decision = judge(existing, holder, break_stale=break_stale,
                             takeover_run_id=takeover_run_id)
            try:
                self.client.put_item(
                    TableName=self.table, Item=item,
                    ConditionExpression="#r = :r AND #p = :p AND #h = :h",
                    ExpressionAttributeNames={"#r": "run_id", "#p": "pid", "#h": "host"},
                    ExpressionAttributeValues={
                        ":r": {"S": existing.run_id}, ":p": {"N": str(existing.pid)},
                        ":h": {"S": existing.host},
                    },
                )
                return f"{decision}; acquired lock {self._where()} for run {holder.run_id}"
            except self._errors().ConditionalCheckFailedException:
                # Someone else replaced the holder we judged (another breaker or
                # resume won). --break-lock was meant for that holder, not for
                # the winner: judge the new one without breaking.
                break_stale, takeover_run_id = False, None
        current = self.read()
        raise LockHeld(held_message(current) if current else
                       f"lock {self._where()} kept changing; try again")

    def release(self, holder: LockHolder) -> str:
        """Delete the lock if it still names ``holder``; else LockHeld "not the owner"."""
        try:
            self.client.delete_item(
                TableName=self.table, Key={"lock_key": {"S": self.key}},
                ConditionExpression="#r = :r AND #p = :p AND #h = :h",
                ExpressionAttributeNames={"#r": "run_id", "#p": "pid", "#h": "host"},
                ExpressionAttributeValues={
                    ":r": {"S": holder.run_id}, ":p": {"N": str(holder.pid)},
                    ":h": {"S": holder.host},
                },
            )
        except self._errors().ConditionalCheckFailedException:
            existing = self.read()
            if existing is None:
                return f"lock {self._where()} was already released"
            raise LockHeld(
                f"not the owner: lock {self._where()} is held by {existing.describe()}, "
                f"not by run {holder.run_id} (pid {holder.pid})"
            ) from None
        except self._errors().ResourceNotFoundException:
            raise self._no_table() from None
        return f"released lock {self._where()} of run {holder.run_id}"

    def read(self) -> LockHolder | None:
        """The current holder (strongly consistent read), or None when free."""
        try:
            reply = self.client.get_item(TableName=self.table,
                                         Key={"lock_key": {"S": self.key}},
                                         ConsistentRead=True)
        except self._errors().ResourceNotFoundException:
            raise self._no_table() from None
        item = reply.get("Item")
        if not item:
            return None
        try:
            return LockHolder(user=item["user"]["S"], host=item["host"]["S"],
                              pid=int(item["pid"]["N"]), run_id=item["run_id"]["S"],
                              since=item["since"]["S"])
        except (KeyError, ValueError) as exc:
            raise LockHeld(
                f"lock {self._where()} holds an unreadable item (missing {exc})",
                hint="if no drkit run is active on this environment, delete that item",
            ) from None

    def _item(self, holder: LockHolder) -> dict[str, Any]:
        return {
            "lock_key": {"S": self.key}, "user": {"S": holder.user},
            "host": {"S": holder.host}, "pid": {"N": str(holder.pid)},
            "run_id": {"S": holder.run_id}, "since": {"S": holder.since},
        }

    def _where(self) -> str:
        return f"dynamodb://{self.table}/{self.key}"

    def _no_table(self) -> ConfigError:
        return ConfigError(
            f"lock.table: DynamoDB table {self.table!r} does not exist",
            hint="create it (hash key lock_key, type S) or run the environment's setup",
        )


def ensure_table(client: Any, table: str) -> str:
    """Create the lock table (on-demand billing, hash key ``lock_key``) if missing.

    Returns the decision. Safe to call from two places at once.
    """
    try:
        client.describe_table(TableName=table)
        return f"lock table {table} exists"
    except client.exceptions.ResourceNotFoundException:
        pass
    try:
        client.create_table(
            TableName=table, BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "lock_key", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "lock_key", "KeyType": "HASH"}],
        )
        decision = f"created lock table {table}"
    except client.exceptions.ResourceInUseException:
        decision = f"lock table {table} was being created by someone else"
    client.get_waiter("table_exists").wait(TableName=table)
    return decision


_FILE_KEYS = {"backend"}
_DYNAMODB_KEYS = {"backend", "table", "region", "endpoint_url"}


def make_lock(settings: dict[str, Any] | None, *, env_name: str, state_dir: Path,
              boto3_session_factory: Callable[[], Any] | None = None,
              endpoint_url: str | None = None) -> FileLock | DynamoDBLock:
    """The lock of environment ``env_name`` from its ``lock:`` settings.

    ``{backend: file}`` (the default) -> ``<state_dir>/locks/<env>.lock``;
    ``{backend: dynamodb, table, region}`` -> item ``<env>`` in that table.
    ``boto3_session_factory()`` returns the boto3 Session to use (the
    environment's credentials); ``endpoint_url`` (or ``lock.endpoint_url``)
    points at a non-AWS endpoint such as the lab's moto server.
    """
    settings = dict(settings or {"backend": "file"})
    backend = settings.get("backend", "file")
    if backend == "file":
        _no_unknown_keys(settings, _FILE_KEYS)
        return FileLock(Path(state_dir) / "locks" / f"{env_name}.lock")
    if backend == "dynamodb":
        _no_unknown_keys(settings, _DYNAMODB_KEYS)
        problems = [f"lock.{k}: required for backend dynamodb (a string)"
                    for k in ("table", "region")
                    if not isinstance(settings.get(k), str) or not settings.get(k)]
        if problems:
            raise ConfigError("lock: incomplete dynamodb settings", problems=problems)
        if boto3_session_factory is None:
            import boto3

            boto3_session_factory = boto3.Session
        session = boto3_session_factory()
        client = session.client("dynamodb", region_name=settings["region"],
                                endpoint_url=settings.get("endpoint_url") or endpoint_url)
        return DynamoDBLock(settings["table"], env_name, client=client)
    raise ConfigError(f"lock.backend: unknown backend {backend!r} (expected file or dynamodb)")


def _no_unknown_keys(settings: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(settings) - allowed)
    if unknown:
        raise ConfigError(
            "lock: unknown settings",
            problems=[f"lock.{k}: unknown key for backend {settings.get('backend', 'file')} "
                      f"(allowed: {', '.join(sorted(allowed))})" for k in unknown],
        )
