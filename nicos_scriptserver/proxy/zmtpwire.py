"""ZMTP 3.x on the wire: frames, commands, greetings, the socket roles
the proxy plays (sans-I/O, no state; the connection is in `zmtp`)."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Dict, FrozenSet, List, Sequence

#: The flags octet of a frame.
MORE, LONG, COMMAND = 0x01, 0x02, 0x04
GREETING_SIZE = 64
#: What we announce: ZMTP 3.1 (PING/PONG); 3.0 peers frame the same way.
VERSION = (3, 1)
MECHANISM = b'NULL'


@dataclass(frozen=True)
class Role:
    """The socket type we announce and the peer types we serve."""

    socket_type: bytes
    peer_types: FrozenSet[str]
    #: SUBSCRIBE and CANCEL commands (ZMTP 3.1) are handed on, as the
    #: subscription messages of ZMTP 3.0 (`subscription`).
    subscriptions: bool = False


#: RFC 37's table also allows ROUTER peers, which no client of ours is.
ROUTER = Role(b'ROUTER', frozenset({'REQ', 'DEALER'}))
#: The event socket (RFC 29): SUB and XSUB peers only send subscriptions.
PUB = Role(b'PUB', frozenset({'SUB', 'XSUB'}), subscriptions=True)

_LONG_SIZE = struct.Struct('>Q')
_VALUE_SIZE = struct.Struct('>I')


class ZmtpError(Exception):
    """The peer broke the protocol or a limit: close the connection, after
    sending `take_output` (it may hold an ERROR command with the reason)."""


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


def subscription(subscribe: bool, topic: bytes) -> List[bytes]:
    """A subscription as a ZMTP 3.0 peer sends it: one frame, 1 (subscribe)
    or 0 (cancel), then the topic."""
    return [bytes((int(subscribe),)) + topic]


def error_command(reason: str) -> bytes:
    """An ERROR command (its reason is at most 255 octets)."""
    text = reason.encode('ascii', 'replace')[:255]
    return encode_command(b'ERROR', bytes((len(text),)) + text)
