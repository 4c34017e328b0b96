"""The queue listing as clients get it: ``ss_queue`` and ``ss_changes``.

Waiting jobs are rows of `LISTING_COLUMNS` (plain values: a listing of
5,000 jobs pickles in 1 ms instead of 8); the current job comes in full, as
`ScriptServer.job_view` shows it. See `queue.listing` for what a listing
of changes holds.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Dict, List, Tuple

from nicos_scriptserver.estimates import summary_values
from nicos_scriptserver.queue.listing import Listing
from nicos_scriptserver.queue.model import Job
from nicos_scriptserver.wire.protocol import LISTING_COLUMNS

#: Rows kept for jobs no longer waiting, beyond those waiting, before the
#: kept rows are cut down to the waiting ones (see `Listings`).
SPARE_ROWS = 1000


def row(job: Job) -> tuple:
    """A waiting job as a row of `LISTING_COLUMNS`."""
    return (job.id, job.kind.value, job.name, job.owner, job.state.value,
            job.batch_id, job.batch_index, job.batch_size, job.queued_at,
            *summary_values(job.estimate), job.held, job.hold_reason,
            job.requeued_from, job.version)


class Listings:
    """Makes the replies to ``ss_queue`` and ``ss_changes``.

    Making the rows was most of the time a full listing took (2.3 of
    3.6 ms for 5,000 waiting jobs), though between two listings few jobs
    change. A `Job` never changes in place, so the row made for a job
    object is kept with it and reused as long as the queue lists that
    same object; a changed job is a new object and gets a new row. The
    rows are tuples: the replies share them. Rows of jobs that left are
    dropped at the next full listing, or once more than `SPARE_ROWS` of
    them pile up.
    """

    def __init__(self) -> None:
        # job id -> (the job object its row was made from, the row)
        self._rows: Dict[int, Tuple[Job, tuple]] = {}
        # Handler threads list concurrently; the kept rows are read and
        # replaced under this lock.
        self._lock = threading.Lock()

    def reply(self, listing: Listing,
              job_view: Callable[[Job], Dict[str, Any]]) -> Dict[str, Any]:
        """The reply for *listing*: the queue's state, ``seq``, ``full``,
        ``current`` (by *job_view*), ``columns``, ``waiting`` (rows),
        ``order`` and ``removed``."""
        current = listing.current
        return dict(listing.queue.to_dict(), seq=listing.seq,
                    full=listing.full,
                    current=job_view(current) if current else None,
                    columns=LISTING_COLUMNS,
                    waiting=self._rows_of(listing),
                    order=listing.order, removed=listing.removed)

    def _rows_of(self, listing: Listing) -> List[tuple]:
        with self._lock:
            kept = self._rows
            listed = {}
            for job in listing.waiting:
                pair = kept.get(job.id)
                if pair is None or pair[0] is not job:
                    pair = (job, row(job))
                listed[job.id] = pair
            if listing.full:
                self._rows = listed
            else:
                kept.update(listed)
                if len(kept) > len(listing.order) + SPARE_ROWS:
                    self._rows = {job_id: kept[job_id]
                                  for job_id in listing.order
                                  if job_id in kept}
        return [pair[1] for pair in listed.values()]
