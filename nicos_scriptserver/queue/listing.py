"""What a client needs to show the queue: all of it, or what changed.

Every change of the queue written to disk has a sequence number, that of
its audit entry (see `audit`), and its events carry it. A client that
missed events (its connection broke, or it saw a number jump) asks for
the changes since the last number it saw: the jobs changed since that are
still waiting or current, the ids of those that left, and the order and
state in full. That is enough to bring its listing up to date. Beyond
`KEEP_CHANGES` entries back, or from a number the queue never gave (a
queue file restored from a backup), it gets the full listing instead,
flagged as such.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

from nicos_scriptserver.queue.model import Job, QueueState

#: How many changes back a client may ask for; older: the full listing.
KEEP_CHANGES = 1000


@dataclass(frozen=True)
class Listing:
    """The queue as of change *seq*: *full* (every waiting job in
    *waiting*) or only what changed since the number asked for (*waiting*:
    the changed jobs still waiting; *removed*: the changed ones no longer
    waiting nor current). *order* and *queue* are always complete, and so
    is *current*, whose progress changes without a number of its own."""

    seq: int
    full: bool
    current: Optional[Job]
    waiting: List[Job]
    order: List[int]
    removed: List[int]
    queue: QueueState


def listing(seq: int, since: Optional[int], changed: Optional[List[int]],
            current: Optional[Job], waiting: List[Job],
            queue: QueueState) -> Listing:
    """The listing of a queue at *seq* with *current* and *waiting* jobs,
    for a client that saw change *since* (None: it saw nothing), given
    the ids *changed* since then (None: unknown, too far back)."""
    order = [job.id for job in waiting]
    if since is None or changed is None or not 0 <= since <= seq:
        return Listing(seq, True, current, waiting, order, [], queue)
    ids = set(changed)
    present = set(order) | ({current.id} if current else set())
    return Listing(seq, False, current,
                   [job for job in waiting if job.id in ids], order,
                   sorted(ids - present), queue)
