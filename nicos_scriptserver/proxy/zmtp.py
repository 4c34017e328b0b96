"""ZMTP 3.x, the server side of one connection, sans-I/O (RFC 23, RFC 37).

What the proxy needs of ZeroMQ and no more, with the NULL mechanism: a
ROUTER that serves REQ and DEALER peers, and a PUB that serves SUB and
XSUB peers (the event socket). Bytes go in (`receive`), messages come out
(`next_message`), and what must go back to the peer (greeting, READY,
PONG, ERROR, replies, events) collects in `take_output`. Frames and
commands on the wire are in `zmtpwire`.

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

from nicos_scriptserver.proxy.zmtpwire import COMMAND, GREETING_SIZE, \
    LONG, MECHANISM, MORE, ROUTER, Role, ZmtpError, decode_metadata, \
    encode_command, encode_message, encode_metadata, error_command, \
    greeting, subscription

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
# Below this many bytes already parsed, the buffer is not compacted:
# that costs a copy of the rest.
_COMPACT = 64 * 1024


class State(enum.Enum):
    GREETING = 'greeting'
    HANDSHAKE = 'handshake'
    TRAFFIC = 'traffic'
    CLOSED = 'closed'


class ServerConnection:
    """One peer of our ROUTER (or PUB, as *role* says): the handshake,
    then its messages.

    *max_message* bounds one incoming message: the sum of its frames'
    bodies plus `FRAME_COST` per frame.
    """

    def __init__(self, max_message: int, role: Role = ROUTER):
        self.max_message = max_message
        self.role = role
        self.state = State.GREETING
        #: The peer's Socket-Type (REQ, DEALER, SUB...) once it is READY.
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
                    message = self._command(body)
                    if message is not None:
                        return message
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
            b'READY', encode_metadata({b'Socket-Type': self.role.socket_type})))
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

    def _command(self, body: bytes) -> Optional[List[bytes]]:
        """Answer or check a command; a subscription to hand on, if any."""
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
        elif name in (b'SUBSCRIBE', b'CANCEL') and self.role.subscriptions:
            return subscription(name == b'SUBSCRIBE', data)
        # PONG, and for a ROUTER SUBSCRIBE and CANCEL, and commands of
        # later versions carry nothing for us: ignored, as RFC 37 lets a
        # peer do.
        return None

    def _ready(self, properties: Dict[str, bytes]) -> None:
        peer_type = properties.get('socket-type', b'').decode('ascii', 'replace')
        if peer_type not in self.role.peer_types:
            ours = self.role.socket_type.decode()
            self._refuse(f'socket type {peer_type[:20]!r} cannot talk to '
                         f'{ours} here; use '
                         f'{" or ".join(sorted(self.role.peer_types))}')
        self.peer_type = peer_type
        self.state = State.TRAFFIC
