"""Turns the job queue's events into daemon events for all clients.

New clients get ``ss_job`` (a job changed) and ``ss_queue`` (the waiting
list or the queue's state changed). Stock NICOS clients (GUI, console,
IBEX) know only NICOS's request events, and only runnable jobs exist for
them; their events are derived from the queue's events as they come:
``request`` (a job became runnable), ``blocked`` (removed or skipped),
``updated`` (script changed) and ``rearranged`` (order changed). The work
per change does not grow with the number of jobs the change did not touch,
except for listing ids when the order changed.
"""

import threading
from typing import Callable, Dict, List

from nicos_scriptserver.daemon.execution import stock_request

Emit = Callable[[str, object], None]


def _runnable(job: dict) -> bool:
    return job['state'] == 'queued' and not job['held']


class EventRelay:
    """Listener of the job queue that emits daemon events."""

    def __init__(self, jobs, emit: Emit):
        self.jobs = jobs
        self.emit = emit
        self._lock = threading.Lock()
        # Runnable waiting jobs as stock clients know them, in queue order.
        self._runnable: Dict[int, dict] = {
            job.id: stock_request(job) for job in jobs.waiting() if job.runnable}

    def __call__(self, events: List[tuple]) -> None:
        with self._lock:
            for name, data in events:
                if name == 'job_changed':
                    self.emit('ss_job', data)
                    self._job_changed(data)
                elif name == 'queue_changed':
                    self.emit('ss_queue', self.queue_summary(data))
                    self._order_changed(data['order'], data['removed'])
                elif name == 'queue_state':
                    self.emit('ss_queue', self.queue_summary(data))

    def queue_summary(self, data: dict) -> dict:
        """What ``ss_queue`` carries: order and the queue's state."""
        current = self.jobs.current()
        summary = dict(self.jobs.state.to_dict(),
                       current=current.id if current else None)
        summary.update(data)
        return summary

    def _job_changed(self, job: dict) -> None:
        job_id, known = job['id'], self._runnable.get(job['id'])
        if _runnable(job):
            request = stock_request(job)
            self._runnable[job_id] = request
            if known is None:
                self.emit('request', request)
            elif known['script'] != request['script']:
                self.emit('updated', request)
        elif known is not None:
            del self._runnable[job_id]
            # A started job is announced by NICOS itself ('processing').
            if job['state'] != 'running':
                self.emit('blocked', [str(job_id)])

    def _order_changed(self, order: List[int], removed: List[int]) -> None:
        gone = [str(i) for i in removed if self._runnable.pop(i, None)]
        if gone:
            self.emit('blocked', gone)
        runnable = self._runnable
        new_order = [i for i in order if i in runnable]
        if new_order != list(runnable):
            self._runnable = {i: runnable[i] for i in new_order}
            self.emit('rearranged', [str(i) for i in new_order])
