"""Versions of waiting jobs: a change made to the job a client saw.

Every waiting job carries a version, one more with each change a person
makes to it (edit, move, skip, unskip, confirm: `touched`), and who made
the newest and what it was. A client that says which version it saw gets
its change refused (`Conflict`) if someone changed the job since
(`check_version`); the server's own changes (dry-run reports, holds) leave
the version alone.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional

from nicos_scriptserver.queue.errors import Conflict, InvalidValue
from nicos_scriptserver.queue.model import Job

#: What every `Conflict` says, for clients to tell it from other refusals.
CHANGED_SINCE = 'was changed after you saw it'


def check_version(job: Job, version: Optional[int]) -> None:
    """Refuse (`Conflict`) a change meant for *job* at *version*, the
    version its client saw, if someone changed it since. None: the client
    does not say (stock clients), the change applies to the job as it is.
    """
    if version is None:
        return
    if isinstance(version, bool) or not isinstance(version, int):
        raise InvalidValue(f'job {job.id}: a version is a whole number, not '
                           f'{version!r}')
    if version != job.version:
        change = job.last_change or {}
        who = change.get('by') or 'someone'
        what = change.get('what') or 'changed it'
        raise Conflict(f'job {job.id} {CHANGED_SINCE} (version '
                       f'{version}): {who} {what} (now version '
                       f'{job.version}); nothing was changed, look at the '
                       'job again')


def touched(job: Job, by: str, what: str, **values: Any) -> Job:
    """*job* with *values* changed by *by*: its next version."""
    return dataclasses.replace(job, version=job.version + 1,
                               last_change={'by': by, 'what': what}, **values)
