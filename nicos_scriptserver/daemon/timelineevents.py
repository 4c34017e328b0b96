"""Sends ``ss_timeline`` to clients when the expected times may change.

Every queue event (a job moved, edited, skipped, started, paused, got its
estimate or reported progress) can move the expected times of all later
jobs. Computing and sending them is O(waiting jobs), so bursts of events
(a batch of 500 jobs, a generator moving many) are coalesced: at most one
``ss_timeline`` per `interval`, and always one after the last change.

While the times move with the clock alone (the current job paused, or
overrunning its estimate: see `moves_with_clock`) nothing changes in the
queue, but every expected time moves on; the timeline is then sent again
every `refresh` seconds, so that clients that show the last event (the
IBEX GUI through the proxy, our panels) do not show frozen start times.
"""

import threading
from typing import Callable, List, Optional

from nicos_scriptserver.estimates.timeline import moves_with_clock


class TimelineEmitter:
    """Queue listener that emits the timeline, coalescing bursts."""

    def __init__(self, compute: Callable[[], dict],
                 emit: Callable[[str, object], None], interval: float = 0.5,
                 refresh: float = 1.0):
        self._compute = compute
        self._emit = emit
        self._interval = interval
        self._refresh = refresh
        self._changed = threading.Event()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name='timeline events')
        self._thread.start()

    def __call__(self, events: List[tuple]) -> None:
        self._changed.set()

    def stop(self) -> None:
        self._stopped.set()
        self._changed.set()

    def _run(self) -> None:
        timeout: Optional[float] = None
        while True:
            self._changed.wait(timeout)
            if self._stopped.is_set():
                return
            self._changed.clear()
            try:
                data = self._compute()
                timeout = self._refresh if moves_with_clock(data) else None
                self._emit('ss_timeline', data)
            except Exception:   # a client's failure must not end the thread
                pass
            self._stopped.wait(self._interval)
