"""Turns the job queue's events into daemon events for all clients.

New clients get ``ss_job`` (a job changed) and ``ss_queue`` (the waiting
list or the queue's state changed). Stock NICOS clients (GUI, console,
IBEX) know only NICOS's request events, and only runnable jobs exist for
them; so the runnable list is compared before and after each change and
the difference is announced as ``request`` (new), ``blocked`` (removed or
skipped), ``rearranged`` (order) and ``updated`` (text changed).
"""

import threading
from typing import Callable, Dict, List

from nicos_scriptserver.daemon.execution import stock_request
from nicos_scriptserver.queue import JobState

_WAITING = {JobState.QUEUED.value, JobState.SKIPPED.value}

Emit = Callable[[str, object], None]


class EventRelay:
    """Listener of the job queue that emits daemon events."""

    def __init__(self, jobs, emit: Emit):
        self.jobs = jobs
        self.emit = emit
        self._lock = threading.Lock()
        self._runnable = self._runnable_now()

    def _runnable_now(self) -> Dict[int, dict]:
        return {job.id: stock_request(job) for job in self.jobs.waiting()
                if job.runnable}

    def __call__(self, events: List[tuple]) -> None:
        with self._lock:
            waiting_changed = False
            for name, data in events:
                if name == 'job_changed':
                    self.emit('ss_job', data)
                    waiting_changed |= data['state'] in _WAITING
                elif name in ('queue_changed', 'queue_state'):
                    self.emit('ss_queue', self.queue_summary(data))
                    waiting_changed = True
            # Lines and progress of the current job leave the waiting list
            # alone: no need to compare it (it may hold thousands of jobs).
            if waiting_changed:
                self._stock_events()

    def queue_summary(self, data: dict) -> dict:
        """What ``ss_queue`` carries: order and the queue's state."""
        current = self.jobs.current()
        summary = dict(self.jobs.state.to_dict(),
                       current=current.id if current else None)
        summary.update(data)
        return summary

    def _stock_events(self) -> None:
        before, after = self._runnable, self._runnable_now()
        self._runnable = after
        gone = [i for i in before if i not in after]
        current = self.jobs.current()
        gone = [i for i in gone if not current or current.id != i]
        if gone:
            self.emit('blocked', [str(i) for i in gone])
        for job_id, request in after.items():
            if job_id not in before:
                self.emit('request', request)
            elif request['script'] != before[job_id]['script']:
                self.emit('updated', request)
        kept_before = [i for i in before if i in after]
        kept_after = [i for i in after if i in before]
        if kept_before != kept_after:
            self.emit('rearranged', [str(i) for i in after])
