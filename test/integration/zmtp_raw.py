"""A raw ZMTP 3 peer over a plain TCP socket, for attacking the proxy.

Written byte by byte from RFC 23/37 and independent of the proxy's own
codec, so that tests of the codec's server do not share its mistakes.
"""

from __future__ import annotations

import socket
import struct
from typing import List, Optional

SIGNATURE = b'\xff' + b'\x00' * 8 + b'\x7f'


def greeting(major: int = 3, minor: int = 1, mechanism: bytes = b'NULL') -> bytes:
    """A full 64-octet greeting."""
    return (SIGNATURE + bytes([major, minor]) + mechanism.ljust(20, b'\x00')
            + b'\x00' + b'\x00' * 31)


def frame(body: bytes, more: bool = False, command: bool = False) -> bytes:
    """One frame, short or long as its size needs."""
    flags = (1 if more else 0) | (4 if command else 0)
    if len(body) < 256:
        return bytes([flags, len(body)]) + body
    return bytes([flags | 2]) + struct.pack('>Q', len(body)) + body


def command(name: bytes, data: bytes = b'') -> bytes:
    return frame(bytes([len(name)]) + name + data, command=True)


def ready(socket_type: bytes = b'DEALER') -> bytes:
    name = b'Socket-Type'
    return command(b'READY', bytes([len(name)]) + name
                   + struct.pack('>I', len(socket_type)) + socket_type)


def message(frames: List[bytes]) -> bytes:
    return b''.join(frame(part, more=i < len(frames) - 1)
                    for i, part in enumerate(frames))


class RawPeer:
    """A connected TCP socket that speaks ZMTP by hand."""

    def __init__(self, port: int, host: str = '127.0.0.1', timeout: float = 5.0):
        self.sock = socket.create_connection((host, port), timeout)
        self._buffer = b''

    def handshake(self, socket_type: bytes = b'DEALER') -> bytes:
        """Greeting and READY both ways; returns the server's READY body."""
        self.sock.sendall(greeting() + ready(socket_type))
        server_greeting = self.read(64)
        assert server_greeting[0] == 0xff and server_greeting[10] == 3, \
            server_greeting
        flags, body = self.read_frame()
        assert flags & 4 and body[1:6] == b'READY', body
        return body

    def read(self, count: int) -> bytes:
        while len(self._buffer) < count:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionResetError('closed by the server')
            self._buffer += data
        data, self._buffer = self._buffer[:count], self._buffer[count:]
        return data

    def read_frame(self) -> tuple:
        flags = self.read(1)[0]
        if flags & 2:
            size, = struct.unpack('>Q', self.read(8))
        else:
            size = self.read(1)[0]
        return flags, self.read(size)

    def read_message(self) -> List[bytes]:
        """The next message's frames (commands are skipped)."""
        frames = []
        while True:
            flags, body = self.read_frame()
            if flags & 4:
                continue
            frames.append(body)
            if not flags & 1:
                return frames

    def closed_by_server(self, timeout: float = 5.0) -> Optional[bytes]:
        """Wait for the server to close; returns what it sent before
        (e.g. an ERROR command), or None if it did not close in time."""
        self.sock.settimeout(timeout)
        data = self._buffer
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return data
                data += chunk
        except ConnectionResetError:
            return data
        except socket.timeout:
            return None

    def close(self) -> None:
        self.sock.close()
