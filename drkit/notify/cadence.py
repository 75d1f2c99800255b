"""The plans' update cadence: while a run is long, an "ongoing update" goes to
each channel the severity names, every interval the severity gives it (status
page every 5-30 minutes, executives every 30 minutes).

A background thread per run; it only renders and queues (delivery is the
dispatcher's, which never blocks a step), and stops when the run finishes.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable


class Ticker:
    """Calls ``send(channel)`` for each channel every ``intervals[channel]`` seconds
    until stopped. The first call is one interval after ``start``."""

    def __init__(self, intervals: dict[str, float], send: Callable[[str], None],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.intervals = dict(intervals)
        self._send = send
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if not self.intervals or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._loop, name="drkit-notify-cadence",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        now = self._clock()
        due = {name: now + every for name, every in self.intervals.items()}
        while not self._stop.is_set():
            name = min(due, key=due.__getitem__)
            wait = due[name] - self._clock()
            if wait > 0 and self._stop.wait(wait):
                return
            with contextlib.suppress(Exception):  # an update must never take the run down
                self._send(name)
            due[name] = max(due[name] + self.intervals[name], self._clock())
