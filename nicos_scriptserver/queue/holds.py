"""The queue as a whole: a person's hold, a safety hold, the failure policy.

A person's hold starts nothing new, also jobs queued later, until it is
released. A safety hold (the server's, after an abort, a failure, an
emergency stop or a restart) protects the jobs queued when it is set and
lasts exactly while one of them is still queued. Like every operation,
these are functions of the queue's state (`view.QueueView`) that return
a `Change`.
"""

from __future__ import annotations

import dataclasses

from nicos_scriptserver.queue import validate
from nicos_scriptserver.queue.change import Change
from nicos_scriptserver.queue.errors import InvalidValue
from nicos_scriptserver.queue.model import (FAILURE_POLICIES, MANUAL, SAFETY,
                                            JobState)
from nicos_scriptserver.queue.view import QueueView


def hold(view: QueueView, reason: str = 'held') -> Change:
    """A person holds the queue: start nothing new (the current job goes
    on), also jobs queued later, until `release`. It replaces a safety
    hold."""
    reason = validate.text(reason, 'hold reason', 'hold')
    return _set_queue(view, held=True, hold_reason=reason, hold_kind=MANUAL,
                      protected=())


def hold_for_safety(view: QueueView, reason: str) -> Change:
    """The server holds the queue for safety (an abort or emergency stop
    was asked for): the jobs queued now wait for a person.

    Nothing starts while any of them is still queued; jobs queued later
    wait behind them. The hold ends with `release`, or by itself once none
    of them is queued any more (removed or skipped). With no job queued
    there is nothing to protect and no hold: a job queued after a stop
    into an empty queue runs, as in stock NICOS. A hold by a person stays
    as it is; an earlier safety hold keeps its reason and now protects
    every queued job.
    """
    reason = validate.text(reason, 'hold reason', 'hold')
    change = Change()
    add_safety_hold(view, change, reason)
    return change


def release(view: QueueView) -> Change:
    """Start waiting jobs again (ends a hold of either kind)."""
    change = Change()
    if view.queue.held:
        change.set_queue(view.queue.released())
    return change


def set_on_failure(view: QueueView, policy: str) -> Change:
    """What a failed job does to the queue: 'hold' or 'continue'."""
    if policy not in FAILURE_POLICIES:
        raise InvalidValue(f'unknown failure policy {policy!r}; give one of '
                           f'{", ".join(FAILURE_POLICIES)}')
    return _set_queue(view, on_failure=policy)


def add_safety_hold(view: QueueView, change: Change, reason: str) -> None:
    """Add a safety hold over the jobs queued now to *change* (see
    `hold_for_safety`); *change* must not touch the waiting jobs."""
    queue = view.queue
    if queue.hold_kind == MANUAL:
        return
    queued = tuple(job_id for job_id in view.order
                   if view.jobs[job_id].state is JobState.QUEUED)
    if not queued:
        return
    held = dataclasses.replace(
        queue, held=True, hold_kind=SAFETY, protected=queued,
        hold_reason=queue.hold_reason if queue.held else reason)
    if held != queue:
        change.set_queue(held)


def end_spent_safety_hold(view: QueueView, change: Change) -> None:
    """Release a safety hold that *change* leaves protecting no queued job
    (the last of them was removed or skipped)."""
    queue = change.queue or view.queue
    if queue.hold_kind != SAFETY:
        return
    for job_id in queue.protected:
        job = change.put.get(job_id)
        if job is None and job_id not in change.deleted:
            job = view.jobs.get(job_id)
        if job is not None and job.state is JobState.QUEUED:
            return
    change.set_queue(queue.released())
    change.durable = True


def _set_queue(view: QueueView, **values) -> Change:
    change = Change()
    queue = dataclasses.replace(view.queue, **values)
    if queue != view.queue:
        change.set_queue(queue)
    return change
