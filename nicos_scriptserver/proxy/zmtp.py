"""ZMTP 3.x, the server side of one connection, sans-I/O (RFC 23, RFC 37).

What the proxy needs of ZeroMQ and no more: a ROUTER that serves REQ and
DEALER peers with the NULL mechanism. Bytes go in (`receive`), messages
come out (`next_message`), and what must go back to the peer (greeting,
READY, PONG, ERROR, replies) collects in `take_output`.

Why not libzmq: it buffers an unfinished multipart message where nobody
can see or bound it (its pipe only publishes whole messages), and it
cannot close one connection of a ROUTER. Here every frame header is
checked against the message limit before its body is waited for, so a
peer that announces or sends more than one request's worth is refused
at once, and the bytes a connection holds are always known (`buffered`).

The greeting is sent whole at once (RFC 37, "when a peer does not need
backwards interoperability"); peers older than ZMTP 3.0 are refused by
closing, since they cannot read an ERROR command. Refusals of a ZMTP 3
peer (another mechanism, another socket type, a broken frame, a message
over the limit) carry an ERROR command with the reason.
"""

from __future__ import annotations

import enum
import struct
from typing import Dict, List, Optional, Sequence

#: The flags octet of a frame.
MORE, LONG, COMMAND = 0x01, 0x02, 0x04
GREETING_SIZE = 64
#: What we announce: ZMTP 3.1 (PING/PONG); 3.0 peers frame the same way.
VERSION = (3, 1)
MECHANISM = b'NULL'
SOCKET_TYPE = b'ROUTER'
#: The socket types a ROUTER talks to that the proxy serves (RFC 37's
#: table also allows ROUTER peers, which no client of ours is).
PEER_TYPES = frozenset({'REQ', 'DEALER'})
#: A command frame's body is at most this large (a READY carries a few
#: short properties; nothing we accept needs more).
MAX_COMMAND_BYTES = 64 * 1024
#: What one frame of a message costs besides its body (a bytes object and
#: a list slot), so that many empty frames are bounded like a large one.
FRAME_COST = 64
# A PONG echoes at most this much of a PING's context (RFC 37 leaves it
# open; libzmq cuts it here too).
MAX_PING_CONTEXT = 16

_LONG_SIZE = struct.Struct('>Q')
_VALUE_SIZE = struct.Struct('>I')
# Below this many bytes already parsed, the buffer is not compacted:
# that costs a copy of the rest.
_COMPACT = 64 * 1024


class ZmtpError(Exception):
    """The peer broke the protocol or a limit: close the connection, after
    sending `take_output` (it may hold an ERROR command with the reason)."""


class State(enum.Enum):
    GREETING = 'greeting'
    HANDSHAKE = 'handshake'
    TRAFFIC = 'traffic'
    CLOSED = 'closed'


def greeting() -> bytes:
    """Our full 64-octet greeting: signature, version, mechanism, not as
    server (NULL has no roles), filler."""
    return (b'\xff' + bytes(8) + b'\x7f' + bytes(VERSION)
            + MECHANISM.ljust(20, b'\x00') + b'\x00' + bytes(31))


def frame_header(flags: int, size: int) -> bytes:
    """A frame's flags and size, short or long as the size needs."""
    if size < 256:
        return bytes((flags, size))
    return bytes((flags | LONG,)) + _LONG_SIZE.pack(size)


def encode_message(frames: Sequence[bytes]) -> bytes:
    """The frames of one message, ready for the wire."""
    parts = []
    last = len(frames) - 1
    for i, body in enumerate(frames):
        parts.append(frame_header(MORE if i < last else 0, len(body)))
        parts.append(body)
    return b''.join(parts)


def encode_command(name: bytes, data: bytes = b'') -> bytes:
    """One command frame: the name (short-size prefixed), then its data."""
    body = bytes((len(name),)) + name + data
    return frame_header(COMMAND, len(body)) + body


def encode_metadata(properties: Dict[bytes, bytes]) -> bytes:
    """READY's properties: short-size names, 4-octet-size values."""
    return b''.join(bytes((len(name),)) + name + _VALUE_SIZE.pack(len(value))
                    + value for name, value in properties.items())


def decode_metadata(data: bytes) -> Dict[str, bytes]:
    """READY's properties by lower-case name (names are case-insensitive);
    `ZmtpError` if malformed."""
    properties: Dict[str, bytes] = {}
    pos = 0
    while pos < len(data):
        size = data[pos]
        name = data[pos + 1:pos + 1 + size]
        pos += 1 + size
        if not size or len(name) < size or pos + 4 > len(data):
            raise ZmtpError('malformed metadata in READY')
        value_size, = _VALUE_SIZE.unpack_from(data, pos)
        pos += 4
        if pos + value_size > len(data):
            raise ZmtpError('malformed metadata in READY')
        properties[name.decode('ascii', 'replace').lower()] = \
            data[pos:pos + value_size]
        pos += value_size
    return properties


def error_command(reason: str) -> bytes:
    """An ERROR command (its reason is at most 255 octets)."""
    text = reason.encode('ascii', 'replace')[:255]
    return encode_command(b'ERROR', bytes((len(text),)) + text)


class ServerConnection:
    """One peer of our ROUTER: the handshake, then its messages.

    *max_message* bounds one incoming message: the sum of its frames'
    bodies plus `FRAME_COST` per frame.
    """

    def __init__(self, max_message: int):
        self.max_message = max_message
        self.state = State.GREETING
        #: The peer's Socket-Type (REQ or DEALER) once it is READY.
        self.peer_type: Optional[str] = None
        # The bytes being parsed, from `_pos` on; and what arrived after
        # them, joined only once a frame is whole (a large frame arriving
        # in many reads is copied once, a small one usually not at all).
        self._buffer = b''
        self._pos = 0
        self._pending: List[bytes] = []
        self._pending_bytes = 0
        self._frames: List[bytes] = []
        self._held = 0
        self._output = [greeting()]

    @property
    def buffered(self) -> int:
        """Bytes this connection holds: received and not yet handed out."""
        return len(self._buffer) - self._pos + self._pending_bytes + self._held

    def receive(self, data: bytes) -> None:
        """Add bytes from the peer; `next_message` parses them."""
        if self.state is State.CLOSED:
            raise ZmtpError('the connection is closed')
        self._pending.append(data)
        self._pending_bytes += len(data)

    def take_output(self) -> bytes:
        """What must be sent to the peer now (and is forgotten here)."""
        data = b''.join(self._output)
        self._output.clear()
        return data

    def send_message(self, frames: Sequence[bytes]) -> None:
        """Queue one message for the peer (after the handshake)."""
        self._output.append(encode_message(frames))

    def next_message(self) -> Optional[List[bytes]]:
        """The next complete message, or None until more bytes arrive.

        Commands are handled on the way (READY, PING); `ZmtpError` ends
        the connection.
        """
        try:
            while True:
                if self.state is State.GREETING:
                    if not self._greeting():
                        return None
                    continue
                parsed = self._next_frame()
                if parsed is None:
                    return None
                flags, body = parsed
                if flags & COMMAND:
                    self._command(body)
                    continue
                if self.state is not State.TRAFFIC:
                    self._refuse('a message before READY')
                self._frames.append(body)
                if not flags & MORE:
                    message, self._frames, self._held = self._frames, [], 0
                    return message
        except ZmtpError:
            self.state = State.CLOSED
            self._buffer, self._pos, self._frames, self._held = b'', 0, [], 0
            self._pending, self._pending_bytes = [], 0
            raise
        finally:
            self._compact()

    # -- parsing -------------------------------------------------------------

    def _refuse(self, reason: str) -> None:
        self._output.append(error_command(reason))
        raise ZmtpError(reason)

    def _have(self, count: int) -> bool:
        """Whether *count* bytes from the parse position have arrived
        (joined into the buffer if they have)."""
        available = len(self._buffer) - self._pos
        if available >= count:
            return True
        if available + self._pending_bytes < count:
            return False
        if not available and len(self._pending) == 1:
            self._buffer = self._pending[0]
        else:
            self._buffer = b''.join([self._buffer[self._pos:], *self._pending])
        self._pos = 0
        self._pending, self._pending_bytes = [], 0
        return True

    def _greeting(self) -> bool:
        self._have(len(self._buffer) - self._pos + self._pending_bytes)
        available = len(self._buffer) - self._pos
        head = self._buffer[self._pos:self._pos + 11]
        # Decide on older peers as soon as their first octets say so: they
        # wait for more of ours before sending the rest of theirs.
        if available >= 1 and head[0] != 0xff:
            raise ZmtpError('a ZMTP 1.0 peer (no signature): not served')
        if available >= 10 and not head[9] & 1:
            raise ZmtpError('a ZMTP 1.0 peer (long identity): not served')
        if available >= 11 and head[10] < 3:
            raise ZmtpError(f'a ZMTP {head[10]}.x peer: only ZMTP 3 is served')
        if available < GREETING_SIZE:
            return False
        start = self._pos
        mechanism = self._buffer[start + 12:start + 32].rstrip(b'\x00')
        self._pos += GREETING_SIZE
        if mechanism != MECHANISM:
            self._refuse(f'security mechanism '
                         f'{mechanism.decode("ascii", "replace")!r} is not '
                         f'supported; use NULL')
        self._output.append(encode_command(
            b'READY', encode_metadata({b'Socket-Type': SOCKET_TYPE})))
        self.state = State.HANDSHAKE
        return True

    def _next_frame(self) -> Optional[tuple]:
        if not self._have(2):
            return None
        buffer, pos = self._buffer, self._pos
        flags = buffer[pos]
        if flags & ~(MORE | LONG | COMMAND):
            self._refuse(f'reserved flag bits set in a frame ({flags:#04x})')
        if flags & COMMAND and flags & MORE:
            self._refuse('a command frame with the MORE flag')
        if flags & COMMAND and self._frames:
            self._refuse('a command inside a multipart message')
        if flags & LONG:
            if not self._have(9):
                return None
            buffer, pos = self._buffer, self._pos   # joined anew, maybe
            size, = _LONG_SIZE.unpack_from(buffer, pos + 1)
            header = 9
        else:
            size, header = buffer[pos + 1], 2
        self._check_size(flags, size)
        if not self._have(header + size):
            return None
        buffer, start = self._buffer, self._pos + header
        body = buffer[start:start + size]
        self._pos = start + size
        if not flags & COMMAND:
            self._held += size + FRAME_COST
        return flags, body

    def _check_size(self, flags: int, size: int) -> None:
        """Refuse a frame by its header, before waiting for its body."""
        if flags & COMMAND:
            if size > MAX_COMMAND_BYTES:
                self._refuse(f'a command of {size} bytes is larger than the '
                             f'limit of {MAX_COMMAND_BYTES}')
        elif self._held + size + FRAME_COST > self.max_message:
            self._refuse(f'a message of more than {self.max_message} bytes '
                         f'is larger than the limit')

    def _compact(self) -> None:
        # Let go of what was parsed, so that a large message's memory goes
        # back and `buffered` is what is held.
        if self._pos == len(self._buffer):
            self._buffer, self._pos = b'', 0
        elif self._pos >= _COMPACT:
            self._buffer, self._pos = self._buffer[self._pos:], 0

    # -- commands -------------------------------------------------------------

    def _command(self, body: bytes) -> None:
        if not body or not 1 <= body[0] <= len(body) - 1:
            self._refuse('a malformed command frame')
        name, data = body[1:1 + body[0]], body[1 + body[0]:]
        if not name.isalpha():
            self._refuse('a malformed command name')
        if name == b'ERROR':
            reason = data[1:1 + data[0]] if data else b''
            raise ZmtpError('the peer sent ERROR: '
                            + reason.decode('ascii', 'replace'))
        if self.state is State.HANDSHAKE:
            if name != b'READY':
                self._refuse(f'expected READY, not {name[:20].decode()}')
            try:
                properties = decode_metadata(data)
            except ZmtpError as err:
                self._refuse(str(err))
            self._ready(properties)
        elif name == b'PING':
            if len(data) < 2:
                self._refuse('a PING without its TTL')
            self._output.append(encode_command(
                b'PONG', data[2:2 + MAX_PING_CONTEXT]))
        elif name == b'READY':
            self._refuse('READY after the handshake')
        # PONG, SUBSCRIBE, CANCEL and commands of later versions carry
        # nothing for a ROUTER: ignored, as RFC 37 lets a peer do.

    def _ready(self, properties: Dict[str, bytes]) -> None:
        peer_type = properties.get('socket-type', b'').decode('ascii', 'replace')
        if peer_type not in PEER_TYPES:
            self._refuse(f'socket type {peer_type[:20]!r} cannot talk to '
                         f'ROUTER here; use REQ or DEALER')
        self.peer_type = peer_type
        self.state = State.TRAFFIC
