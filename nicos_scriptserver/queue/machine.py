"""The queue's state machine: pure and deterministic, time passed in.

Every operation checks its rules against the current state and builds a
`Change` without touching that state (`waiting`, `current` and `holds`
have them, as functions of the state seen through `view.QueueView`);
`QueueMachine` hands the change to the *commit* callback (the store; if
that raises, nothing changes) and then applies it. Each operation returns
the change, whose ``result`` is the operation's result and whose
``events`` tell clients what changed.

Invariants (property-tested): at most one job is current (running or
paused); while one is paused nothing else starts and it can only be
resumed or aborted; finished jobs never change (re-queuing makes a new
job); ids are unique and never reused; the waiting order is exactly what
the store restores; a safety hold lasts exactly while one of the jobs it
protects is queued.
"""

from __future__ import annotations

from typing import (Any, Callable, Iterable, List, Optional, Protocol,
                    Sequence, Tuple, Union)

from nicos_scriptserver.queue import checks, current, holds, waiting
from nicos_scriptserver.queue.change import Change
from nicos_scriptserver.queue.errors import JobNotFound
from nicos_scriptserver.queue.historyfilter import page_limit
from nicos_scriptserver.queue.model import Job, JobKind, JobSpec, QueueData
from nicos_scriptserver.queue.rights import Caller
from nicos_scriptserver.queue.waiting import Position

#: Finished jobs kept in memory; older ones are read from the archive.
KEEP_HISTORY = 1000


class Archive(Protocol):
    """Read access to finished jobs no longer kept in memory (the store).

    Finished jobs never change, so reading them keeps the machine
    deterministic.
    """

    def finished_job(self, job_id: int) -> Optional[Tuple[int, Job]]:
        """The finished job *job_id* and its position in the history."""

    def finished_before(self, position: int, limit: int) -> List[Job]:
        """Up to *limit* jobs before *position* in the history, newest
        first."""


class QueueMachine:
    """Waiting jobs in order, the current job, the history, the hold state.

    *commit* is called with every change before it is applied (the store's
    commit); the default keeps the queue in memory only. Only the newest
    *keep_history* finished jobs stay in memory; older ones are looked up
    in *archive* (without one they are forgotten).

    ``jobs``, ``order``, ``keys``, ``queue`` and ``next_id`` are the state
    as `view.QueueView` describes it: read them, never change them (every
    change is an operation's, applied by `_run`).
    """

    def __init__(self, data: Optional[QueueData] = None,
                 commit: Optional[Callable[[Change], None]] = None,
                 archive: Optional[Archive] = None,
                 keep_history: int = KEEP_HISTORY):
        data = data or QueueData()
        self.jobs = dict(data.jobs)
        self.order = list(data.order)
        self.keys = dict(data.keys)
        self._history = list(data.history)
        self._history_start = data.history_start
        self._history_index = {job_id: data.history_start + index
                               for index, job_id in enumerate(self._history)}
        self._archive = archive
        self._keep_history = keep_history
        self.queue = data.queue
        self.next_id = data.next_id
        self._current = next((job.id for job in self.jobs.values()
                              if job.state.current), None)
        self._commit = commit or (lambda change: None)

    # -- the view the operations read (see view.QueueView) -------------------

    @property
    def history_end(self) -> int:
        """The position in the history the next finished job takes."""
        return self._history_start + len(self._history)

    def find(self, job_id: Any) -> Optional[Job]:
        """Any job, also a finished one no longer in memory; None if there
        is no such job."""
        job = self.jobs.get(job_id) if isinstance(job_id, int) else None
        if job is None:
            archived = self._archived(job_id)
            job = None if archived is None else archived[1]
        return job

    # -- queries ------------------------------------------------------------

    def data(self) -> QueueData:
        """A copy of the whole state (what the store keeps)."""
        return QueueData(dict(self.jobs), list(self.order), dict(self.keys),
                         list(self._history), self._history_start,
                         self.queue, self.next_id)

    def waiting(self) -> List[Job]:
        """Queued and skipped jobs, in the order they will run."""
        return [self.jobs[job_id] for job_id in self.order]

    def current(self) -> Optional[Job]:
        """The running or paused job, if any."""
        return None if self._current is None else self.jobs[self._current]

    def get(self, job_id: int) -> Job:
        """Any job: waiting, current or finished."""
        job = self.find(job_id)
        if job is None:
            raise JobNotFound(f'no job {job_id} in the queue or its history')
        return job

    def history(self, limit: int = 50, before_id: Optional[int] = None
                ) -> List[Job]:
        """Up to *limit* finished jobs, the last finished first.

        With *before_id*, the page of jobs that finished before that one.
        """
        page_limit(limit)
        start = self._history_start
        end = self.history_end
        if before_id is not None:
            end = self._history_index.get(before_id)
            if end is None:
                found = self._archived(before_id)
                if found is None:
                    raise JobNotFound(f'no job {before_id} in the history')
                end = found[0]
        ids = self._history[max(0, end - limit - start):max(0, end - start)]
        jobs = [self.jobs[job_id] for job_id in reversed(ids)]
        if len(jobs) < limit and min(start, end) > 0 and self._archive:
            jobs += self._archive.finished_before(min(start, end),
                                                  limit - len(jobs))
        return jobs

    def _archived(self, job_id: Any) -> Optional[Tuple[int, Job]]:
        """A finished job no longer in memory, and its history position."""
        if self._archive is None or not isinstance(job_id, int) or \
                job_id in self.jobs:
            return None
        return self._archive.finished_job(job_id)

    def next_job(self) -> Optional[Job]:
        """The job to start now: the first runnable one, unless a job is
        current or the queue is held."""
        if self._current is not None or self.queue.held:
            return None
        for job_id in self.order:
            if self.jobs[job_id].runnable:
                return self.jobs[job_id]
        return None

    # -- the waiting list (see `waiting`) -------------------------------------

    def submit(self, specs: Union[JobSpec, Sequence[JobSpec]], owner: str,
               now: float, position: Optional[Position] = None) -> Change:
        """Queue one job or a batch; result: the new jobs."""
        return self._run(waiting.submit(self, specs, owner, now, position))

    def edit(self, job_id: int, *, by: Caller, name: Optional[str] = None,
             source: Optional[str] = None, calls: Optional[list] = None,
             version: Optional[int] = None, kind: Optional[JobKind] = None,
             why: str = '') -> Change:
        """Change a waiting job's name, script or calls as *by*, if it is
        at *version*; *kind* AWARE makes a generated job aware (*why*)."""
        return self._run(waiting.edit(self, job_id, by, name, source, calls,
                                      version, kind, why))

    def set_estimate(self, job_id: int, estimate: Optional[dict],
                     for_source: Optional[str] = None,
                     hold_reason: Optional[str] = None,
                     passed: bool = False) -> Change:
        """Attach a dry run's report to a waiting or the current job."""
        return self._run(waiting.set_estimate(self, job_id, estimate,
                                              for_source, hold_reason, passed))

    def mark_unestimated(self, estimate: dict) -> Change:
        """Give waiting jobs without an estimate *estimate*."""
        return self._run(waiting.mark_unestimated(self, estimate))

    def confirm(self, job_id: int, by: str = '',
                version: Optional[int] = None) -> Change:
        """Let a held-back job run when its turn comes."""
        return self._run(waiting.confirm(self, job_id, by, version))

    def skip(self, job_id: int, by: str = '',
             version: Optional[int] = None) -> Change:
        """Pass over a waiting job, leaving it in its place."""
        return self._run(waiting.skip(self, job_id, by, version))

    def unskip(self, job_id: int, by: str = '',
               version: Optional[int] = None) -> Change:
        """Let a skipped job run again."""
        return self._run(waiting.unskip(self, job_id, by, version))

    def move(self, job_id: int, to: Position, by: str = '',
             version: Optional[int] = None) -> Change:
        """Move a waiting job to an index or 'up'/'down'/'top'/'bottom'."""
        return self._run(waiting.move(self, job_id, to, by, version))

    def rearrange(self, ids: Iterable[int]) -> Change:
        """Put the listed waiting jobs in the listed order, in their
        places."""
        return self._run(waiting.rearrange(self, ids))

    def repeat(self, job_id: int, times: int, now: float,
               owner: Optional[str] = None, version: Optional[int] = None
               ) -> Change:
        """Queue copies of a job right after it; result: the copies."""
        return self._run(waiting.repeat(self, job_id, times, now, owner,
                                        version))

    def duplicate(self, job_id: int, now: float,
                  owner: Optional[str] = None) -> Change:
        """`repeat` once; result: the copy."""
        change = self.repeat(job_id, 1, now, owner)
        change.result = change.result[0]
        return change

    def remove(self, job_id: int, version: Optional[int] = None) -> Change:
        """Take a waiting job out of the queue."""
        return self._run(waiting.remove(self, job_id, version))

    def clear(self) -> Change:
        """Remove every waiting job; result: their ids."""
        return self._run(waiting.clear(self))

    def requeue(self, job_id: int, now: float,
                position: Optional[Position] = None,
                owner: Optional[str] = None, *, name: Optional[str] = None,
                source: Optional[str] = None, calls: Optional[list] = None
                ) -> Change:
        """Queue a finished job again as a new job, maybe edited; result:
        the new job."""
        return self._run(waiting.requeue(self, job_id, now, position, owner,
                                         name, source, calls))

    def catalog_checked(self, verdicts: Iterable[checks.Verdict]) -> Change:
        """Hold back, release or re-estimate jobs after the catalog
        changed (see `checks.catalog_checked`); result: changed jobs."""
        return self._run(checks.catalog_checked(self, verdicts))

    # -- the queue as a whole (see `holds`) -------------------------------------

    def hold(self, reason: str = 'held') -> Change:
        """A person's hold: nothing new starts until `release`."""
        return self._run(holds.hold(self, reason))

    def hold_for_safety(self, reason: str) -> Change:
        """The server's hold: the jobs queued now wait for a person."""
        return self._run(holds.hold_for_safety(self, reason))

    def release(self) -> Change:
        """End a hold of either kind."""
        return self._run(holds.release(self))

    def set_on_failure(self, policy: str) -> Change:
        """What a failed job does to the queue: 'hold' or 'continue'."""
        return self._run(holds.set_on_failure(self, policy))

    # -- the current job (see `current`) -------------------------------------

    def start(self, job_id: int, now: float) -> Change:
        """Make waiting job *job_id* the current, running job."""
        return self._run(current.start(self, job_id, now))

    def request_pause(self) -> Change:
        """A pause of the current job was asked for (in memory only)."""
        return self._run(current.request_pause(self))

    def pause(self, now: float) -> Change:
        """The current job has stopped at a pause point."""
        return self._run(current.pause(self, now))

    def resume(self, now: float) -> Change:
        """The paused current job runs again."""
        return self._run(current.resume(self, now))

    def request_abort(self, reason: str) -> Change:
        """An abort of the current job was asked for; the jobs queued now
        are held for safety, for *reason*."""
        return self._run(current.request_abort(self, reason))

    def withdraw_request(self) -> Change:
        """What was asked of the current job could not be passed on."""
        return self._run(current.withdraw_request(self))

    def report_progress(self, fraction: Optional[float],
                        message: str = '') -> Change:
        """How far the running job is, and a note."""
        return self._run(current.report_progress(self, fraction, message))

    def set_line(self, line: Optional[int]) -> Change:
        """The script line the current job is at (kept in memory only)."""
        return self._run(current.set_line(self, line))

    def finish(self, outcome: str, now: float, result: Optional[str] = None,
               error: Optional[dict] = None) -> Change:
        """The current job ended: 'done', 'failed' or 'aborted'."""
        return self._run(current.finish(self, outcome, now, result, error))

    def recover(self, now: float) -> Change:
        """After a restart: the job that was current is interrupted."""
        return self._run(current.recover(self, now))

    # -- commit, then apply ---------------------------------------------------------

    def _run(self, change: Change) -> Change:
        """Commit *change*, then apply it: all or nothing."""
        if change.empty:
            return change
        for job in change.put.values():
            old = self.jobs.get(job.id)
            assert old is None or not old.state.finished, \
                f'finished job {job.id} must not change'
            if job.state.waiting and job.id not in change.keys:
                change.keys[job.id] = self.keys[job.id]
        holds.end_spent_safety_hold(self, change)
        if change.durable:
            self._commit(change)
        self._apply(change)
        return change

    def _apply(self, change: Change) -> None:
        # Only assignments from here on: nothing may fail once committed.
        for job_id in change.deleted:
            del self.jobs[job_id]
            self.keys.pop(job_id, None)
        for job in change.put.values():
            self.jobs[job.id] = job
            if job.state.current:
                self._current = job.id
            elif self._current == job.id:
                self._current = None
            if not job.state.waiting:
                self.keys.pop(job.id, None)
        if change.moved is not None:
            self.jobs[change.moved.id] = change.moved
        self.keys.update(change.keys)
        if change.order is not None:
            self.order = change.order
        self._history.extend(change.history)
        self._history_index.update(change.history)
        if len(self._history) > self._keep_history:
            # The oldest finished jobs stay in the archive only.
            dropped = len(self._history) - self._keep_history
            for job_id in self._history[:dropped]:
                del self.jobs[job_id]
                del self._history_index[job_id]
            self._history = self._history[dropped:]
            self._history_start += dropped
        if change.queue is not None:
            self.queue = change.queue
        if change.next_id is not None:
            self.next_id = change.next_id
