"""Operations on the current job: start, pause, resume, progress, finish,
and the requests to pause or abort it.

Each is a function of the queue's state (`view.QueueView`) and its
arguments that returns the `Change` it makes, or raises a `QueueError`;
`machine.QueueMachine` commits and applies it. Where the job goes is
`lifecycle.TRANSITIONS`'s. At most one job is current; while it is paused
nothing else starts, and it can only be resumed or aborted.
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Tuple

from nicos_scriptserver.queue import holds, validate
from nicos_scriptserver.queue.change import Change
from nicos_scriptserver.queue.errors import InvalidTransition, InvalidValue
from nicos_scriptserver.queue.lifecycle import (Stage, advance,
                                                require_waiting)
from nicos_scriptserver.queue.model import Job, JobKind, JobState, Request
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
    state, _ = advance(job, 'start')
    if job.held:
        reason = job.hold_reason or 'no reason given'
        raise InvalidTransition(f'job {job_id} is held back ({reason}): '
                                'confirm it to start it')
    if view.queue.held:
        raise InvalidTransition(
            f'cannot start job {job_id}: the queue is held '
            f'({view.queue.hold_reason}); release it first')
    started = dataclasses.replace(job, state=state, started_at=now)
    change = Change(result=started)
    change.put_job(started)
    change.set_order([i for i in view.order if i != job_id], {})
    return change


def request_pause(view: QueueView) -> Change:
    """A pause of the current job was asked for: it pauses at its next
    pause point (`pause`). Kept in memory only: after a restart the job is
    interrupted anyway."""
    job, (state, requested) = _pausable(view, 'request pause')
    return _put(dataclasses.replace(job, state=state, requested=requested),
                durable=False)


def pause(view: QueueView, now: float) -> Change:
    """The current job has stopped at a pause point."""
    job, (state, requested) = _pausable(view, 'pause')
    return _put(dataclasses.replace(job, state=state, requested=requested,
                                    paused_since=now))


def resume(view: QueueView, now: float) -> Change:
    """The paused current job runs again."""
    job = _current_job(view, 'resume')
    state, requested = advance(job, 'resume')
    return _put(dataclasses.replace(
        job, state=state, requested=requested, paused_since=None,
        paused_total=job.paused_total + max(0.0, now - job.paused_since)))


def request_abort(view: QueueView, reason: str) -> Change:
    """An abort of the current job was asked for: it stops at its next
    safe point (`finish` 'aborted'), and the jobs queued now wait for a
    person (`holds.hold_for_safety`, for *reason*)."""
    job = _current_job(view, 'abort')
    state, requested = advance(job, 'request abort')
    change = _put(dataclasses.replace(job, state=state, requested=requested),
                  durable=False)
    holds.add_safety_hold(view, change, validate.text(reason, 'hold reason',
                                                      'hold'))
    # The hold is worth a disk write; the request alone is not (see
    # `request_pause`).
    change.durable = change.queue is not None
    return change


def withdraw_request(view: QueueView) -> Change:
    """What was asked of the current job could not be passed on to it: it
    goes on as before (a safety hold set with an abort stays)."""
    job = _current_job(view, 'withdraw the request of')
    state, requested = advance(job, 'withdraw')
    return _put(dataclasses.replace(job, state=state, requested=requested),
                durable=False)


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
    stop into an empty queue runs. A job that ends while a pause of it is
    asked for (it reached no point to pause at) holds the queue for safety
    too, whatever the policy, unless its failure already did. Waiting jobs
    stay where they are.
    """
    try:
        state = JobState(outcome)
    except ValueError:
        state = None
    if state not in OUTCOMES:
        raise InvalidValue(f'unknown outcome {outcome!r}; give one of '
                           f'{", ".join(s.value for s in OUTCOMES)}')
    job = _current_job(view, 'finish')
    ended = advance(job, state.value)
    label = f'job {job.id}'
    if result is not None:
        validate.text(result, 'result', label)
    # A job that ran to its end is complete, whatever its last step said
    # (step i of n means that step i began).
    finished = {'progress': 1.0} if state is JobState.DONE else {}
    change = _end(view, job, ended, now, result=result,
                  error=validate.error_report(error, label), **finished)
    if state is JobState.FAILED and view.queue.on_failure == 'hold':
        reason = f'job {job.id} failed'
        if change.result.error:
            first_line = change.result.error['message'].split('\n', 1)[0]
            reason += f': {change.result.error["type"]}: {first_line[:200]}'
        holds.add_safety_hold(view, change, reason)
    elif job.requested is Request.PAUSE:
        # Whoever asked wants the instrument to wait for them; the next
        # job starting would be a surprise.
        holds.add_safety_hold(view, change,
                              f'job {job.id} ended before it could pause')
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
    change = _end(view, job, advance(job, 'interrupted'), now)
    holds.add_safety_hold(
        view, change, f'job {job.id} was interrupted by a server restart')
    return change


def _current_job(view: QueueView, action: str) -> Job:
    job = view.current()
    if job is None:
        raise InvalidTransition(f'cannot {action} the current job: no job '
                                'is running')
    return job


def _pausable(view: QueueView, operation: str) -> Tuple[Job, Stage]:
    """The current job and the stage *operation* (a pause or its request)
    moves it to; black-box jobs cannot pause."""
    job = _current_job(view, 'pause')
    after = advance(job, operation)
    if job.kind is JobKind.BLACKBOX:
        raise InvalidTransition(f'job {job.id} is a black-box job: it '
                                'cannot be paused, only aborted')
    return job, after


def _put(job: Job, durable: bool = True) -> Change:
    change = Change(result=job, durable=durable)
    change.put_job(job)
    return change


def _end(view: QueueView, job: Job, stage: Stage, now: float,
         **values) -> Change:
    state, requested = stage
    paused = job.paused_total
    if job.paused_since is not None:
        paused += max(0.0, now - job.paused_since)
    ended = dataclasses.replace(job, state=state, requested=requested,
                                finished_at=now, paused_since=None,
                                paused_total=paused, **values)
    change = Change(result=ended)
    change.put_job(ended)
    change.history[job.id] = view.history_end
    return change
