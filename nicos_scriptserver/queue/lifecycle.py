"""Where a job is in its life, and how each operation moves it on.

A job's stage is its state and what was asked of it that has not happened
yet (`Request`): a pause requested, or an abort (it is *aborting*).
`TRANSITIONS` is the whole table; an operation from a stage it does not
list is refused with the rule (`advance`). Clients read a job's stage
from its dict with the same functions (`stage`, `allows`, `describe`). The operations on a waiting
job that do not move it (edit, move, remove, ...) are allowed exactly
while it waits (`require_waiting`).

::

    submit -> queued <-skip/unskip-> skipped
    queued -start-> running -request pause-> running, pause requested
    running [, pause requested] -pause-> paused -resume-> running
    running, paused [, pause requested] -request abort-> ..., aborting
    running [, any request] -done/failed-> done/failed
    running, paused [, any request] -aborted-> aborted
    running, paused [, any request] -interrupted (restart)-> interrupted
    ..., pause requested/aborting -withdraw-> ... (the request failed)

A job's dry run has a stage of its own (`DryRunState`, the ``state`` of
its report): none yet, pending, running, then a verdict (ok, failed, not
possible). An edit of its script drops the report; a copy keeps it.
Under the policy that jobs wait for their dry run, a job starts only
after the verdict (`waits_for_dry_run`).
"""

from __future__ import annotations

from enum import Enum
from typing import Any, Dict, Mapping, Optional, Tuple, Union

from nicos_scriptserver.queue.errors import (InvalidTransition, JobNotFound,
                                             NotEditable)
from nicos_scriptserver.queue.model import (REQUEUEABLE, Job,
                                            JobState, Request)
from nicos_scriptserver.queue.view import QueueView

#: A job's stage: its state and what was asked of it (None: nothing).
Stage = Tuple[JobState, Optional[Request]]

_QUEUED, _SKIPPED = JobState.QUEUED, JobState.SKIPPED
_RUNNING, _PAUSED = JobState.RUNNING, JobState.PAUSED
_PAUSE, _ABORT = Request.PAUSE, Request.ABORT
_ANY_REQUEST = (None, _PAUSE, _ABORT)


def _ends(state: JobState, *states: JobState) -> Dict[Stage, Stage]:
    return {(current, request): (state, None) for current in states
            for request in _ANY_REQUEST}


#: operation -> {stage before: stage after}.
TRANSITIONS: Dict[str, Dict[Stage, Stage]] = {
    'skip': {(_QUEUED, None): (_SKIPPED, None),
             (_SKIPPED, None): (_SKIPPED, None)},
    'unskip': {(_SKIPPED, None): (_QUEUED, None),
               (_QUEUED, None): (_QUEUED, None)},
    'start': {(_QUEUED, None): (_RUNNING, None)},
    # Asked again, a pause or an abort is sent again: at another level.
    'request pause': {(_RUNNING, None): (_RUNNING, _PAUSE),
                      (_RUNNING, _PAUSE): (_RUNNING, _PAUSE)},
    'pause': {(_RUNNING, None): (_PAUSED, None),
              (_RUNNING, _PAUSE): (_PAUSED, None)},
    'resume': {(_PAUSED, None): (_RUNNING, None)},
    'request abort': {(_RUNNING, None): (_RUNNING, _ABORT),
                      (_RUNNING, _PAUSE): (_RUNNING, _ABORT),
                      (_RUNNING, _ABORT): (_RUNNING, _ABORT),
                      (_PAUSED, None): (_PAUSED, _ABORT),
                      (_PAUSED, _ABORT): (_PAUSED, _ABORT)},
    # A request that could not be passed on to the job.
    'withdraw': {(_RUNNING, _PAUSE): (_RUNNING, None),
                 (_RUNNING, _ABORT): (_RUNNING, None),
                 (_PAUSED, _ABORT): (_PAUSED, None)},
    # A job may end as it ends, whatever was asked of it; paused, it only
    # ends by an abort.
    'done': _ends(JobState.DONE, _RUNNING),
    'failed': _ends(JobState.FAILED, _RUNNING),
    'aborted': _ends(JobState.ABORTED, _RUNNING, _PAUSED),
    'interrupted': _ends(JobState.INTERRUPTED, _RUNNING, _PAUSED),
}

# Why an operation is refused, by what was asked of the job, then by its
# state; {id} is the job's.
_REFUSALS: Dict[str, Dict[Any, str]] = {
    'start': {_SKIPPED: 'job {id} is skipped: unskip it to start it'},
    'request pause': {_ABORT: 'job {id} is being aborted',
                      _PAUSED: 'job {id} is already paused'},
    'pause': {_ABORT: 'job {id} is being aborted',
              _PAUSED: 'job {id} is already paused'},
    'resume': {_ABORT: 'job {id} is being aborted',
               _RUNNING: 'job {id} is not paused: only a paused job can be '
                         'resumed'},
    'withdraw': {None: 'nothing was asked of job {id}'},
    'done': {_PAUSED: 'job {id} is paused: a paused job can only be '
                      'resumed or aborted'},
    'failed': {_PAUSED: 'job {id} is paused: a paused job can only be '
                        'resumed or aborted'},
}


# What clients call a job of which something was asked.
_REQUESTED = {_PAUSE: 'pause requested', _ABORT: 'aborting'}


def stage(job: Union[Job, Mapping[str, Any]]) -> Stage:
    """Where a job (or its dict, as clients get it) is in its life."""
    if isinstance(job, Job):
        return job.state, job.requested
    requested = job.get('requested')
    return (JobState(job['state']),
            None if requested is None else Request(requested))


def advance(job: Job, operation: str) -> Stage:
    """The stage *operation* moves *job* to, or `InvalidTransition`."""
    after = TRANSITIONS[operation].get((job.state, job.requested))
    if after is None:
        reasons = _REFUSALS.get(operation, {})
        reason = reasons.get(job.requested) or reasons.get(job.state) or \
            f'job {{id}} is {job.state.value}: cannot {operation} it'
        raise InvalidTransition(reason.format(id=job.id))
    return after


def allows(job: Union[Job, Mapping[str, Any]], operation: str) -> bool:
    """Whether *operation* may be done to a job (or its dict) now."""
    return stage(job) in TRANSITIONS[operation]


def describe(job: Mapping[str, Any]) -> str:
    """A job's stage as every client shows it: its state, or what is
    asked of it ('pause requested', 'aborting'), or 'held back' for a
    queued job that does not run until confirmed."""
    state, requested = stage(job)
    if requested is not None:
        return _REQUESTED[requested]
    if state is _QUEUED and job.get('held'):
        return 'held back'
    return state.value


class DryRunState(str, Enum):
    """Where a job's dry run is: the ``state`` of its report."""

    PENDING = 'pending'  # to be dry-run
    RUNNING = 'running'  # being dry-run
    OK = 'ok'  # found nothing wrong
    FAILED = 'failed'  # found a problem
    NOT_POSSIBLE = 'not possible'  # cannot be dry-run (black box, ...)

    @property
    def final(self) -> bool:
        """Whether this is the dry run's verdict: it will not change."""
        return self in (DryRunState.OK, DryRunState.FAILED,
                        DryRunState.NOT_POSSIBLE)

    @classmethod
    def of(cls, report: Optional[Mapping[str, Any]]
           ) -> Optional['DryRunState']:
        """The state a report (or its summary) gives; None for no report,
        or one without a known state."""
        try:
            return cls((report or {}).get('state'))
        except ValueError:
            return None


def dry_run_done(job: Job) -> bool:
    """Whether *job*'s dry run has given its verdict."""
    state = DryRunState.of(job.estimate)
    return state is not None and state.final


def waits_for_dry_run(job: Job) -> bool:
    """Whether *job* may not start yet where jobs wait for their dry run:
    it has no verdict yet."""
    return not dry_run_done(job)


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
    reason = not_waiting_reason(job, operation)
    if reason is not None:
        raise NotEditable(reason)
    return job


def not_waiting_reason(job: Union[Job, Mapping[str, Any]],
                       operation: str) -> Optional[str]:
    """Why *operation*, allowed only on waiting jobs, is refused on *job*
    (or its dict); None while it waits. Clients ask before work a refusal
    would waste (the CLI before opening an editor)."""
    state, _ = stage(job)
    if state.waiting:
        return None
    job_id = job.id if isinstance(job, Job) else job['id']
    done, advice = _WAITING_ONLY[operation]
    if state.current:
        return (f'job {job_id} is {state.value}: the current job cannot be '
                f'{done}; {advice}')
    advice = '; re-queue it to run it again' if state in REQUEUEABLE else ''
    return (f'job {job_id} is {state.value}: finished jobs cannot be {done}, '
            f'they stay in the history as they ran{advice}')
