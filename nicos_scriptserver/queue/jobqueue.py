"""`JobQueue`: the thread-safe, durable job queue the daemon uses.

One lock serializes every operation: the state machine checks it and
builds the change, the store commits it, memory is updated, all under the
lock. Events are delivered to listeners after the lock is released (so a
listener may call back into the queue or wait for a thread that does) but
still in the order the changes were committed.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from pathlib import Path
from typing import (Any, Callable, Dict, Iterable, List, Optional, Sequence,
                    Tuple, Union)

from nicos_scriptserver.queue.audit import entry as audit_entry
from nicos_scriptserver.queue.change import Change, Event
from nicos_scriptserver.queue.checks import Verdict
from nicos_scriptserver.queue.historyfilter import HistoryFilter, page_limit
from nicos_scriptserver.queue.listing import KEEP_CHANGES, Listing, listing
from nicos_scriptserver.queue.waiting import Position
from nicos_scriptserver.queue.machine import KEEP_HISTORY, QueueMachine
from nicos_scriptserver.queue.model import (Job, JobKind, JobSpec, JobState,
                                            QueueData, QueueState)
from nicos_scriptserver.queue.rights import Caller
from nicos_scriptserver.queue.store import ARCHIVE_BATCH, QueueStore

log = logging.getLogger(__name__)

#: Operations not recorded in the audit trail and not waited for on the
#: disk (see `JobQueue._commit`).
_NOTES = frozenset({'report_progress'})

#: Called with the events of one operation.
Listener = Callable[[List[Event]], None]
#: Called with the sequence number of the queue after an operation (see
#: `listing`) and its events.
NumberedListener = Callable[[int, List[Event]], None]


class JobQueue:
    """The job queue saved in the SQLite file *path*.

    Opening it restores the queue; a job that was current when the server
    stopped becomes ``interrupted`` and the jobs queued then are held (see
    `QueueMachine.recover`). Every operation returns its result once the
    change is on disk, or raises a `QueueError` (`StoreError` if the disk
    refused it) and changes nothing. *clock* gives the time for the jobs'
    timestamps. The newest *keep_history* finished jobs are kept in memory,
    older ones are read from the file when asked for.
    """

    def __init__(self, path: Union[str, Path],
                 clock: Callable[[], float] = time.time,
                 keep_history: int = KEEP_HISTORY):
        self._clock = clock
        self._keep_history = keep_history
        self._lock = threading.Lock()
        self._store = QueueStore(path)
        # The number of the last change (see `listing`): its audit entry's.
        self._seq = self._store.last_seq()
        # Jobs changed in memory only (a dry run pending, a pause asked
        # for), which the audit trail does not name: the number of the
        # last change before, until a numbered change names them.
        self._unnumbered: Dict[int, int] = {}
        try:
            self._action = 'recover'
            self._now = clock()
            self._machine = QueueMachine(
                self._store.load(keep_history), commit=self._commit,
                archive=self._store, keep_history=keep_history)
            self._machine.recover(clock())
        except BaseException:
            self._store.close()
            raise
        self._listeners: List[Tuple[Callable, bool]] = []
        self._pending: collections.deque = collections.deque()
        self._delivering = threading.Lock()

    # -- events ----------------------------------------------------------------

    def add_listener(self, listener: Listener) -> None:
        """Call *listener* with the list of events of every operation.

        Calls come in commit order, one at a time, outside the queue's
        lock, from the thread of the operation or of one that was
        delivering at the time (then possibly just after the operation
        returned). A listener that raises is logged and skipped.
        """
        self._listeners = self._listeners + [(listener, False)]

    def add_numbered_listener(self, listener: NumberedListener) -> None:
        """As `add_listener`, but call *listener* also with the sequence
        number of the queue after the operation (unchanged by operations
        that are no change of the queue, such as progress reports)."""
        self._listeners = self._listeners + [(listener, True)]

    def remove_listener(self, listener: Callable) -> None:
        """Stop calling *listener*."""
        self._listeners = [item for item in self._listeners
                           if item[0] is not listener]

    def _do(self, operation: Callable[[float], Change]) -> Any:
        """Run *operation* (given the time) under the lock; deliver its
        events; return its result."""
        with self._lock:
            # The operation's name, for the audit trail: the method of this
            # class (or of the machine) that made *operation*.
            self._action = operation.__qualname__.split('.')[1]
            self._now = self._clock()
            seq = self._seq
            change = operation(self._now)
            if change.put and self._seq == seq:
                self._unnumbered.update(dict.fromkeys(change.put, seq))
            if change.events:
                self._pending.append((self._seq, change.events))
        self._deliver()
        return change.result

    def _commit(self, change: Change) -> None:
        """The machine's commit: *change* and its audit entry, at once.

        A running job's progress reports are its own notes, not changes of
        the queue: they get no entry (there may be many a second), and
        their commit does not wait for the disk. A sync took 3 to 16 ms
        (p50, p99) on a shared disk, before each report reached any
        client; a power cut may now lose the last reports, which the job's
        next change or report would have replaced."""
        note = self._action in _NOTES
        seq = self._store.commit(
            change, None if note else
            audit_entry(change, self._machine.jobs, self._action, self._now),
            wait_for_disk=not note)
        if seq is not None:
            self._seq = seq
            for job_id in [*change.put, *change.deleted]:
                self._unnumbered.pop(job_id, None)

    def _deliver(self) -> None:
        # Whoever holds `_delivering` delivers everything pending, also
        # what other threads committed meanwhile; the others return at once
        # instead of waiting, so that a listener that waits for one of them
        # cannot deadlock. The check after releasing catches events queued
        # between the last pop and the release.
        while self._pending:
            if not self._delivering.acquire(blocking=False):
                return
            try:
                while self._pending:
                    seq, events = self._pending.popleft()
                    for listener, numbered in self._listeners:
                        try:
                            if numbered:
                                listener(seq, list(events))
                            else:
                                listener(list(events))
                        except Exception:
                            log.exception('queue event listener %r failed',
                                          listener)
            finally:
                self._delivering.release()

    # -- queries ------------------------------------------------------------------

    def waiting(self) -> List[Job]:
        """Queued and skipped jobs, in the order they will run."""
        with self._lock:
            return self._machine.waiting()

    def current(self) -> Optional[Job]:
        """The running or paused job, if any."""
        with self._lock:
            return self._machine.current()

    def is_paused(self) -> bool:
        """Whether there is a current job and it is paused."""
        with self._lock:
            job = self._machine.current()
            return job is not None and job.state is JobState.PAUSED

    def get(self, job_id: int) -> Job:
        """Any job: waiting, current or finished."""
        with self._lock:
            return self._machine.get(job_id)

    def history(self, limit: int = 50, before_id: Optional[int] = None,
                where: HistoryFilter = HistoryFilter()) -> List[Job]:
        """Finished jobs, the last finished first (see
        `QueueMachine.history`); only those *where* lets through, read
        from the store by its indexes (see `QueueStore.history_page`)."""
        with self._lock:
            if where.empty:
                return self._machine.history(limit, before_id)
            return self._store.history_page(page_limit(limit), before_id,
                                            where)

    def archive_history(self, days: float, archive: Union[str, Path]) -> int:
        """Move the finished jobs that finished more than *days* ago to
        the SQLite file *archive*, one transaction per batch (the queue
        is locked for one batch at a time), except the newest finished
        jobs kept in memory; how many were moved."""
        before = self._clock() - days * 86400
        moved = 0
        while True:
            with self._lock:
                count = self._store.archive_finished(
                    before, self._keep_history, Path(archive))
            moved += count
            if count < ARCHIVE_BATCH:
                return moved

    def next_job(self) -> Optional[Job]:
        """The job that `start_next` would start now, if any."""
        with self._lock:
            return self._machine.next_job()

    @property
    def state(self) -> QueueState:
        """Whether the queue is held, by whom, why, and its failure
        policy."""
        with self._lock:
            return self._machine.queue

    def summary(self) -> Dict[str, Any]:
        """The queue for clients: current job, waiting jobs, hold state."""
        with self._lock:
            current = self._machine.current()
            waiting = self._machine.waiting()
            queue = self._machine.queue
        return {'current': current.to_dict() if current else None,
                'waiting': [job.to_dict() for job in waiting],
                **queue.to_dict()}

    def listing(self, since: Optional[int] = None) -> Listing:
        """The queue for a client that saw change *since*: what changed
        after it, or everything (None, or too far back; see `listing`)."""
        with self._lock:
            changed = None
            if since is not None and 0 <= since <= self._seq:
                changed = self._store.changed_since(since, KEEP_CHANGES)
            if changed is not None:
                changed += [job_id for job_id, seq in self._unnumbered.items()
                            if seq >= since]
            return listing(self._seq, since, changed,
                           self._machine.current(), self._machine.waiting(),
                           self._machine.queue)

    def audit(self, limit: int = 50, job_id: Optional[int] = None
              ) -> List[Dict[str, Any]]:
        """The newest *limit* entries of the audit trail, newest first (of
        *job_id* only, if given): who changed what, when, from which
        client and why (see `audit`)."""
        with self._lock:
            return self._store.audit(limit, job_id)

    def snapshot(self) -> QueueData:
        """A consistent copy of everything, for checks and diagnostics."""
        with self._lock:
            return self._machine.data()

    # -- the waiting list ---------------------------------------------------------

    def submit(self, specs: Union[JobSpec, Sequence[JobSpec]], owner: str,
               position: Optional[Position] = None) -> List[Job]:
        """Queue one job or a batch; returns the new jobs."""
        return self._do(lambda now: self._machine.submit(
            specs, owner, now, position))

    def edit(self, job_id: int, *, by: Caller, name: Optional[str] = None,
             source: Optional[str] = None, calls: Optional[list] = None,
             version: Optional[int] = None, kind: Optional[JobKind] = None,
             why: str = '') -> Job:
        """Change a waiting job's name, script or calls as *by* (its owner
        or an admin), if it is at *version* (`Conflict` if not; None: as it
        is); *kind* AWARE makes a generated job aware, for reason *why*.
        Returns it."""
        return self._do(lambda now: self._machine.edit(
            job_id, by=by, name=name, source=source, calls=calls,
            version=version, kind=kind, why=why))

    def set_estimate(self, job_id: int, estimate: Optional[dict],
                     for_source: Optional[str] = None,
                     hold_reason: Optional[str] = None,
                     passed: bool = False) -> Job:
        """Attach a dry run's report to a waiting or the current job (see
        `QueueMachine.set_estimate`); returns the job."""
        return self._do(lambda now: self._machine.set_estimate(
            job_id, estimate, for_source, hold_reason, passed))

    def mark_unestimated(self, estimate: dict) -> List[int]:
        """Give waiting jobs without an estimate *estimate*, in one write;
        returns their ids."""
        return self._do(lambda now: self._machine.mark_unestimated(estimate))

    def confirm(self, job_id: int, by: str = '',
                version: Optional[int] = None) -> Job:
        """Let a held-back job run when its turn comes; returns it. (*by*
        is who asks, *version* the version they saw, as for `edit`.)"""
        return self._do(lambda now: self._machine.confirm(job_id, by,
                                                          version))

    def move(self, job_id: int, to: Position, by: str = '',
             version: Optional[int] = None) -> None:
        """Move a waiting job to an index or 'up'/'down'/'top'/'bottom'."""
        self._do(lambda now: self._machine.move(job_id, to, by, version))

    def rearrange(self, ids: Iterable[int]) -> None:
        """Put the listed waiting jobs in the listed order, in their places."""
        self._do(lambda now: self._machine.rearrange(ids))

    def skip(self, job_id: int, by: str = '',
             version: Optional[int] = None) -> Job:
        """Pass over a waiting job, leaving it in its place."""
        return self._do(lambda now: self._machine.skip(job_id, by, version))

    def unskip(self, job_id: int, by: str = '',
               version: Optional[int] = None) -> Job:
        """Let a skipped job run again."""
        return self._do(lambda now: self._machine.unskip(job_id, by,
                                                         version))

    def repeat(self, job_id: int, times: int = 1,
               owner: Optional[str] = None, version: Optional[int] = None
               ) -> List[Job]:
        """Queue copies of a waiting or the current job right after it, as
        *owner*'s jobs."""
        return self._do(lambda now: self._machine.repeat(job_id, times, now,
                                                         owner, version))

    def duplicate(self, job_id: int, owner: Optional[str] = None) -> Job:
        """Queue one copy of a job right after it, as *owner*'s job."""
        return self._do(lambda now: self._machine.duplicate(job_id, now,
                                                            owner))

    def remove(self, job_id: int, version: Optional[int] = None) -> None:
        """Take a waiting job out of the queue."""
        self._do(lambda now: self._machine.remove(job_id, version))

    def clear(self) -> List[int]:
        """Remove every waiting job; returns their ids."""
        return self._do(lambda now: self._machine.clear())

    def requeue(self, job_id: int, position: Optional[Position] = None,
                owner: Optional[str] = None, *, name: Optional[str] = None,
                source: Optional[str] = None, calls: Optional[list] = None
                ) -> Job:
        """Queue an aborted, failed or interrupted job again as a new job
        of *owner*, maybe edited."""
        return self._do(lambda now: self._machine.requeue(
            job_id, now, position, owner, name=name, source=source,
            calls=calls))

    def catalog_checked(self, verdicts: Iterable[Verdict]) -> List[Job]:
        """Apply the verdicts of checking waiting jobs against a changed
        catalog, in one write (see `checks.catalog_checked`); returns the
        jobs that changed."""
        verdicts = list(verdicts)
        return self._do(lambda now: self._machine.catalog_checked(verdicts))

    # -- the queue as a whole -----------------------------------------------------

    def hold(self, reason: str = 'held') -> None:
        """A person's hold: start nothing new after the current job, also
        jobs queued later, until released."""
        self._do(lambda now: self._machine.hold(reason))

    def hold_for_safety(self, reason: str) -> None:
        """The server's hold: the jobs queued now wait for a person (see
        `QueueMachine.hold_for_safety`)."""
        self._do(lambda now: self._machine.hold_for_safety(reason))

    def release(self) -> None:
        """Start waiting jobs again (ends a hold of either kind)."""
        self._do(lambda now: self._machine.release())

    def set_on_failure(self, policy: str) -> None:
        """'hold' (default) or 'continue' after a job fails."""
        self._do(lambda now: self._machine.set_on_failure(policy))

    # -- the current job (called from the script thread) ------------------------

    def start_next(self, ready: Optional[Callable[[Job], bool]] = None
                   ) -> Optional[Job]:
        """Start the next runnable job, if one may start now; returns it.

        If *ready* is given and says the next runnable job is not ready
        (its dry run has not finished), nothing starts: the queue waits
        for that job rather than passing over it. Choosing and starting
        happen under one lock, so no other thread can edit, move or start
        the job in between.
        """
        def start(now: float) -> Change:
            job = self._machine.next_job()
            if job is None or (ready is not None and not ready(job)):
                return Change()
            return self._machine.start(job.id, now)
        return self._do(start)

    def request_pause(self) -> Job:
        """A pause of the current job was asked for; returns it."""
        return self._do(lambda now: self._machine.request_pause())

    def pause(self) -> Job:
        """The current job stopped at a pause point."""
        return self._do(self._machine.pause)

    def resume(self) -> Job:
        """The paused job runs again."""
        return self._do(self._machine.resume)

    def request_abort(self, reason: str) -> Job:
        """An abort of the current job was asked for; the jobs queued now
        are held for safety, for *reason*. Returns the job."""
        return self._do(lambda now: self._machine.request_abort(reason))

    def withdraw_request(self) -> Job:
        """What was asked of the current job could not be passed on."""
        return self._do(lambda now: self._machine.withdraw_request())

    def report_progress(self, fraction: Optional[float],
                        message: str = '') -> Job:
        """How far the running job is (0..1 or None) and a note."""
        return self._do(lambda now: self._machine.report_progress(
            fraction, message))

    def set_line(self, line: Optional[int]) -> None:
        """The line the current job is at (not written to disk by itself)."""
        self._do(lambda now: self._machine.set_line(line))

    def finish(self, outcome: str, result: Optional[str] = None,
               error: Optional[dict] = None) -> Job:
        """The current job ended: 'done', 'failed' or 'aborted'."""
        return self._do(lambda now: self._machine.finish(
            outcome, now, result, error))

    def close(self) -> None:
        """Close the database; the queue cannot be changed afterwards."""
        with self._lock:
            self._store.close()

    def __enter__(self) -> 'JobQueue':
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
