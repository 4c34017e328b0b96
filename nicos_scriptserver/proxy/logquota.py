"""Log lines that an attacker can cause, at a bounded rate.

A local account can open connections and fail logins as fast as it likes;
each would be worth a warning, and the log would fill the disk. A quota
logs the first few of a kind per window and then one line with how many
more there were.
"""

from __future__ import annotations

import logging
import time
from typing import Callable


class LogQuota:
    """At most *count* warnings per *window* seconds; the rest are counted
    and summed up in one line when the next window begins."""

    def __init__(self, log: logging.Logger, count: int = 20, window: float = 60.0,
                 clock: Callable[[], float] = time.monotonic):
        self._log = log
        self.count = count
        self.window = window
        self._clock = clock
        self._start = clock()
        self._used = 0
        self._suppressed = 0

    def warning(self, message: str, *args: object) -> None:
        now = self._clock()
        if now - self._start >= self.window:
            if self._suppressed:
                self._log.warning('... and %d more such warnings in %.0f s',
                                  self._suppressed, now - self._start)
            self._start, self._used, self._suppressed = now, 0, 0
        if self._used < self.count:
            self._used += 1
            self._log.warning(message, *args)
        else:
            self._suppressed += 1
