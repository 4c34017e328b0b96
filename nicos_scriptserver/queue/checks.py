"""What the server's own checks of waiting jobs do to them.

After a command file changed, the application checks every waiting job
against the new catalog (`app.revalidation`) and hands the verdicts to
`catalog_checked`: a generated job whose calls no longer fit is held back
with the reason, one held back that way and fitting again is released,
and a job calling a changed command loses its estimate (a fresh dry run
follows). These are the server's changes, not a person's: versions stay.
"""

from __future__ import annotations

import dataclasses
from typing import Iterable, Optional, Tuple

from nicos_scriptserver.queue.change import Change
from nicos_scriptserver.queue.model import Job
from nicos_scriptserver.queue.view import QueueView

#: A job as it was checked, what no longer fits (None: it all fits), and
#: whether it calls a command that changed.
Verdict = Tuple[Job, Optional[str], bool]

#: The start of the hold reason of a job held back by the catalog.
CATALOG_HOLD = 'commands changed: '


def catalog_checked(view: QueueView, verdicts: Iterable[Verdict]) -> Change:
    """Apply the verdicts on jobs that are still waiting and still run
    what was checked (an edit meanwhile was checked by itself). A job a
    person held back stays as it is. Result: the changed jobs."""
    change = Change(result=[])
    for checked, problem, redo in verdicts:
        job = view.jobs.get(checked.id)
        if job is None or not job.state.waiting or \
                job.calls is not checked.calls or \
                job.source is not checked.source:
            continue
        new = _checked(job, problem, redo)
        if new != job:
            change.put_job(new)
            change.result.append(new)
    return change


def _checked(job: Job, problem: Optional[str], redo: bool) -> Job:
    if problem is not None:
        if job.held and not (job.held_by_dry_run or job.held_by_catalog):
            return job   # a person's hold says more than ours
        return dataclasses.replace(job, held=True, held_by_catalog=True,
                                   held_by_dry_run=False,
                                   hold_reason=CATALOG_HOLD + problem)
    if job.held_by_catalog:
        # Fits again: a fresh dry run decides (and may hold it back).
        return dataclasses.replace(job, held=False, held_by_catalog=False,
                                   hold_reason='', estimate=None)
    return dataclasses.replace(job, estimate=None) if redo else job
