"""What stock NICOS clients see of the job queue: requests and a status.

The NICOS GUI and console, and the IBEX GUI through the proxy, know a
script queue of requests and one status. Their requests are the queued
jobs, in order (skipped ones are left out: they do not run). A job held
back by its dry run is listed too, its name starting with why
(``[held: dry run: ...] my scan``), so that its user sees it and can fix
it (``update`` gives it a new dry run, which releases it if it passes) or
run it anyway (``continue``).

While no job runs and the queue cannot go on without a person (it is held
with jobs queued, or every queued job is held back), the status is
INBREAK instead of idle: those clients show "paused" with their continue
button, and ``continue`` releases the hold or confirms the first
held-back job (`stockcommands`). The NICOS log, which they show and IBEX
reads with ``getmessages``, says why when the status turns.

Everything ``getstatus`` reports from here is sent as the stock event
that carries it (``status``, ``request``, ``blocked``, ``updated``,
``rearranged``), from the same state under one lock: a client that
follows the events alone (the proxy's mirror) agrees with ``getstatus``.
NICOS's own ``processing`` (a job starts) goes out under that lock too,
and no ``request`` of that job follows it.
The work per queue change does not grow with the number of jobs it did
not touch, except for listing ids when the order or the listed jobs
changed.
"""

import logging
import threading
from typing import Any, Callable, Dict, List, Optional, Set, Tuple

from nicos.protocols.daemon import STATUS_IDLE, STATUS_IDLEEXC, \
    STATUS_INBREAK

from nicos_scriptserver.app.attention import HELD, Attention, attention
from nicos_scriptserver.queue import JobState
from nicos_scriptserver.queue.change import (JOB_CHANGED, QUEUE_CHANGED,
                                             QUEUE_STATE)

Emit = Callable[[str, Any], None]
#: NICOS's status: (status constant, line number).
Status = Tuple[int, int]


def stock_request(job: Dict[str, Any]) -> Dict[str, Any]:
    """A queued job (its dict) in the shape of NICOS's serialized
    `ScriptRequest`; a held-back job's name starts with why."""
    name = job['name']
    if job['held']:
        reason = job['hold_reason'] or 'no reason given'
        name = f'[held: {reason}] {name}'.rstrip()
    return {'reqid': str(job['id']), 'name': name, 'script': job['source'],
            'user': job['owner'], 'job': job['id']}


def _jobs_waiting(count: int) -> str:
    return (f'{count} jobs waiting; continue runs them' if count != 1
            else '1 job waiting; continue runs it')


class StockView:
    """Listener of the job queue and of NICOS's execution status that keeps
    what stock clients see, and announces every change of it.

    *emit* sends a daemon event to all clients; *log* gives the NICOS log,
    which clients show (NICOS makes a new one as the daemon starts, so it
    is asked for each time). `attach` gives it the execution controller,
    whose ``status`` events go through `controller_event`.
    """

    def __init__(self, jobs, emit: Emit, log: Callable[[], logging.Logger]):
        self.emit = emit
        self.log = log
        self._lock = threading.Lock()
        self._controller = None
        current = jobs.current()
        waiting = jobs.waiting()
        queued = [job for job in waiting if job.state is JobState.QUEUED]
        self._current: Optional[int] = current.id if current else None
        self._order: List[int] = [job.id for job in waiting]
        # Queued jobs as stock clients know them, in queue order.
        self._listed: Dict[int, dict] = {
            job.id: stock_request(job.to_dict()) for job in queued}
        # The held-back ones among them: their names and hold reasons.
        self._held_back: Dict[int, Tuple[str, str]] = {
            job.id: (job.name, job.hold_reason) for job in queued
            if job.held}
        self._queue: Dict[str, Any] = jobs.state.to_dict()
        self._status: Optional[Status] = None   # the last one sent
        self._notice: Optional[tuple] = None    # what the log said last
        # Jobs NICOS announced as started before this view had their start.
        self._started: Set[int] = set()

    def attach(self, controller) -> None:
        """The execution controller whose status this reports."""
        self._controller = controller

    # -- for getstatus and continue -------------------------------------------

    def snapshot(self) -> Tuple[Status, List[dict]]:
        """The status and the requests stock clients see, at one moment
        (as the last events said)."""
        with self._lock:
            self._refresh()
            return self._status, list(self._listed.values())

    def requests(self) -> List[dict]:
        """The queued jobs as stock requests, in order."""
        with self._lock:
            return list(self._listed.values())

    def attention(self) -> Optional[Attention]:
        """Why nothing runs although jobs are queued (`HELD`, or
        `HELD_BACK` with the first queued job), or None."""
        with self._lock:
            return self._attention()

    # -- the controller -------------------------------------------------------

    def controller_event(self, event: str, data: Any) -> None:
        """The execution controller's event function: its status goes out
        as stock clients see it, other events as they are."""
        if event == 'status':
            with self._lock:
                self._refresh(data)
        elif event == 'processing':
            with self._lock:
                self._processing(data)
        else:
            self.emit(event, data)

    def _processing(self, request: dict) -> None:
        """NICOS announces the job it starts. The thread delivering the
        queue's changes may not have brought this view the job's start
        yet, nor its submission or an earlier change (say, its release by
        a passing dry run): it delivers for all threads, one listener
        after another. None of those may list it again, or a client that
        follows the events would list the running job as waiting."""
        job_id = request.get('job')
        if job_id in self._listed:
            del self._listed[job_id]
            self._held_back.pop(job_id, None)
        if job_id is not None and job_id != self._current:
            self._started.add(job_id)
        # No status from here: NICOS says 'processing' before its status
        # turns to running, so the controller still reads idle (as it does
        # for the request that sets NICOS up after a restart; saying then
        # why the queue waits would bury that under the setup's messages).
        self.emit('processing', request)

    # -- the queue ----------------------------------------------------------------

    def __call__(self, events: List[tuple]) -> None:
        with self._lock:
            reorder = False
            for name, data in events:
                if name == JOB_CHANGED:
                    reorder |= self._job_changed(data)
                elif name == QUEUE_CHANGED:
                    self._order = data['order']
                    self._removed(data['removed'])
                    reorder = True
                elif name == QUEUE_STATE:
                    self._queue = data
            if reorder:
                self._place()
            self._refresh()

    def _job_changed(self, job: dict) -> bool:
        """Follow one job; True if it joined the listed jobs (at the end,
        which may not be its place)."""
        job_id, state = job['id'], JobState(job['state'])
        if state is not JobState.QUEUED:
            self._started.discard(job_id)
        elif job_id in self._started:
            return False   # announced as started; its start follows
        if state.current:
            self._current = job_id
        elif self._current == job_id:
            self._current = None
        known = self._listed.get(job_id)
        if state is not JobState.QUEUED:
            if known is not None:
                del self._listed[job_id]
                self._held_back.pop(job_id, None)
                # A started job is announced by NICOS itself ('processing').
                if state is not JobState.RUNNING:
                    self.emit('blocked', [str(job_id)])
            return False
        request = stock_request(job)
        self._listed[job_id] = request
        if job['held']:
            self._held_back[job_id] = (job['name'], job['hold_reason'])
        else:
            self._held_back.pop(job_id, None)
        if known is None:
            self.emit('request', request)
            return True
        if (known['script'], known['name']) != (request['script'],
                                                request['name']):
            self.emit('updated', request)
        return False

    def _removed(self, ids: List[int]) -> None:
        gone = [str(job_id) for job_id in ids
                if self._listed.pop(job_id, None) is not None]
        for job_id in ids:
            self._held_back.pop(job_id, None)
        if gone:
            self.emit('blocked', gone)

    def _place(self) -> None:
        """Put the listed jobs in queue order, telling clients if it moved."""
        listed = self._listed
        order = [job_id for job_id in self._order if job_id in listed]
        if len(order) < len(listed):   # not in the last known order yet
            placed = set(order)
            order += [job_id for job_id in listed if job_id not in placed]
        if order != list(listed):
            self._listed = {job_id: listed[job_id] for job_id in order}
            self.emit('rearranged', [str(job_id) for job_id in order])

    # -- the status -----------------------------------------------------------------

    def _attention(self) -> Optional[Attention]:
        return attention(self._current is not None, len(self._listed),
                         len(self._held_back), next(iter(self._listed), None),
                         self._queue['held'])

    def _refresh(self, status: Optional[Status] = None) -> None:
        """Send the status stock clients see if it changed; *status*: the
        controller's own, as its event says (else read from it)."""
        if status is None:
            if self._controller is None:
                return
            status = (self._controller.status, self._controller.lineno)
        status = tuple(status)
        waiting = self._attention()
        if waiting is None:
            self._notice = None
        elif status[0] in (STATUS_IDLE, STATUS_IDLEEXC):
            status = (STATUS_INBREAK, status[1])
            self._announce(waiting)
        if status != self._status:
            self._status = status
            self.emit('status', status)

    def _announce(self, waiting: Attention) -> None:
        """Say in the log why the queue waits (once per reason)."""
        kind, job_id = waiting
        if kind == HELD:
            reason = self._queue['hold_reason'] or 'no reason given'
            notice = (kind, reason)
            text = (f'Queue held ({reason}): '
                    f'{_jobs_waiting(len(self._listed))}.')
        else:
            name, reason = self._held_back[job_id]
            notice = (kind, job_id, reason)
            text = (f'Nothing runs: job {job_id} {name!r} is held back '
                    f'({reason or "no reason given"}); continue runs it '
                    'anyway, an edit checks it again.')
        if notice != self._notice:
            self._notice = notice
            self.log().warning(text)
