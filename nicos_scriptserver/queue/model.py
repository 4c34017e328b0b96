"""Jobs and the queue's own state: plain, immutable, JSON-ready data.

A `Job` never changes in place: every operation that changes a job builds
a new `Job` (``dataclasses.replace``). Jobs can therefore be handed to
other threads and to clients without copying. The containers inside a job
(``calls``, ``error``, ``estimate``) are shared too and must be treated as
read-only.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field, fields
from enum import Enum
from typing import Any, Dict, List, Optional, Tuple

#: What the queue does when a job fails: hold (start nothing more until
#: released) or continue with the next waiting job.
FAILURE_POLICIES = ('hold', 'continue')
#: Who held the queue: a person (``hold``: nothing starts, also jobs
#: queued later, until released) or the server, for safety (after an
#: abort, a failure, an emergency stop or a restart that interrupted a
#: job: the jobs queued at that moment wait for a person).
MANUAL, SAFETY = 'manual', 'safety'
HOLD_KINDS = (MANUAL, SAFETY)


class JobKind(str, Enum):
    """Where a job's script comes from, which decides how it is run."""

    GENERATED = 'generated'  # made by a script generator from command calls
    AWARE = 'aware'  # hand-written; may use pause points and progress
    BLACKBOX = 'blackbox'  # opaque script, run in a child process


class JobState(str, Enum):
    """Where a job is in its life: waiting, current or finished."""

    QUEUED = 'queued'
    SKIPPED = 'skipped'
    RUNNING = 'running'
    PAUSED = 'paused'
    DONE = 'done'
    FAILED = 'failed'
    ABORTED = 'aborted'
    INTERRUPTED = 'interrupted'  # was current when the server stopped

    @property
    def waiting(self) -> bool:
        return self in (JobState.QUEUED, JobState.SKIPPED)

    @property
    def current(self) -> bool:
        return self in (JobState.RUNNING, JobState.PAUSED)

    @property
    def finished(self) -> bool:
        return not (self.waiting or self.current)


#: Finished states from which a job may be queued again (as a new job).
REQUEUEABLE = (JobState.FAILED, JobState.ABORTED, JobState.INTERRUPTED)


class Request(str, Enum):
    """What was asked of the current job and has not happened yet."""

    PAUSE = 'pause'  # it pauses at its next pause point
    ABORT = 'abort'  # it stops at its next safe point


@dataclass(frozen=True, slots=True)
class Job:
    """One script in the queue or in its history.

    Times are epoch seconds. ``paused_total`` is the time spent paused
    before the current pause, which started at ``paused_since``.
    ``owner`` submitted the job; ``changed_by`` last changed what it runs
    (its name, script or calls), and the job runs as that account (see
    `rights.runs_as`).
    """

    id: int
    kind: JobKind
    source: str
    owner: str
    # Keyword-only and without a default: every place that makes a job
    # must say whose rights it runs with.
    changed_by: str = field(kw_only=True)
    state: JobState
    created: float
    name: str = ''
    calls: Optional[List[Dict[str, Any]]] = None
    batch_id: Optional[str] = None
    batch_index: Optional[int] = None
    batch_size: Optional[int] = None
    queued_at: Optional[float] = None
    started_at: Optional[float] = None
    finished_at: Optional[float] = None
    paused_total: float = 0.0
    paused_since: Optional[float] = None
    progress: Optional[float] = None
    progress_message: str = ''
    current_line: Optional[int] = None
    result: Optional[str] = None
    error: Optional[Dict[str, Any]] = None
    requeued_from: Optional[int] = None
    estimate: Optional[Dict[str, Any]] = None
    held: bool = False
    hold_reason: str = ''
    #: Held back by its dry run (not by whoever submitted it): a later dry
    #: run that passes (after an edit) releases it.
    held_by_dry_run: bool = False
    #: An aware job that runs in its own process, through the bridge
    #: (copies and re-queued jobs keep it).
    isolated: bool = False
    #: Held back because its command calls no longer fit the catalog after
    #: a command file changed: fixing the file or the job releases it.
    held_by_catalog: bool = False
    #: What was asked of the current job and has not happened yet (see
    #: `lifecycle.TRANSITIONS`).
    requested: Optional[Request] = None
    #: Counts the changes people made to the waiting job (edit, move,
    #: skip, unskip, confirm), so that a client can make a change only to
    #: the job as it saw it (see `versions.check_version`); the server's own
    #: reports and holds leave it alone. ``last_change`` says who made the
    #: newest of them and what it was: ``{"by": name, "what": text}``.
    version: int = 1
    last_change: Optional[Dict[str, str]] = None
    # to_dict's result, made once: listing thousands of jobs for a client
    # must be fast, and a job never changes.
    _wire: Optional[Dict[str, Any]] = field(default=None, init=False,
                                            repr=False, compare=False)

    @property
    def runnable(self) -> bool:
        """Whether the job may be started when its turn comes."""
        return self.state is JobState.QUEUED and not self.held

    def elapsed(self, now: float) -> float:
        """Wall time since the job started, pauses included (0 if not)."""
        if self.started_at is None:
            return 0.0
        end = now if self.finished_at is None else self.finished_at
        return max(0.0, end - self.started_at)

    def active_time(self, now: float) -> float:
        """Time the job has spent running, pauses excluded."""
        paused = self.paused_total
        if self.paused_since is not None:
            paused += max(0.0, now - self.paused_since)
        return max(0.0, self.elapsed(now) - paused)

    def to_dict(self) -> Dict[str, Any]:
        """The job as a JSON-ready dict (the form clients receive).

        A new dict each time, but the containers in it are the job's own.
        """
        wire = self._wire
        if wire is None:
            wire = {
                'id': self.id, 'kind': self.kind.value, 'source': self.source,
                'owner': self.owner, 'changed_by': self.changed_by,
                'state': self.state.value,
                'created': self.created, 'name': self.name,
                'calls': self.calls, 'batch_id': self.batch_id,
                'batch_index': self.batch_index, 'batch_size': self.batch_size,
                'queued_at': self.queued_at, 'started_at': self.started_at,
                'finished_at': self.finished_at,
                'paused_total': self.paused_total,
                'paused_since': self.paused_since, 'progress': self.progress,
                'progress_message': self.progress_message,
                'current_line': self.current_line, 'result': self.result,
                'error': self.error, 'requeued_from': self.requeued_from,
                'estimate': self.estimate, 'held': self.held,
                'hold_reason': self.hold_reason,
                'held_by_dry_run': self.held_by_dry_run,
                'isolated': self.isolated,
                'held_by_catalog': self.held_by_catalog,
                'requested': self.requested and self.requested.value,
                'version': self.version, 'last_change': self.last_change,
            }
            object.__setattr__(self, '_wire', wire)
        return wire.copy()

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> 'Job':
        """The job described by a `to_dict` dict; unknown keys are ignored
        (so that clients can read dicts of a newer server)."""
        values = {name: data[name] for name in _JOB_FIELDS if name in data}
        complete = len(values) == len(_JOB_FIELDS)
        values['kind'] = JobKind(data['kind'])
        values['state'] = JobState(data['state'])
        requested = data.get('requested')
        values['requested'] = None if requested is None else Request(requested)
        job = cls(**values)
        if complete:
            wire = dict(values, kind=job.kind.value, state=job.state.value,
                        requested=requested)
            # A complete dict is what to_dict would make: keep it (this makes
            # the first listing after a restart as fast as later ones).
            object.__setattr__(job, '_wire', wire)
        return job


_JOB_FIELDS = tuple(f.name for f in fields(Job) if f.init)


@dataclass(frozen=True)
class JobSpec:
    """A job as it is submitted, checked (`app.spec` makes them from what
    clients send): what the queue's ``submit`` turns into a `Job`.

    ``calls`` are a generated job's command calls (None for other kinds),
    ``source`` its script rendered from them; ``held`` submits it held
    back, for ``hold_reason``; ``isolated`` runs an aware job in its own
    process.
    """

    kind: JobKind
    source: str
    name: str = ''
    calls: Optional[List[Dict[str, Any]]] = None
    held: bool = False
    hold_reason: str = ''
    isolated: bool = False


@dataclass(frozen=True)
class QueueState:
    """The queue as a whole: whether it is held, and its failure policy.

    ``hold_kind`` says who held it (`MANUAL` or `SAFETY`; empty when not
    held). A safety hold lists the jobs it protects, the ones queued when
    it was set, in ``protected``; it lasts while one of them is still
    queued (see `QueueMachine.hold_for_safety`).
    """

    held: bool = False
    hold_reason: str = ''
    on_failure: str = 'hold'
    hold_kind: str = ''
    protected: Tuple[int, ...] = ()

    def to_dict(self) -> Dict[str, Any]:
        """The state as a JSON-ready dict (the ``queue_state`` event)."""
        return {'held': self.held, 'hold_reason': self.hold_reason,
                'on_failure': self.on_failure, 'hold_kind': self.hold_kind,
                'protected': list(self.protected)}

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> 'QueueState':
        """The state described by a `to_dict` dict."""
        return cls(bool(data['held']), str(data['hold_reason']),
                   str(data['on_failure']), str(data['hold_kind']),
                   tuple(int(job_id) for job_id in data['protected']))

    def released(self) -> 'QueueState':
        """This state without its hold."""
        return dataclasses.replace(self, held=False, hold_reason='',
                                   hold_kind='', protected=())

    def problems(self) -> List[str]:
        """What is inconsistent in the hold (empty if all is well)."""
        found = []
        if self.hold_kind not in ('',) + HOLD_KINDS:
            found.append(f'unknown hold kind {self.hold_kind!r}')
        if self.held != bool(self.hold_kind):
            found.append('a hold without its kind, or a kind without a hold')
        if bool(self.protected) != (self.hold_kind == SAFETY):
            found.append('only a safety hold protects jobs, and it protects '
                         'some')
        if self.on_failure not in FAILURE_POLICIES:
            found.append(f'unknown failure policy {self.on_failure!r}')
        return found


@dataclass
class QueueData:
    """Everything the queue knows; what the store saves and restores.

    ``jobs`` holds the waiting jobs, the current job and the newest
    finished jobs. ``order`` is the waiting list; ``keys`` gives each
    waiting job its order key (strictly increasing along ``order``, see
    `order.place`). ``history`` lists the finished jobs in ``jobs`` in the
    order they finished; ``history_start`` is the position of the first of
    them in the whole history (older ones are only in the store).
    """

    jobs: Dict[int, Job] = field(default_factory=dict)
    order: List[int] = field(default_factory=list)
    keys: Dict[int, int] = field(default_factory=dict)
    history: List[int] = field(default_factory=list)
    history_start: int = 0
    queue: QueueState = field(default_factory=QueueState)
    next_id: int = 1

    def problems(self) -> List[str]:
        """What is inconsistent (empty if all is well)."""
        found = []
        waiting = [i for i, job in self.jobs.items() if job.state.waiting]
        finished = [i for i, job in self.jobs.items() if job.state.finished]
        current = [i for i, job in self.jobs.items() if job.state.current]
        if sorted(waiting) != sorted(self.order) or \
                len(set(self.order)) != len(self.order):
            found.append(f'the waiting list {self.order} does not match the '
                         f'waiting jobs {sorted(waiting)}')
        if set(self.keys) != set(self.order):
            found.append('order keys do not match the waiting list')
        else:
            keys = [self.keys[i] for i in self.order]
            if any(a >= b for a, b in zip(keys, keys[1:])):
                found.append('order keys are not increasing along the queue')
        if sorted(finished) != sorted(self.history) or \
                len(set(self.history)) != len(self.history):
            found.append('the history does not match the finished jobs')
        if len(current) > 1:
            found.append(f'more than one current job: {sorted(current)}')
        if any(job.id != i for i, job in self.jobs.items()):
            found.append('jobs filed under another id')
        if self.jobs and max(self.jobs) >= self.next_id:
            found.append(f'next id {self.next_id} is not above every job id')
        if self.history_start < 0:
            found.append(f'negative history start {self.history_start}')
        found.extend(self.queue.problems())
        if self.queue.hold_kind == SAFETY and not any(
                job_id in self.jobs and
                self.jobs[job_id].state is JobState.QUEUED
                for job_id in self.queue.protected):
            found.append('a safety hold that protects no queued job')
        return found


def json_number(value: Any) -> bool:
    """Whether *value* is a finite int or float (bool is not a number here)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) \
        and math.isfinite(value)
