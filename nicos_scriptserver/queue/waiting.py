"""Operations on the waiting list: submit, edit, move, skip, repeat, ...

Each is a function of the queue's state (`view.QueueView`) and its
arguments that returns the `Change` it makes, or raises a `QueueError`;
`machine.QueueMachine` commits and applies it.
"""

from __future__ import annotations

import dataclasses
from typing import (Any, Dict, Iterable, List, Mapping, Optional, Sequence,
                    Union)

from nicos_scriptserver.queue import validate
from nicos_scriptserver.queue.change import Change
from nicos_scriptserver.queue.errors import (BadPosition, InvalidTransition,
                                             InvalidValue, JobNotFound,
                                             NotEditable)
from nicos_scriptserver.queue.lifecycle import advance, require_waiting
from nicos_scriptserver.queue.model import (REQUEUEABLE, Job, JobKind,
                                            JobSpec, JobState)
from nicos_scriptserver.queue.order import place
from nicos_scriptserver.queue.rights import Caller, check_may_edit
from nicos_scriptserver.queue.versions import check_version, touched
from nicos_scriptserver.queue.view import QueueView

#: Named positions for `move`.
MOVES = ('up', 'down', 'top', 'bottom')
Position = Union[int, str]


def submit(view: QueueView, specs: Union[JobSpec, Sequence[JobSpec]],
           owner: str, now: float, position: Optional[Position] = None
           ) -> Change:
    """Queue one job or a batch (a list of specs, checked: see `JobSpec`).

    The jobs of a batch (a list of two or more) share one ``batch_id``.
    *position* is an index into the waiting list where the first job goes,
    or 'top'/'bottom' (the default). Result: the list of new jobs.
    """
    specs = [specs] if isinstance(specs, JobSpec) else list(specs)
    if not specs:
        raise InvalidValue('nothing to submit: the batch is empty')
    if not isinstance(owner, str) or not owner:
        raise InvalidValue('a job needs an owner (a user name)')
    batch = len(specs) > 1
    first = view.next_id
    at = _insert_index(view, position)
    jobs = [Job(id=first + index, kind=spec.kind, name=spec.name,
                source=spec.source, calls=spec.calls, held=spec.held,
                hold_reason=spec.hold_reason, isolated=spec.isolated,
                owner=owner, changed_by=owner,
                state=JobState.QUEUED, created=now, queued_at=now,
                batch_id=f'batch-{first}' if batch else None,
                batch_index=index if batch else None,
                batch_size=len(specs) if batch else None)
            for index, spec in enumerate(specs)]
    return _insert(view, jobs, at, result=jobs)


def edit(view: QueueView, job_id: int, by: Caller, name: Optional[str] = None,
         source: Optional[str] = None, calls: Optional[list] = None,
         version: Optional[int] = None, kind: Optional[JobKind] = None,
         why: str = '') -> Change:
    """Change a waiting job's name, script or command calls (checked: see
    `app.spec.parse_edits`), as *by*, if it is still at *version* (see
    `check_version`); *kind* AWARE makes a generated job an aware one
    (its script is no longer made of command calls, *why* says why).

    Only its owner or an admin may (`rights.check_may_edit`); the job then
    runs as *by*. A new script or new calls drop the job's estimate, which
    no longer fits. Result: the edited job.
    """
    job = require_waiting(view, job_id, 'edit')
    check_may_edit(job, by)
    check_version(job, version)
    edited = dataclasses.replace(
        _edited(job, f'job {job_id}', name, source, calls, kind),
        changed_by=by.name)
    if edited == job:
        return _updated(job, job)
    if job.held_by_catalog and (edited.source, edited.calls) != \
            (job.source, job.calls):
        # Checked against the catalog as it is now (see app.spec).
        edited = dataclasses.replace(edited, held=False, hold_reason='',
                                     held_by_catalog=False)
    fields = [label for label, field in (('name', 'name'), ('script', 'source'),
                                         ('calls', 'calls'))
              if getattr(edited, field) != getattr(job, field)]
    what = 'edited its ' + ' and '.join(fields) if fields else 'edited it'
    if kind is not None and kind is not job.kind:
        what += f', which made it an {kind.value} job' + (why and f': {why}')
    return _updated(job, touched(edited, by.name, what))


def set_estimate(view: QueueView, job_id: int, estimate: Optional[dict],
                 for_source: Optional[str] = None,
                 hold_reason: Optional[str] = None,
                 passed: bool = False) -> Change:
    """Attach a dry run's report (opaque JSON-ready dict) to a waiting or
    the current job. Result: the job. The report is written to disk with
    the job's next stored change, or at once if it holds the job back or
    releases it.

    *for_source* is the script the dry run checked: if the job has been
    edited since, the report is refused. *hold_reason* also holds a
    waiting job back (as a failed dry run does by policy); *passed* (the
    dry run found nothing wrong) releases a job that an earlier dry run
    held back, of a script since edited. A job held back by whoever
    submitted it stays held back.
    """
    job = view.current()
    if job is None or job.id != job_id:
        job = require_waiting(view, job_id, 'estimate')
    if for_source is not None and job.source != for_source:
        raise NotEditable(f'job {job_id} was edited after its dry run '
                          'started; that dry run no longer applies')
    if estimate is not None and not isinstance(estimate, Mapping):
        raise InvalidValue(f'job {job_id}: an estimate must be a dict')
    values = {'estimate': validate.normalized(
        estimate, f'the estimate of job {job_id}')}
    holds = bool(hold_reason) and job.state.waiting
    releases = passed and not holds and job.held_by_dry_run
    if holds:
        values.update(held=True, held_by_dry_run=True,
                      hold_reason=validate.text(hold_reason, 'hold reason',
                                                f'job {job_id}'))
    elif releases:
        values.update(held=False, held_by_dry_run=False, hold_reason='')
    # A report alone is not worth a disk write of its own (a lost one is
    # simply redone after a restart); holding a job back or releasing it is.
    return _updated(job, dataclasses.replace(job, **values),
                    durable=holds or releases)


def mark_unestimated(view: QueueView, estimate: dict) -> Change:
    """Give every waiting job that has no estimate yet *estimate* (a dry
    run's "pending" report), in memory. Result: their ids."""
    estimate = validate.normalized(estimate, 'the estimate')
    change = Change(result=[], durable=False)
    for job_id in view.order:
        job = view.jobs[job_id]
        if job.estimate is None:
            change.put_job(dataclasses.replace(job, estimate=estimate))
            change.result.append(job_id)
    return change


def confirm(view: QueueView, job_id: int, by: str = '',
            version: Optional[int] = None) -> Change:
    """Let a job that was held back run when its turn comes (*by*,
    *version*: see `check_version`)."""
    job = require_waiting(view, job_id, 'confirm')
    check_version(job, version)
    if not job.held:
        return _updated(job, job)
    return _updated(job, touched(job, by, 'confirmed it', held=False,
                                 held_by_dry_run=False, held_by_catalog=False,
                                 hold_reason=''))


def skip(view: QueueView, job_id: int, by: str = '',
         version: Optional[int] = None) -> Change:
    """Leave a waiting job in its place but pass over it."""
    job = require_waiting(view, job_id, 'skip')
    check_version(job, version)
    state, _ = advance(job, 'skip')
    if state is job.state:
        return _updated(job, job)
    return _updated(job, touched(job, by, 'skipped it', state=state))


def unskip(view: QueueView, job_id: int, by: str = '',
           version: Optional[int] = None) -> Change:
    """Let a skipped job run again when its turn comes."""
    job = require_waiting(view, job_id, 'unskip')
    check_version(job, version)
    state, _ = advance(job, 'unskip')
    if state is job.state:
        return _updated(job, job)
    return _updated(job, touched(job, by, 'un-skipped it', state=state))


def move(view: QueueView, job_id: int, to: Position, by: str = '',
         version: Optional[int] = None) -> Change:
    """Move a waiting job to index *to* of the waiting list, or 'up',
    'down', 'top', 'bottom' (*by*, *version*: see `check_version`)."""
    job = require_waiting(view, job_id, 'move')
    check_version(job, version)
    order = view.order
    here = order.index(job_id)
    there = _move_target(job_id, here, len(order) - 1, to)
    change = Change()
    if there != here:
        moved = order[:here] + order[here + 1:]
        moved.insert(there, job_id)
        change.set_order(moved, place(moved, view.keys, there, 1),
                         moved=touched(job, by, f'moved it to position {there}'))
    return change


def rearrange(view: QueueView, ids: Iterable[int]) -> Change:
    """Put the listed waiting jobs in the listed order.

    They take the places they occupy now, in the new order; jobs not
    listed stay where they are. So a complete list of the waiting ids
    (what NICOS's ``rearrange`` sends) sets the whole order, and a list of
    some of them (say, a client showing only runnable jobs) reorders those
    among themselves.
    """
    ids = list(ids)
    for job_id in ids:
        require_waiting(view, job_id, 'move')
    if len(set(ids)) != len(ids):
        twice = next(i for i in ids if ids.count(i) > 1)
        raise BadPosition(f'job {twice} is listed twice in the new order')
    index = {job_id: i for i, job_id in enumerate(view.order)}
    slots = sorted(index[job_id] for job_id in ids)
    order = list(view.order)
    keys = {}
    # Slots keep their keys, so only the jobs that moved are written.
    for slot, job_id in zip(slots, ids):
        if order[slot] != job_id:
            keys[job_id] = view.keys[order[slot]]
            order[slot] = job_id
    change = Change()
    if keys:
        change.set_order(order, keys)
    return change


def repeat(view: QueueView, job_id: int, times: int, now: float,
           owner: Optional[str] = None, version: Optional[int] = None
           ) -> Change:
    """Queue *times* copies of a waiting or the current job right after it
    (for the current job: at the top), as submissions of *owner* (see
    `_copy_rights`); a waiting one only if it is at *version* (see
    `check_version`). Result: the copies."""
    job = _any_job(view, job_id)
    if job.state.finished:
        advice = ('re-queue it instead' if job.state in REQUEUEABLE
                  else 'submit it again instead')
        raise NotEditable(f'job {job_id} is {job.state.value}: only waiting '
                          f'jobs and the current job can be repeated; '
                          f'{advice}')
    times = validate.repeat_count(times, f'job {job_id}')
    if job.state.waiting:
        check_version(job, version)
    rights = _copy_rights(job, owner)
    at = 0 if job.state.current else view.order.index(job_id) + 1
    copies = [Job(id=view.next_id + n, kind=job.kind, name=job.name,
                  source=job.source, calls=job.calls, **rights,
                  state=JobState.QUEUED, created=job.created, queued_at=now,
                  estimate=job.estimate, held=job.held,
                  held_by_dry_run=job.held_by_dry_run,
                  held_by_catalog=job.held_by_catalog,
                  hold_reason=job.hold_reason, isolated=job.isolated)
              for n in range(times)]
    return _insert(view, copies, at, result=copies)


def remove(view: QueueView, job_id: int, version: Optional[int] = None
           ) -> Change:
    """Take a waiting job out of the queue (it is not kept), if it is at
    *version* (see `check_version`)."""
    check_version(require_waiting(view, job_id, 'remove'), version)
    change = Change(deleted=[job_id])
    change.set_order([i for i in view.order if i != job_id], {},
                     removed=[job_id])
    return change


def clear(view: QueueView) -> Change:
    """Remove every waiting job. Result: their ids."""
    change = Change(result=list(view.order))
    if view.order:
        change.deleted = list(view.order)
        change.set_order([], {}, removed=view.order)
    return change


def requeue(view: QueueView, job_id: int, now: float,
            position: Optional[Position] = None, owner: Optional[str] = None,
            name: Optional[str] = None, source: Optional[str] = None,
            calls: Optional[list] = None) -> Change:
    """Queue an aborted, failed or interrupted job again, as a new job.

    The new job runs from the beginning and points back at the old one
    (``requeued_from``), which stays in the history unchanged. *name*,
    *source* and *calls* change it as an edit does; the new job is
    *owner*'s (see `_copy_rights`). It has no estimate: it is dry-run
    again like a new submission (the instrument, the command files and
    the account it runs as may have changed since, and a failed dry run
    must hold it back again). Result: the new job.
    """
    job = _any_job(view, job_id)
    if job.state not in REQUEUEABLE:
        raise InvalidTransition(
            f'job {job_id} is {job.state.value}: only aborted, failed or '
            'interrupted jobs can be re-queued')
    rights = _copy_rights(job, owner)
    at = _insert_index(view, position)
    fresh = Job(id=view.next_id, kind=job.kind, name=job.name,
                source=job.source, calls=job.calls, **rights,
                state=JobState.QUEUED, created=job.created, queued_at=now,
                requeued_from=job_id, isolated=job.isolated)
    if (name, source, calls) != (None, None, None):
        fresh = _edited(fresh, f're-queued job {job_id}', name, source, calls)
    return _insert(view, [fresh], at, result=fresh)


# -- helpers -------------------------------------------------------------

def _any_job(view: QueueView, job_id: int) -> Job:
    job = view.find(job_id)
    if job is None:
        raise JobNotFound(f'no job {job_id} in the queue or its history')
    return job


def _updated(job: Job, new: Job, durable: bool = True) -> Change:
    """*job* becomes *new*: announced if it changed. Result: *new*."""
    change = Change(result=new, durable=durable)
    if new != job:
        change.put_job(new)
    return change


def _insert_index(view: QueueView, position: Optional[Position]) -> int:
    size = len(view.order)
    if position is None or position == 'bottom':
        return size
    if position == 'top':
        return 0
    if isinstance(position, bool) or not isinstance(position, int) or \
            not 0 <= position <= size:
        raise BadPosition(f'cannot insert at position {position!r}: give '
                          f"'top', 'bottom' or an index from 0 to {size}")
    return position


def _move_target(job_id: int, here: int, last: int, to: Position) -> int:
    if to == 'up' and here == 0:
        raise BadPosition(f'job {job_id} is already at the top of the queue')
    if to == 'down' and here == last:
        raise BadPosition(f'job {job_id} is already at the bottom of the '
                          'queue')
    named = {'up': here - 1, 'down': here + 1, 'top': 0, 'bottom': last}
    if isinstance(to, str) and to in named:
        return named[to]
    if isinstance(to, bool) or not isinstance(to, int):
        raise BadPosition(f'cannot move job {job_id} to {to!r}: give an '
                          f'index or one of {", ".join(MOVES)}')
    if not 0 <= to <= last:
        raise BadPosition(
            f'cannot move job {job_id} to position {to}: the queue has '
            f'{last + 1} waiting jobs (positions 0 to {last})')
    return to


def _insert(view: QueueView, jobs: List[Job], at: int, result: Any
            ) -> Change:
    ids = [job.id for job in jobs]
    order = view.order[:at] + ids + view.order[at:]
    change = Change(result=result, next_id=ids[-1] + 1)
    for job in jobs:
        change.put_job(job)
    change.set_order(order, place(order, view.keys, at, len(ids)))
    return change


def _copy_rights(job: Job, owner: Optional[str]) -> Dict[str, str]:
    """Whose a copy of *job* is and whom it runs as: *owner*'s, who asked
    for it (their submission of a copy, never running with the original's
    rights); without one, the original's owner and last changer (a copy
    the queue makes by itself, with no more rights than the original)."""
    if owner is None:
        return {'owner': job.owner, 'changed_by': job.changed_by}
    if not isinstance(owner, str) or not owner:
        raise InvalidValue('a job needs an owner (a user name)')
    return {'owner': owner, 'changed_by': owner}


def _edited(job: Job, label: str, name: Optional[str] = None,
            source: Optional[str] = None, calls: Optional[list] = None,
            kind: Optional[JobKind] = None) -> Job:
    """*job* with the given (not None) fields changed; *kind* AWARE turns a
    generated job into an aware one, without calls."""
    values: Dict[str, Any] = {
        key: value for key, value in (('name', name), ('source', source),
                                      ('calls', calls))
        if value is not None}
    if not values:
        raise InvalidValue(f'nothing to change in {label}: give a name, '
                           'a source or calls')
    if kind is not None and kind is not job.kind:
        if (job.kind, kind) != (JobKind.GENERATED, JobKind.AWARE) or \
                calls is not None or source is None:
            raise InvalidValue(f'{label}: only a new script can make a '
                               'generated job an aware one')
        values.update(kind=kind, calls=None)
    elif calls is not None and job.kind is not JobKind.GENERATED:
        raise InvalidValue(f'{label}: only generated jobs have command '
                           f'calls, this one is {job.kind.value}')
    if values.get('source', job.source) != job.source or \
            values.get('calls', job.calls) != job.calls or 'kind' in values:
        values['estimate'] = None
    return dataclasses.replace(job, **values)
