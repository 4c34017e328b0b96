"""The proxy's event socket: a ZMTP PUB on the request port + 1, where a
NICOS ZeroMQ client connects its SUB socket (I/O edge; the messages and
subscriptions are in `pubsub`, the wire protocol in `zmtp`).

Who gets events: a connection from loopback whose local account (the
owner of the client's end of the TCP connection, `peers.tcp_owner`) has
a logged-in session on the request socket. SUB connections carry no
credentials, and a NICOS client connects its SUB socket right after its
login, so the account is what ties the two. The check runs off the loop
(it reads ``/proc/net/tcp``); until it answers, the connection gets
nothing. When the account's last session ends (quit, closed, expired),
its event connections are closed too. The events are the daemon's own,
which any login, viewers included, may see; another local account without
a login gets no byte of them.

Bounds: at most `max_subscribers` connections; bytes held per connection
and in all (`budget`, with limits of its own so that subscribers never
take room from requests). A subscriber that does not read its events is
closed once its backlog passes the bound, not buffered without limit.
Events are encoded once and the same bytes are queued for every
subscriber.
"""

from __future__ import annotations

import collections
import itertools
import logging
import select
import socket
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, Deque, Dict, Optional, Tuple

from nicos_scriptserver.wire.peers import tcp_owner
from nicos_scriptserver.proxy import zmtp
from nicos_scriptserver.proxy.budget import Budget, Limits, Meter
from nicos_scriptserver.proxy.listener import Listener
from nicos_scriptserver.proxy.logquota import LogQuota
from nicos_scriptserver.proxy.loop import EventLoop
from nicos_scriptserver.proxy.protocol import ProtocolError
from nicos_scriptserver.proxy.pubsub import Subscriptions, event_message
from nicos_scriptserver.proxy.sessions import Session
from nicos_scriptserver.proxy.zmtpwire import PUB

log = logging.getLogger('nicos_scriptserver.proxy')

KIB, MIB = 1024, 1024 * 1024
#: The event socket's bounds: a subscription message is a few bytes (a
#: SUBSCRIBE command at most `zmtp.MAX_COMMAND_BYTES`); a subscriber may
#: hold a backlog of events up to `logged_in`.
EVENT_LIMITS = Limits(message=4 * KIB, before_login=128 * KIB,
                      logged_in=16 * MIB, before_login_total=8 * MIB,
                      total=64 * MIB, reserved=128 * KIB)
# Bytes taken from a subscriber per read (subscriptions are small).
RECV_BYTES = 16 * KIB



class EventAccess:
    """Which local accounts have a login on the request socket, and whose
    an event connection is (found off the loop: `look_up`)."""

    def __init__(self, post: Callable[[Callable[[], None]], None]):
        self._post = post
        self._logins: collections.Counter = collections.Counter()
        self._lookups = ThreadPoolExecutor(1, 'proxy event account lookup')
        #: Hears of an account whose last login ended.
        self.on_last_logout: Callable[[int], None] = lambda uid: None

    def allows(self, uid: Optional[int]) -> bool:
        return uid is not None and self._logins[uid] > 0

    def logged_in(self, session: Session, account: Optional[int]) -> None:
        """*session* logged in; *account*: its uid, if known."""
        self.logged_out(session)   # a second login on one connection
        if account is not None:
            session.account = account
            self._logins[account] += 1

    def logged_out(self, session: Session) -> None:
        """*session* quit, closed or expired (once is enough)."""
        account, session.account = session.account, None
        if account is None:
            return
        self._logins[account] -= 1
        if self._logins[account] <= 0:
            del self._logins[account]
            self.on_last_logout(account)

    def look_up(self, remote: Tuple, local: Tuple,
                found: Callable[[Optional[int]], None]) -> None:
        """Call *found* on the loop with the uid of the connection from
        *remote* to *local* (None if unknown); reading /proc/net/tcp takes
        a millisecond or more, so not on the loop."""
        def done(future: Future) -> None:
            uid = None if future.exception() else future.result()
            self._post(lambda: found(uid))
        try:
            self._lookups.submit(tcp_owner, remote, local).add_done_callback(done)
        except RuntimeError:   # shutting down
            pass

    def close(self) -> None:
        self._lookups.shutdown(wait=False, cancel_futures=True)


class Subscriber:
    """One connection to the event socket."""

    def __init__(self, sub_id: int, sock: socket.socket, remote: Tuple,
                 local: Tuple):
        self.id = sub_id
        self.sock = sock
        self.fd = sock.fileno()
        self.remote, self.local = remote, local
        self.codec = zmtp.ServerConnection(EVENT_LIMITS.message, PUB)
        self.subscriptions = Subscriptions()
        self.meter = Meter()
        self.out: Deque[memoryview] = collections.deque()
        self.out_bytes = 0
        #: The uid its account was found to be, once it may have events.
        self.account: Optional[int] = None
        self.opened = time.monotonic()
        self.closed = False
        self.events = 0


class Publisher:
    """The event socket: subscribers, and events sent to them."""

    def __init__(self, loop: EventLoop, access: EventAccess,
                 max_subscribers: int = 256, handshake_timeout: float = 10.0,
                 limits: Limits = EVENT_LIMITS):
        self.loop = loop
        self.access = access
        access.on_last_logout = self.close_account
        self.max_subscribers = max_subscribers
        self.handshake_timeout = handshake_timeout
        self.budget = Budget(limits)
        self.subscribers: Dict[int, Subscriber] = {}
        self._ids = itertools.count(1)
        self._warnings = LogQuota(log)
        self.listener = Listener(loop, self._accepted, self._warnings)

    def listen(self, host: str, port: int) -> int:
        """Bind the event socket; its port."""
        return self.listener.listen(host, port)

    # -- connections --------------------------------------------------------

    def _accepted(self, sock: socket.socket, remote: Tuple, local: Tuple) -> None:
        if len(self.subscribers) >= self.max_subscribers:
            self._warnings.warning('%d event connections: refusing new ones',
                                   len(self.subscribers))
            sock.close()
            return
        sub = Subscriber(next(self._ids), sock, remote, local)
        self.subscribers[sub.id] = sub
        sub.events = select.EPOLLIN
        self.loop.watch(sub.fd, sub.events,
                        lambda events, sub=sub: self._ready(sub, events))
        self._queue(sub, sub.codec.take_output())   # our greeting
        self._flush(sub)
        self._settle(sub)
        self.access.look_up(remote, local,
                            lambda uid, sub=sub: self._looked_up(sub, uid))

    def _looked_up(self, sub: Subscriber, uid: Optional[int]) -> None:
        if sub.closed:
            return
        if not self.access.allows(uid):
            self.close(sub, f'uid {uid} has no login on the request socket',
                       warn=True)
            return
        sub.account = uid
        self.budget.log_in(sub.meter)
        log.debug('event connection %d of uid %d may have events', sub.id, uid)

    def close_account(self, uid: int) -> None:
        """The last login of *uid* ended: its event connections close."""
        for sub in list(self.subscribers.values()):
            if sub.account == uid:
                self.close(sub, f'the last login of uid {uid} ended')

    # -- reading subscriptions ------------------------------------------------

    def _ready(self, sub: Subscriber, events: int) -> None:
        if events & select.EPOLLOUT:
            self._flush(sub)
        if not sub.closed and events & (select.EPOLLIN | select.EPOLLHUP
                                        | select.EPOLLERR):
            self._read(sub)
        self._settle(sub)

    def _read(self, sub: Subscriber) -> None:
        try:
            data = sub.sock.recv(RECV_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as err:
            self.close(sub, f'reading failed: {err}')
            return
        if not data:
            self.close(sub, 'closed by the client')
            return
        sub.codec.receive(data)
        try:
            while (message := sub.codec.next_message()) is not None:
                sub.subscriptions.feed(message)
        except zmtp.ZmtpError as err:
            self._queue(sub, sub.codec.take_output())
            self._flush(sub)
            self.close(sub, str(err), warn=True)
            return
        self._queue(sub, sub.codec.take_output())   # READY, PONG
        self._flush(sub)

    # -- sending events -------------------------------------------------------

    def publish(self, name: str, data: Any) -> None:
        """Send one event to every subscriber that may have it and asked
        for it (encoded once, and only if someone wants it)."""
        message = None
        for sub in list(self.subscribers.values()):
            if sub.account is None or not sub.subscriptions.wanted \
                    or sub.codec.state is not zmtp.State.TRAFFIC:
                continue
            if message is None:
                try:
                    message = event_message(name, data)
                except ProtocolError as err:
                    self._warnings.warning('not published: %s event: %s',
                                           name, err)
                    return
            self._queue(sub, message)
            self._flush(sub)
            self._settle(sub)

    def _queue(self, sub: Subscriber, data: bytes) -> None:
        if data:
            sub.out.append(memoryview(data))
            sub.out_bytes += len(data)

    def _flush(self, sub: Subscriber) -> None:
        while sub.out and not sub.closed:
            chunk = sub.out[0]
            try:
                sent = sub.sock.send(chunk)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as err:
                self.close(sub, f'sending failed: {err}')
                return
            sub.out_bytes -= sent
            if sent == len(chunk):
                sub.out.popleft()
            else:
                sub.out[0] = chunk[sent:]

    def _settle(self, sub: Subscriber) -> None:
        """Check the bounds, and watch for what the connection waits for."""
        if sub.closed:
            return
        broken = self.budget.update(sub.meter, sub.codec.buffered + sub.out_bytes)
        if broken:
            self.close(sub, f'does not read its events: {broken}', warn=True)
            return
        events = select.EPOLLIN | (select.EPOLLOUT if sub.out_bytes else 0)
        if events != sub.events:
            sub.events = events
            self.loop.change(sub.fd, events)

    # -- closing --------------------------------------------------------------

    def sweep(self, now: float) -> None:
        """Close connections that have not finished their handshake, or
        whose account was not confirmed, in time."""
        for sub in list(self.subscribers.values()):
            if (sub.account is None or sub.codec.state is not zmtp.State.TRAFFIC) \
                    and now - sub.opened > self.handshake_timeout:
                self.close(sub, 'no handshake or login in time')

    def close(self, sub: Subscriber, reason: str, warn: bool = False) -> None:
        """Close one event connection (its memory goes with it)."""
        if sub.closed:
            return
        sub.closed = True
        (self._warnings.warning if warn else log.debug)(
            'closed event connection %d from %s:%d: %s', sub.id, sub.remote[0],
            sub.remote[1], reason)
        self.loop.forget(sub.fd)
        sub.sock.close()
        sub.out.clear()
        sub.out_bytes = 0
        self.budget.release(sub.meter)
        del self.subscribers[sub.id]

    def close_all(self) -> None:
        for sub in list(self.subscribers.values()):
            self.close(sub, 'the proxy stops')
        self.listener.close()
