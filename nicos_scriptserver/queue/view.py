"""What the queue's operations read of its state, and nothing more.

Every operation (`waiting`, `current`, `holds`) is a function of a
`QueueView` and its arguments that builds a `Change` without touching the
state; `machine.QueueMachine` is the view, and the only one that applies
changes (commit, then apply).
"""

from __future__ import annotations

from typing import List, Mapping, Optional, Protocol

from nicos_scriptserver.queue.model import Job, QueueState


class QueueView(Protocol):
    """The queue as its operations see it (read only)."""

    #: The jobs in memory: waiting, current, the newest finished.
    jobs: Mapping[int, Job]
    #: The waiting list: ids in the order they will run (a change sets a
    #: new list).
    order: List[int]
    #: The order key of each waiting job (see `order.place`).
    keys: Mapping[int, int]
    #: The queue's hold and failure policy.
    queue: QueueState
    #: The id the next new job gets.
    next_id: int

    @property
    def history_end(self) -> int:
        """The position in the history the next finished job takes."""

    def current(self) -> Optional[Job]:
        """The running or paused job, if any."""

    def find(self, job_id: int) -> Optional[Job]:
        """Any job, also a finished one no longer in memory; None if there
        is no such job."""
