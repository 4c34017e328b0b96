"""NICOS's classic daemon protocol, the proxy's side of it (sans-I/O).

What goes over the proxy's links to the daemon: request frames out,
replies and event frames in, split from the byte stream as it arrives.
Without NICOS: the proxy process imports none of it, since importing
NICOS's protocol tables means registering the script server's commands
in them as well. The few values needed are here: the framing bytes and
the command and event codes of NICOS 3.12.2, with our own from
`commandtable.CODES` and `protocol.EVENTS`, a log level and an ETA state
(a test checks them against NICOS's own).

Replies and events are pickles, read as plain data only (`plainpickle`):
the daemon runs users' scripts, so what it sends must not be able to run
code in the proxy, which holds the tier-2 passwords.
"""

from __future__ import annotations

import pickle
import struct
from typing import Any, Dict, List, Optional, Tuple

from nicos_scriptserver.wire import plainpickle
from nicos_scriptserver.wire.commandtable import CODES
from nicos_scriptserver.wire.protocol import EVENTS

#: A request frame: ENQ, command code, LENGTH, pickled arguments.
ENQ = b'\x05'
#: Replies: ACK alone (ok, nothing to say); STX or NAK (error), LENGTH,
#: pickled payload. Events: STX, event code, blob count, LENGTH, payload.
ACK, STX, NAK = b'\x06', b'\x03', b'\x15'
LENGTH = struct.Struct('>I')
_CODE = struct.Struct('>H')

#: NICOS 3.12.2's commands (``nicos.protocols.daemon.DAEMON_COMMANDS``).
STOCK_COMMANDS: Dict[str, int] = {
    'start': 0x01, 'simulate': 0x02, 'queue': 0x03, 'unqueue': 0x04,
    'update': 0x05, 'break': 0x11, 'continue': 0x12, 'stop': 0x13,
    'emergency': 0x14, 'finish': 0x15, 'exec': 0x21, 'eval': 0x22,
    'watch': 0x31, 'unwatch': 0x32, 'getversion': 0x41, 'getstatus': 0x42,
    'getmessages': 0x43, 'getscript': 0x44, 'gethistory': 0x45,
    'getcachekeys': 0x46, 'gettrace': 0x47, 'getdataset': 0x48,
    'complete': 0x51, 'transfer': 0x52, 'debug': 0x53, 'debuginput': 0x54,
    'eventmask': 0x61, 'unlock': 0x62, 'quit': 0x63, 'authenticate': 0x64,
    'eventunmask': 0x65, 'rearrange': 0x66, 'keepalive': 0x67,
}
#: NICOS 3.12.2's events (``DAEMON_EVENTS``, without the blob flags).
STOCK_EVENTS: Dict[str, int] = {
    'message': 0x1001, 'request': 0x1002, 'processing': 0x1003,
    'blocked': 0x1004, 'status': 0x1005, 'watch': 0x1006, 'mode': 0x1007,
    'cache': 0x1008, 'dataset': 0x1009, 'datapoint': 0x100A,
    'datacurve': 0x100B, 'livedata': 0x100D, 'simresult': 0x100E,
    'showhelp': 0x100F, 'clientexec': 0x1010, 'watchdog': 0x1011,
    'debugging': 0x1012, 'plugplay': 0x1013, 'setup': 0x1014,
    'device': 0x1015, 'experiment': 0x1016, 'prompt': 0x1017,
    'updated': 0x1018, 'rearranged': 0x1019, 'eta': 0x101A,
    'simmessage': 0x101B, 'done': 0x101C, 'promptdone': 0x101D,
}

#: Every command's code on the wire, NICOS's and ours.
COMMAND_CODES: Dict[str, bytes] = {
    name: _CODE.pack(number) for name, number in {**STOCK_COMMANDS, **CODES}.items()}
#: Every event by its code on the wire, NICOS's and ours.
EVENT_NAMES: Dict[bytes, str] = {
    _CODE.pack(number): name for name, number in
    {**STOCK_EVENTS, **{name: spec[0] for name, spec in EVENTS.items()}}.items()}
#: Every event the daemon can send (what a link masks but for a few).
ALL_EVENTS = frozenset(EVENT_NAMES.values())

#: The ETA state of a script that starts (NICOS's ``SIM_STATES['pending']``).
SIM_PENDING = 0x01
#: The log level of NICOS's ACTION messages (``nicos.utils.loggers``), which
#: the daemon sends but does not keep.
ACTION = 21

#: (ok, payload) of one daemon reply.
Reply = Tuple[bool, Any]
#: One daemon event as it arrived: its name, its pickled payload, blobs.
RawEvent = Tuple[str, bytes, List[bytes]]

#: Bytes of one event (payload and blobs) the proxy takes; a larger one
#: breaks the link (the daemon's own limit on a command frame, which an
#: event carrying a script never needs).
MAX_EVENT_BYTES = 16 * 1024 * 1024
# An event frame starts with STX, the event code, the number of blobs and
# the payload's length.
_EVENT_HEADER = 1 + _CODE.size + 1 + LENGTH.size


class LinkError(ConnectionError):
    """The daemon cannot be reached, refused the login or broke the link."""


class ReplyReader:
    """Splits the daemon's byte stream into replies."""

    def __init__(self):
        self._buffer = bytearray()

    def feed(self, data: bytes) -> List[Tuple[bool, bytes]]:
        """Add received bytes; return the (ok, raw payload) replies completed."""
        self._buffer += data
        replies = []
        while self._buffer:
            start = self._buffer[:1]
            if start == ACK:
                del self._buffer[:1]
                replies.append((True, b''))
                continue
            if start not in (STX, NAK):
                raise LinkError(f'the daemon sent an invalid reply start {bytes(start)!r}')
            if len(self._buffer) < 1 + LENGTH.size:
                break
            length, = LENGTH.unpack_from(self._buffer, 1)
            end = 1 + LENGTH.size + length
            if len(self._buffer) < end:
                break
            replies.append((start == STX, bytes(self._buffer[1 + LENGTH.size:end])))
            del self._buffer[:end]
        return replies


class EventReader:
    """Splits the daemon's event stream into events, as NICOS's classic
    server sends them (``send_event``): STX, event code (2), blob count
    (1), payload length (4), payload, then each blob with its length.
    """

    def __init__(self, limit: int = MAX_EVENT_BYTES):
        self.limit = limit
        self._buffer = bytearray()

    def feed(self, data: bytes) -> List[RawEvent]:
        """Add received bytes; return the events completed."""
        self._buffer += data
        events = []
        while (event := self._next()) is not None:
            events.append(event)
        return events

    def _next(self) -> Optional[RawEvent]:
        buffer = self._buffer
        if len(buffer) < _EVENT_HEADER:
            if buffer[:1] not in (b'', STX):
                raise LinkError(f'the daemon sent an invalid event start '
                                f'{bytes(buffer[:1])!r}')
            return None
        if buffer[:1] != STX:
            raise LinkError(f'the daemon sent an invalid event start '
                            f'{bytes(buffer[:1])!r}')
        name = EVENT_NAMES.get(bytes(buffer[1:3]))
        if name is None:
            raise LinkError(f'the daemon sent an unknown event code '
                            f'{bytes(buffer[1:3]).hex()}')
        blobs = buffer[3]
        # Walk the lengths without copying; each is checked before waiting
        # for what it announces.
        pos, parts = 4, []
        for _ in range(1 + blobs):
            if len(buffer) < pos + LENGTH.size:
                return None
            length, = LENGTH.unpack_from(buffer, pos)
            pos += LENGTH.size
            if pos + length > self.limit:
                raise LinkError(f'the daemon sent an event {name!r} of more '
                                f'than {self.limit} bytes')
            parts.append((pos, length))
            pos += length
        if len(buffer) < pos:
            return None
        payload, *blob_data = [bytes(buffer[start:start + length])
                               for start, length in parts]
        del buffer[:pos]
        return name, payload, blob_data


def decode_event(payload: bytes) -> Any:
    """An event's payload as plain data (`plainpickle`); ValueError if it
    is not plain data."""
    try:
        return plainpickle.loads(payload)
    except (plainpickle.UnpicklingError, ValueError, TypeError, EOFError) as err:
        raise ValueError(f'an event that is not plain data: {err}') from None


def encode_request(command: str, args: list) -> bytes:
    """One request frame."""
    try:
        code = COMMAND_CODES[command]
    except KeyError:
        raise LinkError(f'{command} is not a daemon command') from None
    data = pickle.dumps(list(args), 2)
    return ENQ + code + LENGTH.pack(len(data)) + data


def decode_reply(ok: bool, raw: bytes) -> Reply:
    """One reply: its payload read as plain data only. A payload that is
    not plain data becomes an error reply (the link itself is fine)."""
    if not raw:
        return ok, None
    try:
        return ok, plainpickle.loads(raw)
    except (plainpickle.UnpicklingError, ValueError, TypeError, EOFError) as err:
        return False, f'the daemon\'s reply is not plain data: {err}'
