"""Turns the job queue's events into the script server's daemon events.

Clients that know them get ``ss_job`` (a job changed) and ``ss_queue``
(the waiting list or the queue's state changed), each with ``seq``, the
number of the queue's last change (see `queue.listing`): a client that
sees it jump knows it missed changes and asks for them (``ss_changes``). What stock NICOS
clients see of the queue (requests, status) is `stockview`'s.
"""

from typing import Callable, List

from nicos_scriptserver.queue.change import (JOB_CHANGED, QUEUE_CHANGED,
                                             QUEUE_STATE)

Emit = Callable[[str, object], None]


class EventRelay:
    """Listener of the job queue that emits ``ss_job`` and ``ss_queue``."""

    def __init__(self, jobs, emit: Emit):
        self.jobs = jobs
        self.emit = emit

    def __call__(self, seq: int, events: List[tuple]) -> None:
        for name, data in events:
            if name == JOB_CHANGED:
                self.emit('ss_job', dict(data, seq=seq))
            elif name in (QUEUE_CHANGED, QUEUE_STATE):
                self.emit('ss_queue', self.queue_summary(seq, data))

    def queue_summary(self, seq: int, data: dict) -> dict:
        """What ``ss_queue`` carries: order and the queue's state."""
        current = self.jobs.current()
        summary = dict(self.jobs.state.to_dict(),
                       current=current.id if current else None, seq=seq)
        summary.update(data)
        return summary
