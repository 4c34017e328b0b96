"""The proxy's tier-2 connections: logged-in classic-protocol links to the daemon.

Why not NICOS's own clients: its ZeroMQ client mishandles error replies,
and `NicosClient` gives each request a blocking call. The proxy serves
every client from one thread, so a link here is split in two: setting it
up (connect, banner, login, event connection) blocks and happens outside
the serving loop; then the sockets turn non-blocking and the link watches
them on the loop (`attach`): a request is written as far as the socket
takes it and the rest whenever it is writable, and replies are read as
they arrive. The loop never waits for the daemon.

Replies are read as plain data only (`classic`, the protocol's codec):
the daemon runs users' scripts, so a reply must not be able to run code
in the proxy, which holds the tier-2 passwords. For the same reason the
proxy logs in only to a daemon of the expected account: while the
daemon is down, another local account could bind its port and collect
the passwords. What is sent to the daemon are arguments the proxy has
already checked to be plain JSON data.
"""

from __future__ import annotations

import base64
import os
import select
import socket
import threading
import time
import uuid
from typing import Callable, Iterable, List, Optional

import rsa

from nicos_scriptserver.wire.peers import peer_uid
from nicos_scriptserver.proxy.classic import ALL_EVENTS, EventReader, \
    LinkError, RawEvent, Reply, ReplyReader, decode_reply, encode_request
from nicos_scriptserver.proxy.loop import EventLoop


def check_daemon_account(sock: socket.socket, expected_uid: int) -> None:
    """`LinkError` unless the process that accepted *sock* runs as
    *expected_uid* (the daemon's account)."""
    uid = peer_uid(sock)
    if uid != expected_uid:
        host, port = sock.getpeername()[:2]
        raise LinkError(f'the process listening on {host}:{port} runs as '
                        f'uid {uid}, not as the daemon\'s account (uid '
                        f'{expected_uid}): not sending it a password')


class DaemonLink:
    """One logged-in connection to the daemon, with one request at a time."""

    def __init__(self, host: str, port: int, login: str, password: str,
                 timeout: float = 10.0, daemon_uid: Optional[int] = None):
        self.address = (host, port)
        #: The account the daemon must run as (default: the proxy's own).
        self.daemon_uid = os.geteuid() if daemon_uid is None else daemon_uid
        self.login = login
        self._password = password
        self.timeout = timeout
        self.sock: Optional[socket.socket] = None
        self.event_sock: Optional[socket.socket] = None
        self.banner: dict = {}
        self.user_level: int = -1
        self._reader = ReplyReader()
        self._events = EventReader()
        #: What the command connection has not taken yet of a request.
        self._out = bytearray()
        # Serving on a loop: whether it watches for writability, and who
        # hears of a write that failed there.
        self._loop: Optional[EventLoop] = None
        self._writing = False
        self._on_broken: Callable[[LinkError], None] = lambda err: None

    # -- setting up (blocking) ---------------------------------------------

    def open(self, events: Iterable[str] = ()) -> 'DaemonLink':
        """Connect, log in, open the event connection and mask every event
        but *events*."""
        client_id = uuid.uuid4().bytes
        try:
            self.sock = socket.create_connection(self.address, self.timeout)
            check_daemon_account(self.sock, self.daemon_uid)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.sock.sendall(client_id)
            ok, self.banner = self._blocking_reply()
            key = rsa.PublicKey.load_pkcs1(base64.b64decode(self.banner['rsakey']))
            secret = base64.b64encode(rsa.encrypt(self._password.encode(), key))
            ok, reply = self.call('authenticate', [{
                'login': self.login, 'passwd': 'RSA:' + secret.decode(),
                'display': 'nicos-scriptserver proxy'}])
            if not ok:
                raise LinkError(f'the daemon refused the proxy\'s login as '
                                f'{self.login!r}: {reply}')
            self.user_level = reply['user_level']
            # The daemon queues events for every handler until its event
            # connection exists; without one it would stall and drop us.
            self.event_sock = socket.create_connection(self.address, self.timeout)
            check_daemon_account(self.event_sock, self.daemon_uid)
            self.event_sock.sendall(client_id)
            ok, reply = self.call('eventmask', [sorted(ALL_EVENTS - set(events))])
            if not ok:
                raise LinkError(f'the daemon refused the event mask: {reply}')
        except (OSError, KeyError, ValueError, TypeError) as err:
            self.close()
            raise LinkError(f'cannot log into the daemon at '
                            f'{self.address[0]}:{self.address[1]}: {err}') from err
        except LinkError:
            self.close()
            raise
        return self

    def call(self, command: str, args: list) -> Reply:
        """Send a request and wait for its reply (setup and tests only)."""
        self.send(command, args)
        return self._blocking_reply()

    def _blocking_reply(self) -> Reply:
        while True:
            data = self.sock.recv(65536)
            if not data:
                raise LinkError('the daemon closed the connection')
            replies = self._reader.feed(data)
            if replies:
                return decode_reply(*replies[0])

    # -- serving: on the loop, never waiting for the daemon ----------------

    def serve(self) -> None:
        """Switch to serving: non-blocking sockets (a timeout would cost a
        poll() call before every read and write)."""
        self.sock.setblocking(False)
        self.event_sock.setblocking(False)

    def attach(self, loop: EventLoop, on_reply: Callable[[], None],
               on_events: Callable[[], None],
               on_broken: Callable[[LinkError], None]) -> None:
        """Serve on *loop*: *on_reply*() when the command connection has
        something to read, *on_events*() when the event connection has,
        *on_broken*(error) when the rest of a request cannot be written."""
        self.serve()
        self._loop = loop
        self._on_broken = on_broken

        def ready(events: int) -> None:
            if events & select.EPOLLOUT and not self._write_rest():
                return
            if events & ~select.EPOLLOUT:
                on_reply()
        loop.watch(self.sock.fileno(), select.EPOLLIN, ready)
        loop.watch(self.event_sock.fileno(), select.EPOLLIN,
                   lambda _events: on_events())

    def send(self, command: str, args: list) -> None:
        """Send one request; its reply comes through `read_reply`. Serving,
        what the socket does not take at once is written when it is
        writable: the loop never waits for the daemon."""
        self._out += encode_request(command, args)
        self._write()

    def _write(self) -> None:
        try:
            while self._out:
                del self._out[:self.sock.send(self._out)]
        except BlockingIOError:
            pass
        except OSError as err:
            raise LinkError(f'sending to the daemon failed: {err}') from err
        writing = bool(self._out)
        if self._loop is not None and writing != self._writing:
            self._writing = writing
            self._loop.change(self.sock.fileno(), select.EPOLLIN | (
                select.EPOLLOUT if writing else 0))

    def _write_rest(self) -> bool:
        """Write on once the socket is writable; False if the link broke."""
        try:
            self._write()
        except LinkError as err:
            self._on_broken(err)
            return False
        return True

    def read_reply(self) -> Optional[Reply]:
        """Read what is available; the reply once it is complete."""
        try:
            data = self.sock.recv(65536)
        except (BlockingIOError, TimeoutError):
            return None
        except OSError as err:
            raise LinkError(f'the daemon connection broke: {err}') from err
        if not data:
            raise LinkError('the daemon closed the connection')
        replies = self._reader.feed(data)
        if not replies:
            return None
        if len(replies) > 1:
            raise LinkError('the daemon sent a reply nobody asked for')
        return decode_reply(*replies[0])

    def read_events(self) -> List[RawEvent]:
        """Read what is available of the event connection; the events
        completed (undecoded)."""
        return self._events.feed(self._read_event_bytes())

    def discard_events(self) -> None:
        """Read and drop event bytes (everything is masked; a few arrive
        before the mask is set)."""
        self._read_event_bytes()

    def _read_event_bytes(self) -> bytes:
        try:
            data = self.event_sock.recv(1 << 16)
        except (BlockingIOError, TimeoutError):
            return b''
        except OSError as err:
            raise LinkError(f'the daemon event connection broke: {err}') from err
        if not data:
            raise LinkError('the daemon closed the event connection')
        return data

    def close(self) -> None:
        """Close both connections (served on a loop: unwatched first, while
        their descriptor numbers are still theirs)."""
        for sock in (self.sock, self.event_sock):
            if sock is not None:
                if self._loop is not None:
                    self._loop.forget(sock.fileno())
                try:
                    sock.close()
                except OSError:
                    pass
        self.sock = self.event_sock = None
        self._loop = None


class Reopening:
    """When the openers of daemon links try again: after their backoff, or
    at once when another link has just reached the daemon. After a daemon
    restart the mirror's link may get in first; a client that sees the
    daemon's state through it must be able to act on it at once, not after
    the other links' backoff (up to 5 s)."""

    def __init__(self, stopping: threading.Event):
        self.stopping = stopping
        self._reached = threading.Condition()
        self._count = 0

    def count(self) -> int:
        """How many links have reached the daemon so far (for `wait`)."""
        with self._reached:
            return self._count

    def reached(self) -> None:
        """A link reached the daemon: the openers that wait try now."""
        with self._reached:
            self._count += 1
            self._reached.notify_all()

    def wait(self, seconds: float, since: int) -> bool:
        """Wait *seconds*, or less if a link reached the daemon after
        `count` was *since*; whether the proxy is stopping."""
        deadline = time.monotonic() + seconds
        with self._reached:
            while self._count == since and not self.stopping.is_set():
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                # Slices, so that stopping (an Event) is seen promptly too.
                self._reached.wait(min(left, 0.1))
        return self.stopping.is_set()


def open_later(opener: Callable[[], DaemonLink], delay: float, loop: EventLoop,
               reopening: Reopening, opened: Callable[[DaemonLink], None],
               failed: Callable[[LinkError], None], name: str) -> None:
    """Open a link in a thread named *name* (opening blocks) after *delay*
    seconds, trying again after 0.2 s, doubling up to 5 s (at once when
    another link got in, see `Reopening`), until it opens or the proxy
    stops; *opened*(link) and *failed*(error) run on *loop*."""
    stopping = reopening.stopping

    def run() -> None:
        backoff = max(delay, 0.2)
        if stopping.wait(delay):
            return
        while not stopping.is_set():
            since = reopening.count()
            try:
                link = opener()
            except LinkError as err:
                loop.post(lambda err=err: failed(err))
                if reopening.wait(backoff, since):
                    return
                backoff = min(backoff * 2, 5.0)
                continue
            reopening.reached()
            loop.post(lambda: link.close() if stopping.is_set() else opened(link))
            return
    threading.Thread(target=run, daemon=True, name=name).start()
