"""Waiting jobs checked again when command files change (hot reload).

A generated job was checked against the catalog when it was submitted or
edited; after a command file changes, its calls may no longer fit (a
command removed or renamed, an argument renamed, new limits). `revalidate`
checks every waiting job against the catalog as it is now, away from the
queue's lock, and hands the verdicts to the queue a few at a time, so that
a running job, whose progress reports take the same lock, is not held up.
"""

from __future__ import annotations

import re
import time
from typing import Collection, List, Optional

from nicos_scriptserver.catalog import CatalogChanges, ValidationError
from nicos_scriptserver.catalog.validate import CommandLookup, validate_calls
from nicos_scriptserver.queue import Job, JobKind, JobQueue
from nicos_scriptserver.queue.checks import Verdict

#: Verdicts per queue write: small enough that one write holds the queue's
#: lock for a few milliseconds only (bench/bench_revalidation.py).
CHUNK = 25


def changed_commands(changes: CatalogChanges, catalog: CommandLookup
                     ) -> List[str]:
    """The commands *changes* may have changed the behaviour of: those
    added, changed or removed as clients see them, and every command of
    *catalog* in a file that changed (an edit of a function's body changes
    no entry, but what a job does)."""
    files = set(changes.changed_files) | set(changes.removed_files)
    names = set(changes.added) | set(changes.changed) | set(changes.removed)
    names.update(name for name in catalog
                 if (catalog.get(name) or {}).get('path') in files)
    return sorted(names)


def revalidate(queue: JobQueue, catalog: CommandLookup,
               changed: Collection[str], chunk: int = CHUNK) -> List[Job]:
    """Check every waiting job against *catalog*, where the commands
    *changed* changed: returns the jobs whose hold or estimate this
    changed, as they are now (see `checks.catalog_checked`)."""
    calls_changed = _caller_of(changed)
    jobs = queue.waiting()
    touched: List[Job] = []
    for start in range(0, len(jobs), chunk):
        verdicts = [verdict for verdict in (
            _verdict(job, catalog, calls_changed)
            for job in jobs[start:start + chunk]) if verdict is not None]
        if verdicts:
            touched += queue.catalog_checked(verdicts)
        # Let the other threads (a running job reporting its progress)
        # have the interpreter and the queue's lock before the next part.
        time.sleep(0)
    return touched


def _verdict(job: Job, catalog: CommandLookup,
             calls_changed: Optional[re.Pattern]) -> Optional[Verdict]:
    """What is to be done with *job*, or None for nothing."""
    if job.kind is JobKind.GENERATED:
        try:
            validate_calls(catalog, job.calls or [])
        except ValidationError as err:
            problem = err.problems[0]
            more = len(err.problems) - 1
            return job, problem + (f' (and {more} more)' if more else ''), False
        redo = calls_changed is not None and any(
            calls_changed.match(call['command'] + '(') for call in job.calls)
    elif job.kind is JobKind.AWARE:
        redo = calls_changed is not None and bool(
            calls_changed.search(job.source))
    else:
        return None
    return (job, None, redo) if redo or job.held_by_catalog else None


def _caller_of(names: Collection[str]) -> Optional[re.Pattern]:
    """A pattern that finds a call of one of *names* in a script (a name
    followed by an opening parenthesis, not an attribute's)."""
    if not names:
        return None
    alternatives = '|'.join(re.escape(name) for name in sorted(names))
    return re.compile(rf'(?<![\w.])(?:{alternatives})\s*\(')
