"""One run's notifications: who hears what (the severity), delivery that never
blocks or fails the recovery, and the cadence of ongoing updates.

A notify step renders its template and queues one message per channel; each
channel has its own worker thread that delivers in order (a PagerDuty resolve
after its trigger, a status page update after its create) with a bounded
timeout per attempt, retries with backoff, and one ``notification`` record per
delivery (channel, ok, detail) that the engine journals and the reports list.
At the end of the run the queues are drained, for a bounded time.
"""

from __future__ import annotations

import contextlib
import json
import queue
import socket
import threading
import time
import urllib.error
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from drkit.durations import format_duration
from drkit.errors import ConfigError
from drkit.notify.cadence import Ticker
from drkit.notify.channels import CHANNEL_CLASSES, Channel, DeliveryError, Message
from drkit.notify.settings import policy
from drkit.notify.templates import event_of, render_template, severity_context
from drkit.redact import redact

#: The template the cadence sends when a channel names none for updates.
UPDATE_TEMPLATE = "ongoing-update"


@dataclass(frozen=True)
class DeliveryRecord:
    """What became of one message on one channel (a journal ``notification`` event)."""

    step: str | None
    channel: str
    template: str
    #: trigger, update or resolve (what the message does to the incident).
    action: str
    ok: bool
    detail: str
    attempts: int
    #: What the channel answered that a resumed run needs (a status page's incident id).
    ref: str | None = None

    def fields(self) -> dict[str, Any]:
        return redact(asdict(self))


class Notifier:
    """The notifications of one run on one environment at one severity."""

    def __init__(self, env: Any, project_root: Path, *, run: dict[str, Any], severity: str,
                 dry_run: bool, record: Callable[[DeliveryRecord], None],
                 progress: Callable[[], dict[str, Any]] | None = None,
                 prior_events: list[dict[str, Any]] | None = None) -> None:
        self.env = env
        self.project_root = project_root
        self.run = dict(run)
        self.severity = severity
        self.dry_run = dry_run
        self._record = record
        self._progress = progress
        settings = env.settings
        self.severity_settings = (settings.get("severities") or {}).get(severity) or {}
        self.policy = policy(settings)
        cfg = (settings.get("notify") or {}).get("channels") or {}
        self.channels: dict[str, Channel] = {
            name: CHANNEL_CLASSES[spec["type"]](name=name, settings=spec,
                                                project_root=project_root,
                                                fetch_secret=self._fetch_secret)
            for name, spec in cfg.items()
        }
        for e in prior_events or ():
            if e.get("event") == "notification" and e.get("ref") and e["channel"] in self.channels:
                self.channels[e["channel"]].state["incident_id"] = e["ref"]
        self.intervals = {n: _seconds(v) for n, v in
                          (self.severity_settings.get("updates") or {}).items()
                          if n in self.channels}
        self._queues: dict[str, queue.Queue[Message | None]] = {}
        self._workers: dict[str, threading.Thread] = {}
        self._lock = threading.Lock()
        self._closed = False
        self._resolved: set[str] = set()
        self.ticker = Ticker(self.intervals, self._tick)

    # ------------------------------------------------------------ who, what

    def audience(self, names: list[str] | None = None) -> list[str]:
        """The channels a message goes to: the step's own list, else the
        severity's ``notify``, else every channel of the environment."""
        if names:
            unknown = [n for n in names if n not in self.channels]
            if unknown:
                raise ConfigError(
                    f"unknown notification channel(s): {', '.join(unknown)}",
                    hint="channels of this environment: "
                         f"{', '.join(sorted(self.channels)) or 'none'}")
            return list(names)
        if "notify" in self.severity_settings:
            return list(self.severity_settings["notify"])
        return sorted(self.channels)

    def context(self, extra: dict[str, Any] | None = None, channel: str | None = None
                ) -> dict[str, Any]:
        """What a template sees: the step's context plus run, severity, progress, vars."""
        extra = dict(extra or {})
        every = self.intervals.get(channel) if channel else None
        run = {**self.run, **(extra.pop("run", None) or {})}
        return {
            **extra, "run": run,
            "severity": severity_context(self.severity, self.severity_settings,
                                         f"in {format_duration(every)}" if every else None),
            "progress": self.progress(), "vars": extra.get("vars") or {},
        }

    def progress(self) -> dict[str, Any]:
        base = {"elapsed": _elapsed(self.run.get("started_at")), "running": [], "completed": [],
                "failed": [], "decisions": [], "rto_target": "not set"}
        if self._progress is not None:
            with contextlib.suppress(Exception):  # a courtesy; the update still goes out
                base.update(self._progress())
        return base

    def notify(self, template: str, context: dict[str, Any], names: list[str] | None = None,
               step: str | None = None) -> tuple[str, list[str]]:
        """Render ``template`` (strict) and queue it for each channel of the audience
        (a channel may ask for its own template for this event). Returns the text and
        the channels; never raises for a channel: a failure becomes a record."""
        targets = self.audience(names)
        event = event_of(template)
        try:
            text = render_template(template, self.context(context), self.project_root)
        except ConfigError as exc:  # each channel's record says so; the run goes on
            text = f"(not rendered: {exc.message})"
        for name in targets:
            own = ((self.channels[name].settings.get("templates") or {}).get(event)
                   or template)
            try:
                body = render_template(own, self.context(context, name), self.project_root)
            except ConfigError as exc:
                self._emit(DeliveryRecord(step, name, own, event, False, exc.message, 0))
                continue
            self.submit(name, self._message(own, event, body, step))
        return text, targets

    def _message(self, template: str, event: str, text: str, step: str | None) -> Message:
        subject = next((ln.strip("# ").strip() for ln in text.splitlines() if ln.strip()),
                       template)
        return Message(template=template, event=event, subject=subject, text=text,
                       severity=self.severity, run_id=str(self.run.get("id")),
                       runbook=str(self.run.get("runbook")), env=str(self.run.get("env")),
                       step=step)

    # ------------------------------------------------------------ cadence

    def start_updates(self) -> None:
        """Start the ongoing updates the severity asks for (not in a dry run)."""
        if not self.dry_run:
            self.ticker.start()

    def _tick(self, name: str) -> None:
        template = ((self.channels[name].settings.get("templates") or {}).get("update")
                    or UPDATE_TEMPLATE)
        try:
            text = render_template(template, self.context({}, name), self.project_root)
        except ConfigError as exc:
            self._emit(DeliveryRecord(None, name, template, "update", False, exc.message, 0))
            return
        self.submit(name, self._message(template, "update", text, None))

    # ------------------------------------------------------------ delivery

    def submit(self, name: str, msg: Message) -> None:
        """Queue ``msg`` for channel ``name``; its worker delivers it."""
        if self.dry_run:
            return
        with self._lock:
            if self._closed:
                return
            # Once a channel heard the resolution, the cadence's updates stop for it.
            if msg.event == "resolve":
                self._resolved.add(name)
            elif msg.step is not None:
                self._resolved.discard(name)
            elif name in self._resolved:
                return
            if name not in self._workers:
                self._queues[name] = queue.Queue()
                worker = threading.Thread(target=self._work, args=(name,), daemon=True,
                                          name=f"drkit-notify-{name}")
                self._workers[name] = worker
                worker.start()
            self._queues[name].put(msg)

    def _work(self, name: str) -> None:
        q = self._queues[name]
        while True:
            msg = q.get()
            if msg is None:
                return
            self._emit(self.deliver(self.channels[name], msg))

    def deliver(self, channel: Channel, msg: Message) -> DeliveryRecord:
        """Deliver with a bounded timeout per attempt and retries with backoff."""
        attempts = 1 + int(self.policy["retries"])
        last = ""
        for attempt in range(1, attempts + 1):
            try:
                detail = channel.deliver(msg, self.policy["timeout"])
                return DeliveryRecord(msg.step, channel.name, msg.template, msg.event, True,
                                      str(detail), attempt, channel.state.get("incident_id"))
            except Exception as exc:  # every failure is reported, none escapes
                last = describe_failure(exc, self.policy["timeout"])
                if not _retryable(exc):
                    break
            if attempt < attempts:
                time.sleep(self.policy["backoff"] * 2 ** (attempt - 1))
        return DeliveryRecord(msg.step, channel.name, msg.template, msg.event, False,
                              f"failed after {attempt} attempt(s): {last}", attempt,
                              channel.state.get("incident_id"))

    def _emit(self, rec: DeliveryRecord) -> None:
        with self._lock:
            if self._closed:
                return
        with contextlib.suppress(Exception):  # recording must not kill a worker
            self._record(rec)

    def close(self, timeout: float | None = None) -> list[str]:
        """Stop the updates and wait (bounded) for queued messages; the channels
        still delivering when time is up (their records are dropped)."""
        self.ticker.stop()
        with self._lock:
            workers = dict(self._workers)
            for q in self._queues.values():
                q.put(None)
        p = self.policy
        per_message = (1 + p["retries"]) * p["timeout"] + p["backoff"] * (2 ** p["retries"])
        bound = timeout if timeout is not None else min(300.0, 2 * per_message + 5)
        deadline = time.monotonic() + bound
        for worker in workers.values():
            worker.join(max(0.0, deadline - time.monotonic()))
        pending = [n for n, w in workers.items() if w.is_alive()]
        with self._lock:
            self._closed = True
        return pending

    # ------------------------------------------------------------ secrets

    def _fetch_secret(self, secret_id: str, region: str | None) -> str:
        """A secret from the estate's Secrets Manager (the control region's unless
        the channel names a region), with the delivery timeout."""
        from botocore.config import Config

        cloud = (self.env.region(region)["cloud_region"] if region
                 else self.env.settings.get("control_region"))
        timeout = self.policy["timeout"]
        client = self.env.boto3_session(cloud).client(
            "secretsmanager",
            endpoint_url=(self.env.settings.get("aws") or {}).get("endpoint_url"),
            config=Config(connect_timeout=timeout, read_timeout=timeout,
                          retries={"max_attempts": 1}))
        try:
            value = client.get_secret_value(SecretId=secret_id)["SecretString"]
        except Exception as exc:
            raise DeliveryError(f"Secrets Manager {secret_id}: {type(exc).__name__}") from None
        try:  # a JSON secret holds one value
            data = json.loads(value)
            if isinstance(data, dict) and len(data) == 1:
                value = str(next(iter(data.values())))
        except ValueError:
            pass
        return value


def describe_failure(exc: BaseException, timeout: float) -> str:
    """One line for a failed attempt, secrets masked by the caller's redact."""
    if isinstance(exc, urllib.error.HTTPError):
        body = ""
        with contextlib.suppress(Exception):
            body = exc.read(200).decode(errors="replace").strip()
        return f"HTTP {exc.code} {exc.reason}" + (f": {body}" if body else "")
    if isinstance(exc, urllib.error.URLError):
        exc = exc.reason if isinstance(exc.reason, BaseException) else exc
    if isinstance(exc, socket.timeout | TimeoutError):
        return f"no answer within {format_duration(timeout)}"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    return f"{type(exc).__name__}: {exc}" if not isinstance(exc, DeliveryError) else str(exc)


def _retryable(exc: BaseException) -> bool:
    """A client error (bad payload, bad key) will fail the same way again."""
    if isinstance(exc, urllib.error.HTTPError):
        return exc.code >= 500 or exc.code in (408, 429)
    return not isinstance(exc, DeliveryError)


def _seconds(value: Any) -> float:
    from drkit.durations import parse_duration
    return parse_duration(value)


def _elapsed(started_at: str | None) -> str:
    if not started_at:
        return "0s"
    try:
        begin = datetime.strptime(started_at, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    except ValueError:
        return "unknown"
    return format_duration(max(0.0, (datetime.now(UTC) - begin).total_seconds()))
