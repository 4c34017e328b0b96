"""The queue's state machine: pure and deterministic, time passed in.

Every operation checks its rules against the current state, builds a
`Change` without touching that state, hands it to the *commit* callback
(the store; if that raises, nothing changes) and then applies it. It
returns the change, whose ``result`` is the operation's result and whose
``events`` tell clients what changed.

Invariants (property-tested): at most one job is current (running or
paused); while one is paused nothing else starts and it can only be
resumed or aborted; finished jobs never change (re-queuing makes a new
job); ids are unique and never reused; the waiting order is exactly what
the store restores; a safety hold lasts exactly while one of the jobs it
protects is queued. Editing operations live in `editing.QueueEditing`;
this module has the queries, the running job and the queue's hold state.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, List, Optional, Protocol, Tuple

from nicos_scriptserver.queue import validate
from nicos_scriptserver.queue.change import Change
from nicos_scriptserver.queue.editing import QueueEditing
from nicos_scriptserver.queue.errors import (InvalidTransition, InvalidValue,
                                             JobNotFound)
from nicos_scriptserver.queue.model import (FAILURE_POLICIES, MANUAL, SAFETY,
                                            Job, JobKind, JobState, QueueData,
                                            QueueState)

#: How a current job can end.
OUTCOMES = (JobState.DONE, JobState.FAILED, JobState.ABORTED)
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


class QueueMachine(QueueEditing):
    """Waiting jobs in order, the current job, the history, the hold state.

    *commit* is called with every change before it is applied (the store's
    commit); the default keeps the queue in memory only. Only the newest
    *keep_history* finished jobs stay in memory; older ones are looked up
    in *archive* (without one they are forgotten).
    """

    def __init__(self, data: Optional[QueueData] = None,
                 commit: Optional[Callable[[Change], None]] = None,
                 archive: Optional[Archive] = None,
                 keep_history: int = KEEP_HISTORY):
        data = data or QueueData()
        self._jobs = dict(data.jobs)
        self._order = list(data.order)
        self._keys = dict(data.keys)
        self._history = list(data.history)
        self._history_start = data.history_start
        self._history_index = {job_id: data.history_start + index
                               for index, job_id in enumerate(self._history)}
        self._archive = archive
        self._keep_history = keep_history
        self._queue = data.queue
        self._next_id = data.next_id
        self._current = next((job.id for job in self._jobs.values()
                              if job.state.current), None)
        self._commit = commit or (lambda change: None)

    # -- queries ------------------------------------------------------------

    def data(self) -> QueueData:
        """A copy of the whole state (what the store keeps)."""
        return QueueData(dict(self._jobs), list(self._order), dict(self._keys),
                         list(self._history), self._history_start,
                         self._queue, self._next_id)

    @property
    def queue(self) -> QueueState:
        """Whether the queue is held, why, and its failure policy."""
        return self._queue

    def waiting(self) -> List[Job]:
        """Queued and skipped jobs, in the order they will run."""
        return [self._jobs[job_id] for job_id in self._order]

    def current(self) -> Optional[Job]:
        """The running or paused job, if any."""
        return None if self._current is None else self._jobs[self._current]

    def get(self, job_id: int) -> Job:
        """Any job: waiting, current or finished."""
        job = self._jobs.get(job_id) if isinstance(job_id, int) else None
        if job is None:
            archived = self._archived(job_id)
            if archived is None:
                raise JobNotFound(f'no job {job_id} in the queue or its '
                                  'history')
            job = archived[1]
        return job

    def history(self, limit: int = 50, before_id: Optional[int] = None
                ) -> List[Job]:
        """Up to *limit* finished jobs, the last finished first.

        With *before_id*, the page of jobs that finished before that one.
        """
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise InvalidValue(f'the history limit must be a positive number, '
                               f'not {limit!r}')
        start = self._history_start
        end = start + len(self._history)
        if before_id is not None:
            end = self._history_index.get(before_id)
            if end is None:
                found = self._archived(before_id)
                if found is None:
                    raise JobNotFound(f'no job {before_id} in the history')
                end = found[0]
        ids = self._history[max(0, end - limit - start):max(0, end - start)]
        jobs = [self._jobs[job_id] for job_id in reversed(ids)]
        if len(jobs) < limit and min(start, end) > 0 and self._archive:
            jobs += self._archive.finished_before(min(start, end),
                                                  limit - len(jobs))
        return jobs

    def _archived(self, job_id: int) -> Optional[Tuple[int, Job]]:
        """A finished job no longer in memory, and its history position."""
        if self._archive is None or not isinstance(job_id, int) or \
                job_id in self._jobs:
            return None
        return self._archive.finished_job(job_id)

    def next_job(self) -> Optional[Job]:
        """The job to start now: the first runnable one, unless a job is
        current or the queue is held."""
        if self._current is not None or self._queue.held:
            return None
        for job_id in self._order:
            if self._jobs[job_id].runnable:
                return self._jobs[job_id]
        return None

    # -- the queue as a whole ----------------------------------------------

    def hold(self, reason: str = 'held') -> Change:
        """A person holds the queue: start nothing new (the current job goes
        on), also jobs queued later, until `release`. It replaces a safety
        hold."""
        reason = validate.text(reason, 'hold reason', 'hold')
        return self._set_queue(held=True, hold_reason=reason, hold_kind=MANUAL,
                               protected=())

    def hold_for_safety(self, reason: str) -> Change:
        """The server holds the queue for safety (an abort or emergency stop
        was asked for): the jobs queued now wait for a person.

        Nothing starts while any of them is still queued; jobs queued later
        wait behind them. The hold ends with `release`, or by itself once
        none of them is queued any more (removed or skipped). With no job
        queued there is nothing to protect and no hold: a job queued after
        a stop into an empty queue runs, as in stock NICOS. A hold by a
        person stays as it is; an earlier safety hold keeps its reason and
        now protects every queued job.
        """
        reason = validate.text(reason, 'hold reason', 'hold')
        change = Change()
        self._hold_for_safety(change, reason)
        return self._run(change)

    def release(self) -> Change:
        """Start waiting jobs again (ends a hold of either kind)."""
        change = Change()
        if self._queue.held:
            change.set_queue(self._queue.released())
        return self._run(change)

    def set_on_failure(self, policy: str) -> Change:
        """What a failed job does to the queue: 'hold' or 'continue'."""
        if policy not in FAILURE_POLICIES:
            raise InvalidValue(f'unknown failure policy {policy!r}; give one '
                               f'of {", ".join(FAILURE_POLICIES)}')
        return self._set_queue(on_failure=policy)

    def _set_queue(self, **values) -> Change:
        change = Change()
        queue = dataclasses.replace(self._queue, **values)
        if queue != self._queue:
            change.set_queue(queue)
        return self._run(change)

    # -- the current job -----------------------------------------------------

    def start(self, job_id: int, now: float) -> Change:
        """Make waiting job *job_id* the current, running job."""
        job = self._waiting(job_id, 'start')
        if self._current is not None:
            current = self._jobs[self._current]
            raise InvalidTransition(
                f'cannot start job {job_id}: job {current.id} is '
                f'{current.state.value} and only one job runs at a time')
        if job.state is JobState.SKIPPED:
            raise InvalidTransition(f'job {job_id} is skipped: unskip it to '
                                    'start it')
        if job.held:
            reason = job.hold_reason or 'no reason given'
            raise InvalidTransition(f'job {job_id} is held back ({reason}): '
                                    'confirm it to start it')
        if self._queue.held:
            raise InvalidTransition(
                f'cannot start job {job_id}: the queue is held '
                f'({self._queue.hold_reason}); release it first')
        started = dataclasses.replace(job, state=JobState.RUNNING,
                                      started_at=now)
        change = Change(result=started)
        change.put_job(started)
        change.set_order([i for i in self._order if i != job_id], {})
        return self._run(change)

    def pause(self, now: float) -> Change:
        """The current job has stopped at a pause point."""
        job = self._current_job('pause')
        if job.state is JobState.PAUSED:
            raise InvalidTransition(f'job {job.id} is already paused')
        if job.kind is JobKind.BLACKBOX:
            raise InvalidTransition(f'job {job.id} is a black-box job: it '
                                    'cannot be paused, only aborted')
        return self._put(dataclasses.replace(job, state=JobState.PAUSED,
                                             paused_since=now))

    def resume(self, now: float) -> Change:
        """The paused current job runs again."""
        job = self._current_job('resume')
        if job.state is not JobState.PAUSED:
            raise InvalidTransition(f'job {job.id} is not paused: only a '
                                    'paused job can be resumed')
        return self._put(dataclasses.replace(
            job, state=JobState.RUNNING, paused_since=None,
            paused_total=job.paused_total + max(0.0, now - job.paused_since)))

    def report_progress(self, fraction: Optional[float],
                        message: str = '') -> Change:
        """How far the running job is (0..1, None if unknown), and a note."""
        job = self._running('report the progress of')
        label = f'job {job.id}'
        return self._put(dataclasses.replace(
            job, progress=validate.fraction(fraction, label),
            progress_message=validate.text(message, 'progress message', label)))

    def set_line(self, line: Optional[int]) -> Change:
        """The script line the current job is at.

        Kept in memory only, and not announced: it changes on every executed
        line, and a disk write or an event each time would slow the script
        down (clients follow the line in NICOS's ``status`` event). It is
        saved and sent with the job's next durable change.
        """
        job = self._current_job('set the line of')
        if line is not None and (isinstance(line, bool)
                                 or not isinstance(line, int) or line < 0):
            raise InvalidValue(f'job {job.id}: {line!r} is not a line number')
        change = Change(result=dataclasses.replace(job, current_line=line),
                        durable=False)
        change.put[job.id] = change.result
        return self._run(change)

    def finish(self, outcome: str, now: float, result: Optional[str] = None,
               error: Optional[dict] = None) -> Change:
        """The current job ended: 'done', 'failed' or 'aborted'.

        A failure holds the queue for safety (`hold_for_safety`: the jobs
        queued now) when the failure policy is 'hold'; the reason names the
        job. An abort holds nothing by itself: whoever asks for one holds
        the queue for safety at that moment, so that a job queued after
        the stop into an empty queue runs. Waiting jobs stay where they are.
        """
        try:
            state = JobState(outcome)
        except ValueError:
            state = None
        if state not in OUTCOMES:
            raise InvalidValue(f'unknown outcome {outcome!r}; give one of '
                               f'{", ".join(s.value for s in OUTCOMES)}')
        job = self._current_job('finish')
        if job.state is JobState.PAUSED and state is not JobState.ABORTED:
            raise InvalidTransition(f'job {job.id} is paused: a paused job can '
                                    'only be resumed or aborted')
        label = f'job {job.id}'
        if result is not None:
            validate.text(result, 'result', label)
        change = self._end(job, state, now, result=result,
                           error=validate.error_report(error, label))
        if state is JobState.FAILED and self._queue.on_failure == 'hold':
            reason = f'job {job.id} failed'
            if change.result.error:
                first_line = change.result.error['message'].split('\n', 1)[0]
                reason += f': {change.result.error["type"]}: {first_line[:200]}'
            self._hold_for_safety(change, reason)
        return self._run(change)

    def recover(self, now: float) -> Change:
        """After a restart: the job that was current is interrupted.

        It goes to the history (it is never run again by itself; re-queue
        it to run it again) and the queue is held for safety (the jobs
        queued now, see `hold_for_safety`), as the instrument may not be
        where the next job expects it.
        """
        if self._current is None:
            return self._run(Change())
        job = self._jobs[self._current]
        change = self._end(job, JobState.INTERRUPTED, now)
        self._hold_for_safety(
            change, f'job {job.id} was interrupted by a server restart')
        return self._run(change)

    # -- helpers -------------------------------------------------------------

    def _current_job(self, action: str) -> Job:
        if self._current is None:
            raise InvalidTransition(f'cannot {action} the current job: no job '
                                    'is running')
        return self._jobs[self._current]

    def _running(self, action: str) -> Job:
        job = self._current_job(action)
        if job.state is not JobState.RUNNING:
            raise InvalidTransition(f'cannot {action} job {job.id}: it is '
                                    f'{job.state.value}')
        return job

    def _end(self, job: Job, state: JobState, now: float, **values) -> Change:
        paused = job.paused_total
        if job.paused_since is not None:
            paused += max(0.0, now - job.paused_since)
        ended = dataclasses.replace(job, state=state, finished_at=now,
                                    paused_since=None, paused_total=paused,
                                    **values)
        change = Change(result=ended)
        change.put_job(ended)
        change.history[job.id] = self._history_start + len(self._history)
        return change

    def _hold_for_safety(self, change: Change, reason: str) -> None:
        """Add a safety hold over the jobs queued now to *change* (see
        `hold_for_safety`); *change* must not touch the waiting jobs."""
        queue = self._queue
        if queue.hold_kind == MANUAL:
            return
        queued = tuple(job_id for job_id in self._order
                       if self._jobs[job_id].state is JobState.QUEUED)
        if not queued:
            return
        held = dataclasses.replace(
            queue, held=True, hold_kind=SAFETY, protected=queued,
            hold_reason=queue.hold_reason if queue.held else reason)
        if held != queue:
            change.set_queue(held)

    def _end_safety_hold(self, change: Change) -> None:
        """Release a safety hold that *change* leaves protecting no queued
        job (the last of them was removed or skipped)."""
        queue = change.queue or self._queue
        if queue.hold_kind != SAFETY:
            return
        for job_id in queue.protected:
            job = change.put.get(job_id)
            if job is None and job_id not in change.deleted:
                job = self._jobs.get(job_id)
            if job is not None and job.state is JobState.QUEUED:
                return
        change.set_queue(queue.released())
        change.durable = True

    def _put(self, job: Job) -> Change:
        change = Change(result=job)
        change.put_job(job)
        return self._run(change)

    def _run(self, change: Change) -> Change:
        """Commit *change*, then apply it: all or nothing."""
        if change.empty:
            return change
        for job in change.put.values():
            old = self._jobs.get(job.id)
            assert old is None or not old.state.finished, \
                f'finished job {job.id} must not change'
            if job.state.waiting and job.id not in change.keys:
                change.keys[job.id] = self._keys[job.id]
        self._end_safety_hold(change)
        if change.durable:
            self._commit(change)
        self._apply(change)
        return change

    def _apply(self, change: Change) -> None:
        # Only assignments from here on: nothing may fail once committed.
        for job_id in change.deleted:
            del self._jobs[job_id]
            self._keys.pop(job_id, None)
        for job in change.put.values():
            self._jobs[job.id] = job
            if job.state.current:
                self._current = job.id
            elif self._current == job.id:
                self._current = None
            if not job.state.waiting:
                self._keys.pop(job.id, None)
        self._keys.update(change.keys)
        if change.order is not None:
            self._order = change.order
        self._history.extend(change.history)
        self._history_index.update(change.history)
        if len(self._history) > self._keep_history:
            # The oldest finished jobs stay in the archive only.
            dropped = len(self._history) - self._keep_history
            for job_id in self._history[:dropped]:
                del self._jobs[job_id]
                del self._history_index[job_id]
            self._history = self._history[dropped:]
            self._history_start += dropped
        if change.queue is not None:
            self._queue = change.queue
        if change.next_id is not None:
            self._next_id = change.next_id
