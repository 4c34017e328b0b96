"""What one queue operation changes, and the events it announces.

The state machine builds a `Change` without touching its own state, hands
it to the store to commit, and only then applies it to memory. So when the
commit fails, the queue in memory is still exactly what is on disk.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Optional, Tuple

from nicos_scriptserver.queue.model import Job, QueueState

#: An event for clients: ``(name, payload)`` with a JSON-ready payload.
#:
#: - ``("job_changed", job.to_dict())``: a job was added or changed.
#: - ``("queue_changed", {"order": [ids], "removed": [ids]})``: the waiting
#:   list changed (jobs added, moved, started or removed); one per
#:   operation, however many jobs it moved. A move also gives the moved
#:   job's new version: ``"versions": [[id, version]]`` (the job itself is
#:   not announced again: one event per move).
#: - ``("queue_state", QueueState.to_dict())``: held/released, policy.
Event = Tuple[str, Dict[str, Any]]
#: The names of the events, for their listeners.
JOB_CHANGED, QUEUE_CHANGED, QUEUE_STATE = ('job_changed', 'queue_changed',
                                           'queue_state')


@dataclass
class Change:
    """The outcome of one operation: its result, what to write, events.

    ``put`` holds the new version of every added or changed job; ``moved``
    the job a move gave its next version (only that, its position and who
    moved it change: the store updates them in place); ``keys``
    the new order key of waiting jobs (see `order.place`); ``order`` the
    new waiting list if it changed; ``history`` the position in the
    history of each job that finished; ``durable`` is False for changes
    not worth a disk write of their own (the current line).
    """

    result: Any = None
    put: Dict[int, Job] = field(default_factory=dict)
    moved: Optional[Job] = None
    deleted: List[int] = field(default_factory=list)
    order: Optional[List[int]] = None
    keys: Dict[int, int] = field(default_factory=dict)
    history: Dict[int, int] = field(default_factory=dict)
    queue: Optional[QueueState] = None
    next_id: Optional[int] = None
    events: List[Event] = field(default_factory=list)
    durable: bool = True

    @property
    def empty(self) -> bool:
        """Whether nothing changes (the operation was a no-op)."""
        return not (self.put or self.deleted or self.order is not None
                    or self.keys or self.queue or self.next_id)

    def put_job(self, job: Job) -> None:
        """Add or replace *job*, announcing it."""
        self.put[job.id] = job
        self.events.append((JOB_CHANGED, job.to_dict()))

    def set_order(self, order: List[int], keys: Dict[int, int],
                  removed: Iterable[int] = (),
                  moved: Optional[Job] = None) -> None:
        """Make *order* the waiting list, with new *keys* for some jobs;
        *moved*: the job a move changed, announced with the order."""
        self.order = order
        self.keys.update(keys)
        event = {'order': list(order), 'removed': list(removed)}
        if moved is not None:
            self.moved = moved
            event['versions'] = [[moved.id, moved.version]]
        self.events.append((QUEUE_CHANGED, event))

    def set_queue(self, queue: QueueState) -> None:
        """Change the queue's own state."""
        self.queue = queue
        self.events.append((QUEUE_STATE, queue.to_dict()))
