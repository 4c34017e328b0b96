"""A client's copy of the queue listing, kept up to date by numbers.

Every ``ss_queue`` reply and event, ``ss_changes`` reply and ``ss_job``
event carries ``seq``, the number of the queue's last change (see
docs/PROTOCOL.md, "Missed events"). A `QueueView` remembers the number of
the listing it holds; after a broken connection, or when an event's
number shows that changes were missed (`QueueView.missed`), the client
asks ``ss_changes(view.seq)`` and `apply`s the reply: its listing is then
the server's, without fetching every job again.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

#: The fields of a listing reply that are the queue's own state.
_STATE = ('held', 'hold_reason', 'hold_kind', 'protected', 'on_failure')


class QueueView:
    """The queue listing as of change `seq` (None: nothing yet)."""

    def __init__(self) -> None:
        self.seq: Optional[int] = None
        #: The highest number seen, in a reply or an event.
        self.seen: Optional[int] = None
        self.current: Optional[dict] = None
        self.state: Dict[str, Any] = {}
        self.columns: List[str] = []
        self._rows: Dict[int, list] = {}
        self._order: List[int] = []

    def apply(self, reply: Dict[str, Any]) -> None:
        """Take an ``ss_queue`` or ``ss_changes`` reply (rows, as sent)."""
        self.columns = list(reply['columns'])
        rows = {row[0]: list(row) for row in reply['waiting']}
        if reply.get('full', True):
            self._rows = rows
        else:
            for job_id in reply['removed']:
                self._rows.pop(job_id, None)
            self._rows.update(rows)
        self._order = list(reply.get('order', rows))
        # A job can leave without being named (it was current, and the
        # current job is always sent in full).
        self._rows = {job_id: self._rows[job_id] for job_id in self._order}
        self.current = reply['current']
        self.state = {key: reply[key] for key in _STATE if key in reply}
        self.seq = reply['seq']
        self.note(self.seq)

    def note(self, seq: Optional[int]) -> None:
        """An event with number *seq* (None: an old server's) was handled."""
        if seq is not None and (self.seen is None or seq > self.seen):
            self.seen = seq

    def missed(self, seq: Optional[int]) -> bool:
        """Whether an event numbered *seq* shows changes that were not seen:
        it is more than one past the highest number seen. (All events of
        one change have its number; progress reports the last one.)"""
        return seq is not None and self.seen is not None and seq > self.seen + 1

    def listing(self) -> Dict[str, Any]:
        """The listing as an ``ss_queue`` reply (rows, as sent)."""
        return dict(self.state, seq=self.seq, current=self.current,
                    columns=list(self.columns),
                    waiting=[self._rows[job_id] for job_id in self._order])

    def waiting(self) -> List[dict]:
        """The waiting jobs in order, as dicts of the listing's columns."""
        return [dict(zip(self.columns, self._rows[job_id]))
                for job_id in self._order]
