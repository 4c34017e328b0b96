"""Operations on the current job: start, pause, resume, progress, finish.

Each is a function of the queue's state (`view.QueueView`) and its
arguments that returns the `Change` it makes, or raises a `QueueError`;
`machine.QueueMachine` commits and applies it. At most one job is
current; while it is paused nothing else starts, and it can only be
resumed or aborted.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

from nicos_scriptserver.queue import holds, validate
from nicos_scriptserver.queue.change import Change
from nicos_scriptserver.queue.errors import InvalidTransition, InvalidValue
from nicos_scriptserver.queue.lifecycle import require_waiting
from nicos_scriptserver.queue.model import Job, JobKind, JobState
from nicos_scriptserver.queue.view import QueueView

#: How a current job can end.
OUTCOMES = (JobState.DONE, JobState.FAILED, JobState.ABORTED)


def start(view: QueueView, job_id: int, now: float) -> Change:
    """Make waiting job *job_id* the current, running job."""
    job = require_waiting(view, job_id, 'start')
    current = view.current()
    if current is not None:
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
    if view.queue.held:
        raise InvalidTransition(
            f'cannot start job {job_id}: the queue is held '
            f'({view.queue.hold_reason}); release it first')
    started = dataclasses.replace(job, state=JobState.RUNNING, started_at=now)
    change = Change(result=started)
    change.put_job(started)
    change.set_order([i for i in view.order if i != job_id], {})
    return change


def pause(view: QueueView, now: float) -> Change:
    """The current job has stopped at a pause point."""
    job = _current_job(view, 'pause')
    if job.state is JobState.PAUSED:
        raise InvalidTransition(f'job {job.id} is already paused')
    if job.kind is JobKind.BLACKBOX:
        raise InvalidTransition(f'job {job.id} is a black-box job: it '
                                'cannot be paused, only aborted')
    return _put(dataclasses.replace(job, state=JobState.PAUSED,
                                    paused_since=now))


def resume(view: QueueView, now: float) -> Change:
    """The paused current job runs again."""
    job = _current_job(view, 'resume')
    if job.state is not JobState.PAUSED:
        raise InvalidTransition(f'job {job.id} is not paused: only a '
                                'paused job can be resumed')
    return _put(dataclasses.replace(
        job, state=JobState.RUNNING, paused_since=None,
        paused_total=job.paused_total + max(0.0, now - job.paused_since)))


def report_progress(view: QueueView, fraction: Optional[float],
                    message: str = '') -> Change:
    """How far the running job is (0..1, None if unknown), and a note."""
    job = _current_job(view, 'report the progress of')
    if job.state is not JobState.RUNNING:
        raise InvalidTransition(f'cannot report the progress of job '
                                f'{job.id}: it is {job.state.value}')
    label = f'job {job.id}'
    return _put(dataclasses.replace(
        job, progress=validate.fraction(fraction, label),
        progress_message=validate.text(message, 'progress message', label)))


def set_line(view: QueueView, line: Optional[int]) -> Change:
    """The script line the current job is at.

    Kept in memory only, and not announced: it changes on every executed
    line, and a disk write or an event each time would slow the script
    down (clients follow the line in NICOS's ``status`` event). It is
    saved and sent with the job's next durable change.
    """
    job = _current_job(view, 'set the line of')
    if line is not None and (isinstance(line, bool)
                             or not isinstance(line, int) or line < 0):
        raise InvalidValue(f'job {job.id}: {line!r} is not a line number')
    change = Change(result=dataclasses.replace(job, current_line=line),
                    durable=False)
    change.put[job.id] = change.result
    return change


def finish(view: QueueView, outcome: str, now: float,
           result: Optional[str] = None, error: Optional[dict] = None
           ) -> Change:
    """The current job ended: 'done', 'failed' or 'aborted'.

    A failure holds the queue for safety (`holds.hold_for_safety`: the
    jobs queued now) when the failure policy is 'hold'; the reason names
    the job. An abort holds nothing by itself: whoever asks for one holds
    the queue for safety at that moment, so that a job queued after the
    stop into an empty queue runs. Waiting jobs stay where they are.
    """
    try:
        state = JobState(outcome)
    except ValueError:
        state = None
    if state not in OUTCOMES:
        raise InvalidValue(f'unknown outcome {outcome!r}; give one of '
                           f'{", ".join(s.value for s in OUTCOMES)}')
    job = _current_job(view, 'finish')
    if job.state is JobState.PAUSED and state is not JobState.ABORTED:
        raise InvalidTransition(f'job {job.id} is paused: a paused job can '
                                'only be resumed or aborted')
    label = f'job {job.id}'
    if result is not None:
        validate.text(result, 'result', label)
    change = _end(view, job, state, now, result=result,
                  error=validate.error_report(error, label))
    if state is JobState.FAILED and view.queue.on_failure == 'hold':
        reason = f'job {job.id} failed'
        if change.result.error:
            first_line = change.result.error['message'].split('\n', 1)[0]
            reason += f': {change.result.error["type"]}: {first_line[:200]}'
        holds.add_safety_hold(view, change, reason)
    return change


def recover(view: QueueView, now: float) -> Change:
    """After a restart: the job that was current is interrupted.

    It goes to the history (it is never run again by itself; re-queue it
    to run it again) and the queue is held for safety (the jobs queued
    now, see `holds.hold_for_safety`), as the instrument may not be where
    the next job expects it.
    """
    job = view.current()
    if job is None:
        return Change()
    change = _end(view, job, JobState.INTERRUPTED, now)
    holds.add_safety_hold(
        view, change, f'job {job.id} was interrupted by a server restart')
    return change


def _current_job(view: QueueView, action: str) -> Job:
    job = view.current()
    if job is None:
        raise InvalidTransition(f'cannot {action} the current job: no job '
                                'is running')
    return job


def _put(job: Job) -> Change:
    change = Change(result=job)
    change.put_job(job)
    return change


def _end(view: QueueView, job: Job, state: JobState, now: float,
         **values) -> Change:
    paused = job.paused_total
    if job.paused_since is not None:
        paused += max(0.0, now - job.paused_since)
    ended = dataclasses.replace(job, state=state, finished_at=now,
                                paused_since=None, paused_total=paused,
                                **values)
    change = Change(result=ended)
    change.put_job(ended)
    change.history[job.id] = view.history_end
    return change
