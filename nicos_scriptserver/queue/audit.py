"""The audit trail: who changed the queue, when, from where, and why.

Every change the queue writes to disk is recorded with it, in the same
transaction (`store.QueueStore.commit`): the time, the account and the
client that asked for it (the `Actor` of the request being handled, set by
the daemon around each command with `acting`; none: the server itself, as
when a job starts or a dry run holds one back), the operation, the jobs it
changed and a reason in words.
"""

from __future__ import annotations

import contextlib
import contextvars
from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Mapping, Optional

from nicos_scriptserver.queue.change import Change
from nicos_scriptserver.queue.model import Job

#: Who the server's own changes are recorded as.
SERVER = 'server'


@dataclass(frozen=True)
class Actor:
    """Who asks for the changes made now: an account, the client it uses
    (e.g. ``ss_move from 127.0.0.1, connection 3``) and, if they gave one,
    their reason."""

    who: str
    client: str = ''
    why: str = ''


_actor: contextvars.ContextVar[Optional[Actor]] = contextvars.ContextVar(
    'queue_actor', default=None)


@contextlib.contextmanager
def acting(actor: Actor) -> Iterator[None]:
    """Record the queue changes made in this block (in this thread) as
    *actor*'s."""
    token = _actor.set(actor)
    try:
        yield
    finally:
        _actor.reset(token)


def current_actor() -> Optional[Actor]:
    """The actor of the changes made now, None for the server's own."""
    return _actor.get()


def entry(change: Change, before: Mapping[int, Job], action: str,
          now: float) -> Dict[str, Any]:
    """The audit entry of *change*, made by *action* at *now*; *before*
    holds the jobs as they were (the queue's state before the change)."""
    actor = current_actor() or Actor(SERVER)
    jobs = sorted(set(change.put) | set(change.deleted) |
                  ({change.moved.id} if change.moved else set()))
    return {'at': now, 'who': actor.who, 'client': actor.client,
            'action': action, 'jobs': jobs,
            'why': actor.why or _why(change, before)}


def _why(change: Change, before: Mapping[int, Job]) -> str:
    """What the change did, in words, where the jobs say it."""
    notes: List[str] = []
    if change.queue is not None:
        notes.append(f'queue held: {change.queue.hold_reason}'
                     if change.queue.held else 'queue released')
    for job in [*change.put.values(), *filter(None, [change.moved])]:
        old = before.get(job.id)
        if old is not None and job.version != old.version and job.last_change:
            notes.append(f"job {job.id}: {job.last_change['what']}")
        elif job.held and not (old and old.held):
            notes.append(f'job {job.id} held back: {job.hold_reason}')
        elif old is not None and job.state is not old.state:
            error = (job.error or {}).get('message')
            notes.append(f'job {job.id} {job.state.value}' +
                         (f': {error}' if error else ''))
    return '; '.join(notes)
