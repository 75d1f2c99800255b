"""What the operator sees while a run goes on.

Three displays share one interface: ``LiveDisplay`` (a rich table that redraws:
each step with its status, elapsed time and the current Ansible task or Terraform
resource), ``PlainDisplay`` (one line per event, for logs and CI), and
``JsonDisplay`` (``--json``: one JSON object per event on stdout, for machines).
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from drkit.durations import format_duration

_STATUS_STYLE = {
    "pending": "dim", "running": "bold yellow", "ok": "green", "skipped": "dim cyan",
    "failed": "bold red", "would-change": "magenta", "interrupted": "bold red",
}


class Display(Protocol):
    def start(self, header: str, steps: list[tuple[str, str, str]]) -> None: ...
    def step_started(self, step: str) -> None: ...
    def activity(self, step: str, text: str) -> None: ...
    def step_finished(self, step: str, status: str, duration_s: float, summary: str) -> None: ...
    def message(self, text: str, style: str = "") -> None: ...
    def event(self, event: dict[str, Any]) -> None: ...
    def close(self) -> None: ...


@dataclass
class _Row:
    step: str
    title: str
    kind: str
    status: str = "pending"
    started: float | None = None
    duration: float | None = None
    activity: str = ""


@dataclass
class _Rows:
    rows: dict[str, _Row] = field(default_factory=dict)

    def load(self, steps: list[tuple[str, str, str]]) -> None:
        for step, title, kind in steps:
            self.rows.setdefault(step, _Row(step, title, kind))

    def get(self, step: str) -> _Row:
        return self.rows.setdefault(step, _Row(step, step, "?"))


class LiveDisplay:
    """A redrawing table of steps (for a terminal)."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console()
        self._rows = _Rows()
        self._messages: list[Text] = []
        self._header = ""
        self._live: Live | None = None

    def _render(self) -> Group:
        table = Table(title=self._header, title_justify="left", expand=False)
        for col in ("#", "step", "kind", "status", "elapsed", "now"):
            table.add_column(col, no_wrap=col != "now", overflow="ellipsis")
        now = time.monotonic()
        for i, row in enumerate(self._rows.rows.values(), 1):
            elapsed = row.duration if row.duration is not None else (
                now - row.started if row.started else None)
            table.add_row(
                str(i), row.title, row.kind,
                Text(row.status, style=_STATUS_STYLE.get(row.status, "")),
                format_duration(elapsed) if elapsed is not None else "",
                row.activity[-80:],
            )
        return Group(table, *self._messages[-8:])

    def start(self, header: str, steps: list[tuple[str, str, str]]) -> None:
        self._header = header
        self._rows.load(steps)
        self._live = Live(self._render(), console=self.console, refresh_per_second=4,
                          get_renderable=self._render, transient=False)
        self._live.start()

    def step_started(self, step: str) -> None:
        row = self._rows.get(step)
        row.status, row.started, row.duration, row.activity = "running", time.monotonic(), None, ""

    def activity(self, step: str, text: str) -> None:
        self._rows.get(step).activity = text

    def step_finished(self, step: str, status: str, duration_s: float, summary: str) -> None:
        row = self._rows.get(step)
        row.status, row.duration, row.activity = status, duration_s, summary

    def message(self, text: str, style: str = "") -> None:
        if self._live:
            self._messages.append(Text(text, style=style))
        else:
            self.console.print(text, style=style or None)

    def event(self, event: dict[str, Any]) -> None:
        pass

    def close(self) -> None:
        if self._live:
            self._live.stop()
            self._live = None
            for msg in self._messages[:-8]:
                self.console.print(msg)
            self._messages.clear()


class PlainDisplay:
    """One line per event: readable in a log file or a CI console."""

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream or sys.stdout
        self._rows = _Rows()
        self._last_activity: dict[str, float] = {}
        self._running: list[str] = []

    def _print(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def start(self, header: str, steps: list[tuple[str, str, str]]) -> None:
        self._rows.load(steps)
        self._print(header)

    def step_started(self, step: str) -> None:
        row = self._rows.get(step)
        self._running.append(step)
        self._print(f"==> {row.title} [{row.kind}]")

    def activity(self, step: str, text: str) -> None:
        # At most one activity line per second per step keeps logs readable; while
        # lanes run steps side by side, each line says which step it is from.
        now = time.monotonic()
        if now - self._last_activity.get(step, 0.0) >= 1.0:
            self._last_activity[step] = now
            self._print(f"    [{step}] {text}" if len(self._running) > 1 else f"    {text}")

    def step_finished(self, step: str, status: str, duration_s: float, summary: str) -> None:
        if step in self._running:
            self._running.remove(step)
        row = self._rows.get(step)
        tail = f": {summary}" if summary else ""
        self._print(f"<== {row.title} {status} in {format_duration(duration_s)}{tail}")

    def message(self, text: str, style: str = "") -> None:
        self._print(text)

    def event(self, event: dict[str, Any]) -> None:
        pass

    def close(self) -> None:
        pass


class JsonDisplay:
    """Machine-readable: every journal event and step activity as one JSON line."""

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream or sys.stdout

    def _emit(self, obj: dict[str, Any]) -> None:
        print(json.dumps(obj, default=str), file=self.stream, flush=True)

    def start(self, header: str, steps: list[tuple[str, str, str]]) -> None:
        pass

    def step_started(self, step: str) -> None:
        pass

    def activity(self, step: str, text: str) -> None:
        self._emit({"event": "activity", "step": step, "text": text})

    def step_finished(self, step: str, status: str, duration_s: float, summary: str) -> None:
        pass

    def message(self, text: str, style: str = "") -> None:
        self._emit({"event": "message", "text": text})

    def event(self, event: dict[str, Any]) -> None:
        self._emit(event)

    def close(self) -> None:
        pass


def make_display(*, json_mode: bool = False, live: bool | None = None) -> Display:
    """The display for this terminal: JSON when asked, live on a TTY, plain otherwise."""
    if json_mode:
        return JsonDisplay()
    if live is None:
        live = sys.stdout.isatty()
    return LiveDisplay() if live else PlainDisplay()
