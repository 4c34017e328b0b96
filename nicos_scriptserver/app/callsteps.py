"""What a generated job reports as it runs: each of its calls is a step.

A generated job's script is its calls, one top-level statement each, so
NICOS runs one call per block; as each block starts, the job reports
``step i of n`` with the call as the message (and, in a batch, which job
of the batch it is). Only aware jobs that call ``progress()`` report
anything by themselves.
"""

from __future__ import annotations

from typing import List, Optional

from nicos_scriptserver.catalog import describe_calls
from nicos_scriptserver.catalog.validate import CommandLookup
from nicos_scriptserver.queue import Job, JobKind


def step_messages(job: Job, catalog: Optional[CommandLookup] = None
                  ) -> List[str]:
    """The message of each call of *job* as it starts (with units when
    *catalog* knows them): ``job 2 of 5: step 1 of 3: set_ei(energy=25
    meV)``; empty for jobs that are not generated."""
    if job.kind is not JobKind.GENERATED or not job.calls:
        return []
    lines = describe_calls(job.calls, catalog)
    batch = f'job {job.batch_index + 1} of {job.batch_size}: ' \
        if job.batch_size and job.batch_index is not None else ''
    return [f'{batch}step {number} of {len(lines)}: {line}'
            for number, line in enumerate(lines, 1)]
