"""The proxy's client connections: non-blocking TCP around the ZMTP codec.

The thin I/O edge of the serving loop: it takes the loopback connections
of its `Listener`, reads what is there, hands complete messages to the server, and
writes replies as far as each socket takes them. The protocol is in
`zmtp`, the bounds in `budget`.

One request per connection at a time: once a message is handed on,
nothing more is read from that connection until its reply is queued
(`send`). A REQ client never sends more anyway; a DEALER that pipelines
waits in its own socket buffers, not in the proxy's memory. A client
that does not read its replies is not read from either.
"""

from __future__ import annotations

import collections
import ctypes
import itertools
import logging
import select
import socket
from typing import Callable, Deque, Dict, List, Tuple

from nicos_scriptserver.proxy import zmtp
from nicos_scriptserver.proxy.budget import Budget, Limits, Meter
from nicos_scriptserver.proxy.listener import Listener, is_loopback
from nicos_scriptserver.proxy.logquota import LogQuota
from nicos_scriptserver.proxy.loop import EventLoop

__all__ = ['Peer', 'Transport', 'is_loopback']

log = logging.getLogger('nicos_scriptserver.proxy')

# Bytes taken from a socket per read.
RECV_BYTES = 64 * 1024
# Above this many bytes waiting to be sent, the connection is not read.
PAUSE_OUTPUT = 64 * 1024
# Once closed connections let go of this many bytes, the C allocator is
# asked to give free memory back (`Transport.trim`).
TRIM_AFTER = 4 * 1024 * 1024


def _malloc_trim() -> Callable[[], None]:
    """glibc's malloc_trim(0), or nothing where there is none.

    Freed buffers of closed connections stay in the process otherwise:
    glibc returns only the top of its heap to the system, and raises its
    mmap threshold to the size of each large block freed, so that the next
    ones come from the heap too.
    """
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return lambda: None
    trim.argtypes = [ctypes.c_size_t]
    return lambda: trim(0)


class Peer:
    """One client connection."""

    def __init__(self, peer_id: int, sock: socket.socket, remote: Tuple,
                 local: Tuple, max_message: int):
        self.id = peer_id
        self.sock = sock
        self.fd = sock.fileno()
        #: (host, port) of the client, and ours.
        self.remote, self.local = remote, local
        self.codec = zmtp.ServerConnection(max_message)
        self.meter = Meter()
        self.out: Deque[memoryview] = collections.deque()
        self.out_bytes = 0
        #: A message of it was handed on and its reply is not queued yet.
        self.in_flight = False
        #: It sent more meanwhile, to be read once the reply is queued.
        self.waiting = False
        self.pumping = False
        self.closed = False
        self.events = 0

    @property
    def address(self) -> str:
        return self.remote[0]


class Transport:
    """Listens, accepts, reads and writes; the server decides the rest.

    *on_open* is asked about each new connection (False closes it),
    *on_message* gets each complete message (and must answer it with
    exactly one `send`), *on_closed* hears of each connection closed.
    """

    def __init__(self, loop: EventLoop, limits: Limits,
                 on_open: Callable[[Peer], bool],
                 on_message: Callable[[Peer, List[bytes]], None],
                 on_closed: Callable[[Peer], None]):
        self.loop = loop
        self.limits = limits
        self.budget = Budget(limits)
        self.peers: Dict[int, Peer] = {}
        self._on_open = on_open
        self._on_message = on_message
        self._on_closed = on_closed
        self._ids = itertools.count(1)
        self._warnings = LogQuota(log)
        self.listener = Listener(loop, self._accepted, self._warnings)
        self._malloc_trim = _malloc_trim()
        #: Bytes let go by closed connections since the last `trim`.
        self.released = 0

    def listen(self, host: str, port: int) -> int:
        """Bind and listen on *host*:*port* (0: a free port); the port."""
        return self.listener.listen(host, port)

    def _accepted(self, sock: socket.socket, remote: Tuple, local: Tuple) -> None:
        peer = Peer(next(self._ids), sock, remote, local, self.limits.message)
        if not self._on_open(peer):
            sock.close()
            return
        self.peers[peer.id] = peer
        peer.events = select.EPOLLIN
        self.loop.watch(peer.fd, peer.events,
                        lambda events, peer=peer: self._ready(peer, events))
        self._queue(peer, peer.codec.take_output())   # our greeting
        self._flush(peer)
        self._settle(peer)

    # -- reading ------------------------------------------------------------

    def _ready(self, peer: Peer, events: int) -> None:
        if events & select.EPOLLOUT:
            self._flush(peer)
        if peer.closed:
            return
        if peer.in_flight:
            if events & (select.EPOLLHUP | select.EPOLLERR):
                self.close(peer, 'gone with a request in flight')
                return
            # Not read until its reply is queued; only then is the socket
            # unwatched for reading (a REQ client never gets here, so
            # its requests cost no change of the watch).
            if events & select.EPOLLIN:
                peer.waiting = True
        else:
            if events & (select.EPOLLIN | select.EPOLLHUP | select.EPOLLERR):
                self._read(peer)
            # Also when only sending went on: what it sent before may wait
            # for its replies to drain.
            self._pump(peer)
        self._settle(peer)

    def _read(self, peer: Peer) -> None:
        try:
            data = peer.sock.recv(RECV_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as err:
            self.close(peer, f'reading failed: {err}')
            return
        if not data:
            self.close(peer, 'closed by the client')
            return
        peer.codec.receive(data)

    def _pump(self, peer: Peer) -> None:
        """Hand on the messages that are complete, one at a time, while
        the replies before them do not pile up."""
        peer.pumping = True
        try:
            while not peer.in_flight and not peer.closed \
                    and peer.out_bytes <= PAUSE_OUTPUT:
                try:
                    message = peer.codec.next_message()
                except zmtp.ZmtpError as err:
                    self._queue(peer, peer.codec.take_output())
                    self._flush(peer)
                    self.close(peer, str(err), warn=True)
                    return
                self._queue(peer, peer.codec.take_output())
                if message is None:
                    return
                peer.in_flight = True
                self._on_message(peer, message)
        finally:
            peer.pumping = False

    # -- writing ------------------------------------------------------------

    def send(self, peer_id: int, frames: List[bytes]) -> bool:
        """Queue the reply to connection *peer_id* and read on from it;
        False if that connection has gone (the reply is dropped)."""
        peer = self.peers.get(peer_id)
        if peer is None:
            return False
        peer.codec.send_message(frames)
        self._queue(peer, peer.codec.take_output())
        peer.in_flight = peer.waiting = False
        self._flush(peer)
        if not peer.pumping:
            self._pump(peer)
            self._settle(peer)
        return not peer.closed

    def _queue(self, peer: Peer, data: bytes) -> None:
        if data:
            peer.out.append(memoryview(data))
            peer.out_bytes += len(data)

    def _flush(self, peer: Peer) -> None:
        while peer.out and not peer.closed:
            chunk = peer.out[0]
            try:
                sent = peer.sock.send(chunk)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as err:
                self.close(peer, f'sending failed: {err}')
                return
            peer.out_bytes -= sent
            if sent == len(chunk):
                peer.out.popleft()
            else:
                peer.out[0] = chunk[sent:]

    def _settle(self, peer: Peer) -> None:
        """Check the bounds, and watch for what the connection waits for."""
        if peer.closed:
            return
        broken = self.budget.update(peer.meter, peer.codec.buffered + peer.out_bytes)
        if broken:
            self.close(peer, broken, warn=True)
            return
        events = 0
        if not peer.waiting and peer.out_bytes <= PAUSE_OUTPUT:
            events |= select.EPOLLIN
        if peer.out_bytes:
            events |= select.EPOLLOUT
        if events != peer.events:
            peer.events = events
            self.loop.change(peer.fd, events)

    # -- closing ------------------------------------------------------------

    def log_in(self, peer_id: int, logged_in: bool = True) -> None:
        """Apply the bounds of a logged-in connection (or, after a quit,
        of one that has not logged in) to *peer_id*."""
        peer = self.peers.get(peer_id)
        if peer is not None:
            self.budget.log_in(peer.meter, logged_in)

    def close(self, peer: Peer, reason: str, warn: bool = False) -> None:
        """Close *peer*'s connection (its memory goes with it)."""
        if peer.closed:
            return
        peer.closed = True
        (self._warnings.warning if warn else log.debug)(
            'closed connection %d from %s:%d: %s', peer.id, peer.remote[0],
            peer.remote[1], reason)
        self.loop.forget(peer.fd)
        peer.sock.close()
        peer.out.clear()
        peer.out_bytes = 0
        self.released += peer.meter.used
        self.budget.release(peer.meter)
        del self.peers[peer.id]
        self._on_closed(peer)

    def trim(self) -> None:
        """Give memory back to the system if closed connections let go
        of much since the last time (called once a second at most: it
        walks the allocator's free lists)."""
        if self.released >= TRIM_AFTER:
            self.released = 0
            self._malloc_trim()

    def close_all(self) -> None:
        for peer in list(self.peers.values()):
            self.close(peer, 'the proxy stops')
        self.listener.close()
