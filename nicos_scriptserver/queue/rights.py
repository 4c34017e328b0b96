"""Who may change a job, and whom a job runs as.

A job runs as whoever last changed what it runs (``changed_by``), at that
account's user level when it starts: never with more rights. So changing
someone else's job takes an admin account, and copies are the asker's own
submissions. Callers and levels are plain data: the levels are NICOS's
numbers, but the core does not import NICOS.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional

from nicos_scriptserver.queue.errors import NotPermitted, UnknownAccount
from nicos_scriptserver.queue.model import Job

#: NICOS's admin user level (``nicos.core.ADMIN``).
ADMIN = 20


@dataclass(frozen=True)
class Caller:
    """An account asking for an operation: its login name and user level."""

    name: str
    level: int

    @classmethod
    def of(cls, user: Any) -> 'Caller':
        """The caller a NICOS user is (anything with a name and a level)."""
        return cls(user.name, user.level)


def check_may_edit(job: Job, caller: Caller) -> None:
    """Raise `NotPermitted` unless *caller* may change what *job* runs.

    Owners edit their own jobs; anyone else's edit would make the job run
    with the editor's rights, which only an admin may do.
    """
    if caller.name != job.owner and caller.level < ADMIN:
        raise NotPermitted(f'job {job.id} belongs to {job.owner}: only '
                           f'{job.owner} or an admin account may edit it')


def runs_as(job: Job, level_of: Callable[[str], Optional[int]]) -> Caller:
    """The account *job* runs as: its last changer, at the level
    *level_of* gives that account now (None: there is no such account).

    Without the account the job does not run at all: any level given to
    it would be made up.
    """
    level = level_of(job.changed_by)
    if level is None:
        raise UnknownAccount(
            f'job {job.id} was last changed by {job.changed_by!r}, but there '
            f'is no account {job.changed_by!r} any more; it does not run with '
            'a guessed user level: re-queue it to run it as yourself')
    return Caller(job.changed_by, level)
