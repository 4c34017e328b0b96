"""The daemon's state as the proxy keeps it, from the daemon's events
(sans-I/O: events and replies in, ``getstatus`` and ``getmessages`` out).

NICOS tells its clients every change of what ``getstatus`` returns with an
event (``status``, ``request``, ``processing``, ``blocked``, ``updated``,
``rearranged``, ``eta``, ``mode``, ``watch``) and every log message with
``message``; the mirror applies them in the order they arrive. A ``getstatus``
and a ``getmessages`` reply (a *seed*) give it a starting point.

Replies and events come over two connections, so a reply can overtake
events that happened before it, and events that happened after it can
come before it. A seed is therefore taken together with a *mark*, the
count of events received when its request was sent: the state is the
reply with every event after the mark applied again. Events applied to a
state that already has them leave it as it was once the last of them is
applied, because each sets a value (``status``, ``eta``, ...) or a request
by its id. Log messages are the exception (they add): those the seed
already has are skipped as they come again (they come first, in order).

The mirror only answers (`status`, `messages`) while it is *confirmed*:
two seeds one after another, each with the events after it, agree. After
a reconnect there is one seed only; after a change the events may not
describe exactly (loaded setups: device failures), and after a request
of a proxy client that may change the state (its next ``getstatus`` must
show the change, and the events of it may still be on their way), the
mirror *doubts* until the next seed agrees. ``watch`` values are left out
of the agreement: the daemon evaluates them anew for each ``getstatus``
and sends them as an event every 0.2 s when they changed.
"""

from __future__ import annotations

import collections
import itertools
from dataclasses import dataclass
from typing import Any, Deque, Dict, List, Optional, Set, Tuple

from nicos_scriptserver.proxy.classic import ACTION, SIM_PENDING
from nicos_scriptserver.proxy.protocol import ProtocolError, to_json

#: The events the mirror needs from the daemon.
MIRROR_EVENTS = frozenset({
    'status', 'request', 'processing', 'blocked', 'updated', 'rearranged',
    'done', 'eta', 'mode', 'watch', 'setup', 'device', 'experiment',
    'message'})
#: After these, fields change that no event describes (device failures
#: with setups and devices; the daemon's messages with a new experiment).
STATUS_DOUBTS = frozenset({'setup', 'device'})
#: Messages kept; ``getmessages`` of more (or of all) goes to the daemon.
MESSAGES_KEPT = 1000
#: Events kept for the seeds on their way; beyond, those seeds are void.
LOG_LIMIT = 100000
# The eta of a script that starts (NICOS's `ScriptRequest.resetSimstate`).
_START_ETA = (SIM_PENDING, -1)


@dataclass(frozen=True)
class Mark:
    """When a seed's request was sent: the events received by then, and
    the doubts raised by then (*serial* tells marks apart)."""

    position: int
    epoch: int
    serial: int


class Mirror:
    """The state of one daemon, from its events and seeds."""

    def __init__(self, kept: int = MESSAGES_KEPT, log_limit: int = LOG_LIMIT):
        self.kept = kept
        self.log_limit = log_limit
        #: Changes whenever an answer of `status` or `messages` does.
        self.version = 0
        self._serials = itertools.count()
        self.reset()

    def reset(self) -> None:
        """Forget everything (the event connection was lost)."""
        self._fields: Optional[Dict[str, Any]] = None
        self._requests: Dict[str, dict] = {}
        self._confirmed = False
        #: Where the last seed differed from the state before it.
        self.differences: List[str] = []
        #: Whether the last seed could be compared with the state before
        #: it (else it says nothing about the mirror keeping up).
        self.compared = False
        self._epoch = 0
        self._position = 0
        self._log: Deque[Tuple[int, str, Any]] = collections.deque()
        self._marks: Set[Mark] = set()
        self._messages: Optional[List[list]] = None
        self._complete = False
        self._overlap: Optional[Set[tuple]] = None
        self.version += 1

    # -- what it answers ---------------------------------------------------

    @property
    def confirmed(self) -> bool:
        """Whether the mirror answers (else: ask the daemon)."""
        return self._confirmed and self._messages is not None

    def status(self) -> Optional[dict]:
        """The ``getstatus`` reply, or None while not confirmed."""
        if not self.confirmed:
            return None
        return self._materialize(self._fields, self._requests)

    def messages(self, count: Optional[int]) -> Optional[list]:
        """The last *count* messages (None: all), as ``getmessages``
        answers; None if only the daemon knows them."""
        if not self.confirmed or count is not None and count <= 0:
            return None
        if count is None or count > len(self._messages):
            return list(self._messages) if self._complete else None
        return self._messages[-count:]

    @property
    def wants_status(self) -> bool:
        """Whether a ``getstatus`` seed is needed."""
        return not self._confirmed

    @property
    def wants_messages(self) -> bool:
        """Whether a ``getmessages`` seed is needed."""
        return self._messages is None

    # -- seeds --------------------------------------------------------------

    def doubt(self) -> None:
        """Answer nothing until a seed sent from now on agrees."""
        self._epoch += 1
        if self._confirmed:
            self._confirmed = False
            self.version += 1

    def mark(self) -> Mark:
        """Call just before a seed's request is sent; give the result to
        `seed_status` or `seed_messages` with its reply."""
        mark = Mark(self._position, self._epoch, next(self._serials))
        self._marks.add(mark)
        return mark

    def seed_status(self, mark: Mark, reply: dict) -> bool:
        """A ``getstatus`` reply sent at *mark*; whether it confirmed the
        mirror (`ValueError` if it is not a status)."""
        self.compared = False
        if mark not in self._marks:
            return False   # void: too many events since
        self._marks.discard(mark)
        if not isinstance(reply, dict) or not isinstance(reply.get('requests'), list):
            self._trim_log()
            raise ValueError('the daemon\'s getstatus reply is not a status')
        fields = dict(reply, requests=[])
        requests = {str(request.get('reqid')): request
                    for request in reply['requests'] if isinstance(request, dict)}
        # Replayed, an event may not fit (it was in the reply already, and
        # what it names has gone since): such a seed cannot confirm.
        clean = len(requests) == len(reply['requests'])
        for position, name, data in self._log:
            if position > mark.position:
                clean &= _apply(fields, requests, name, data) \
                    and name not in STATUS_DOUBTS
        self._trim_log()
        self.compared = self._fields is not None and clean \
            and mark.epoch == self._epoch
        if self.compared:
            self.differences = _differences(fields, requests, self._fields,
                                            self._requests)
        else:
            self.differences = ['(no comparable state before)']
        agrees = not self.differences
        if not agrees:
            self._fields, self._requests = fields, requests
        if agrees != self._confirmed:
            self.version += 1
        self._confirmed = agrees
        return agrees

    def seed_messages(self, mark: Mark, reply: list, asked: int) -> None:
        """A ``getmessages(asked)`` reply sent at *mark*."""
        if mark not in self._marks:
            return
        self._marks.discard(mark)
        if not isinstance(reply, list):
            self._trim_log()
            raise ValueError('the daemon\'s getmessages reply is not a list')
        self._messages = [list(message) for message in reply[-self.kept:]]
        self._complete = len(reply) < asked
        self._overlap = {key for key in map(_key, self._messages) if key}
        for position, name, data in self._log:
            if position > mark.position and name == 'message':
                self._add_message(data)
        self._trim_log()
        self.version += 1

    def _trim_log(self) -> None:
        first = min((mark.position for mark in self._marks), default=None)
        if first is None:
            self._log.clear()
            return
        while self._log and self._log[0][0] <= first:
            self._log.popleft()

    # -- events -------------------------------------------------------------

    def apply(self, name: str, data: Any) -> None:
        """One event from the daemon, in the order received."""
        self._position += 1
        if self._marks:
            if len(self._log) >= self.log_limit:
                self._marks.clear()   # their seeds are void; ask again
                self._log.clear()
            else:
                self._log.append((self._position, name, data))
        if name == 'message':
            if self._messages is not None and self._add_message(data):
                self.version += 1
            return
        if name == 'experiment':
            # A switch to a user experiment empties the daemon's messages.
            self._messages = self._overlap = None
            self.version += 1
            return
        if self._fields is None:
            return
        if not _apply(self._fields, self._requests, name, data) \
                or name in STATUS_DOUBTS:
            self.doubt()
        if name in _STATUS_CHANGES:
            self.version += 1

    def _add_message(self, message: Any) -> bool:
        """Keep a message as the daemon does; whether it was new."""
        if not isinstance(message, (list, tuple)) or len(message) < 3:
            return False
        if message[2] == ACTION:
            return False   # the daemon does not keep these either
        key = _key(message)
        if self._overlap is not None:
            if key in self._overlap:
                self._overlap.discard(key)
                return False
            self._overlap = None   # past what the seed had
        self._messages.append(list(message))
        if len(self._messages) > self.kept:
            del self._messages[:len(self._messages) - self.kept]
            self._complete = False
        return True

    @staticmethod
    def _materialize(fields: Dict[str, Any], requests: Dict[str, dict]) -> dict:
        return dict(fields, requests=list(requests.values()))


#: Events that may change a field of ``getstatus``.
_STATUS_CHANGES = frozenset({
    'status', 'request', 'processing', 'blocked', 'updated', 'rearranged',
    'eta', 'mode', 'watch', 'setup', 'device'})


def message_count(arg: Any) -> Tuple[bool, Optional[int]]:
    """``getmessages``' argument as NICOS reads it: (understood, count),
    count None for ``'*'`` (all). Not understood: leave it to the daemon."""
    if arg == '*':
        return True, None
    if isinstance(arg, bool) or not isinstance(arg, (int, str)):
        return False, None
    try:
        return True, int(arg)
    except ValueError:
        return False, None


def _key(message: list) -> Optional[tuple]:
    """A message as a set member (None if it holds unhashable parts)."""
    try:
        key = tuple(message)
        hash(key)
    except TypeError:
        return None
    return key


def _apply(fields: Dict[str, Any], requests: Dict[str, dict], name: str,
           data: Any) -> bool:
    """Apply one event to a status; False if it did not fit the status
    (an id it does not have, a payload of the wrong shape)."""
    try:
        if name == 'status':
            fields['status'] = tuple(data)
        elif name == 'processing':
            fields['script'] = data.get('script') or ''
            fields['scriptname'] = data.get('name') or ''
            fields['eta'] = _START_ETA
            requests.pop(str(data.get('reqid')), None)
        elif name == 'request':
            requests[str(data['reqid'])] = data
        elif name == 'updated':
            reqid = str(data['reqid'])
            if reqid not in requests:
                return False
            requests[reqid] = data
        elif name == 'blocked':
            known = [requests.pop(str(reqid), None) for reqid in data]
            return None not in known
        elif name == 'rearranged':
            order = [str(reqid) for reqid in data]
            moved = {reqid: requests[reqid] for reqid in order if reqid in requests}
            fits = len(moved) == len(order) == len(requests)
            rest = [(reqid, request) for reqid, request in requests.items()
                    if reqid not in moved]
            requests.clear()
            requests.update(moved)
            requests.update(rest)
            return fits
        elif name == 'eta':
            fields['eta'] = tuple(data)
        elif name == 'mode':
            fields['mode'] = data
        elif name == 'watch':
            fields['watch'] = data
        elif name == 'setup':
            fields['setups'] = tuple(data)
        elif name == 'device':
            action, names = data
            devices = [device for device in fields.get('devices', ())
                       if device not in names]
            fields['devices'] = devices + list(names) if action == 'create' \
                else devices
    except (TypeError, KeyError, ValueError, AttributeError):
        return False
    return True


def _differences(fields: Dict[str, Any], requests: Dict[str, dict],
                 other_fields: Dict[str, Any], other_requests: Dict[str, dict]
                 ) -> List[str]:
    """The fields in which two statuses look different to clients (as
    JSON), but for the watch values."""
    try:
        mine, other = (to_json(Mirror._materialize(f, r))
                       for f, r in ((fields, requests),
                                    (other_fields, other_requests)))
    except ProtocolError as err:
        return [str(err)]
    return sorted(key for key in set(mine) | set(other)
                  if key != 'watch' and mine.get(key) != other.get(key))
