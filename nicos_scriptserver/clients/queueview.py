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

import operator
from typing import (Any, Callable, Dict, Iterable, List, Optional, Sequence,
                    Tuple)

from nicos_scriptserver.wire.protocol import ESTIMATE_PREFIX

#: The fields of a listing reply that are the queue's own state.
_STATE = ('held', 'hold_reason', 'hold_kind', 'protected', 'on_failure')


def job_reader(columns: Sequence[str]
               ) -> Callable[[Sequence[Any]], Dict[str, Any]]:
    """The function that makes a waiting job's dict of a listing row with
    *columns*.

    The ``estimate_*`` columns become one ``estimate`` dict (``state``,
    ``seconds``, ``problems``, ``problem``; None while the job has no
    dry-run report), as ``ss_job`` shows the report.
    """
    columns = tuple(columns)
    state, seconds, problems, problem = (
        columns.index(ESTIMATE_PREFIX + key)
        for key in ('state', 'seconds', 'problems', 'problem'))
    kept = [i for i, name in enumerate(columns)
            if not name.startswith(ESTIMATE_PREFIX)]
    plain, values = [columns[i] for i in kept], operator.itemgetter(*kept)

    def job_of(row: Sequence[Any]) -> Dict[str, Any]:
        job = dict(zip(plain, values(row)))
        job['estimate'] = None if row[state] is None else {
            'state': row[state], 'seconds': row[seconds],
            'problems': row[problems], 'problem': row[problem]}
        return job
    return job_of


def jobs_of_rows(columns: Sequence[str],
                 rows: Iterable[Sequence[Any]]) -> List[Dict[str, Any]]:
    """Waiting jobs as dicts (see `job_reader`), from the rows of a listing
    with *columns*."""
    return list(map(job_reader(columns), rows))


class QueueView:
    """The queue listing as of change `seq` (None: nothing yet)."""

    def __init__(self) -> None:
        self.seq: Optional[int] = None
        #: The highest number seen, in a reply or an event.
        self.seen: Optional[int] = None
        self.current: Optional[dict] = None
        self.state: Dict[str, Any] = {}
        self.columns: List[str] = []
        self._rows: Dict[int, tuple] = {}
        self._order: List[int] = []
        self._job_of: Optional[Callable[[tuple], Dict[str, Any]]] = None
        # job id -> (the row, the dict `waiting` made of it): a change
        # brings few new rows, and making 5,000 dicts took 6 ms.
        self._jobs: Dict[int, Tuple[tuple, Dict[str, Any]]] = {}

    def apply(self, reply: Dict[str, Any]) -> None:
        """Take an ``ss_queue`` or ``ss_changes`` reply (rows, as sent)."""
        if list(reply['columns']) != self.columns:
            self.columns = list(reply['columns'])
            self._job_of = job_reader(self.columns)
            self._jobs = {}
        rows = {row[0]: tuple(row) for row in reply['waiting']}
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
        """The waiting jobs in order, as dicts (see `job_reader`); the
        caller may change them, not the ``estimate`` dicts in them."""
        made = {}
        for job_id in self._order:
            row = self._rows[job_id]
            pair = self._jobs.get(job_id)
            if pair is None or pair[0] is not row:
                pair = (row, self._job_of(row))
            made[job_id] = pair
        self._jobs = made
        return [dict(pair[1]) for pair in made.values()]
