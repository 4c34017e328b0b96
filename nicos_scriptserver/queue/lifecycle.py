"""Where a job is in its life, and which operations it allows there.

`require_waiting` finds a waiting job for an operation, or refuses with
what the user reads: the rule, and what to do instead.
"""

from __future__ import annotations

from typing import Any

from nicos_scriptserver.queue.errors import JobNotFound, NotEditable
from nicos_scriptserver.queue.model import REQUEUEABLE, Job
from nicos_scriptserver.queue.view import QueueView

# How each operation on a waiting job reads in a refusal, and what to tell
# the user who tries it on the current job.
_WAITING_ONLY = {
    'edit': ('edited', 'abort it, then edit and re-queue it'),
    'start': ('started', 'it has already started'),
    'remove': ('removed', 'abort it to stop it'),
    'move': ('moved', 'it has already left the waiting list'),
    'skip': ('skipped', 'abort it to stop it'),
    'unskip': ('unskipped', 'it has already left the waiting list'),
    'confirm': ('confirmed', 'it has already started'),
    'estimate': ('given an estimate', ''),
}


def require_waiting(view: QueueView, job_id: Any, operation: str) -> Job:
    """The waiting job *job_id*, or the refusal of *operation* on it."""
    job = view.find(job_id)
    if job is None:
        raise JobNotFound(f'no job {job_id} in the queue')
    if not job.state.waiting:
        raise _refusal(job, operation)
    return job


def _refusal(job: Job, operation: str) -> NotEditable:
    done, advice = _WAITING_ONLY[operation]
    if job.state.current:
        return NotEditable(f'job {job.id} is {job.state.value}: the current '
                           f'job cannot be {done}; {advice}')
    advice = '; re-queue it to run it again' if job.state in REQUEUEABLE else ''
    return NotEditable(f'job {job.id} is {job.state.value}: finished jobs '
                       f'cannot be {done}, they stay in the history as they '
                       f'ran{advice}')
