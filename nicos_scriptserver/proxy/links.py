"""A few daemon links per client level, shared by all of that level's clients.

Why a pool and not one daemon connection per client: each daemon
connection costs the daemon two threads and an event queue, and 200 idle
IBEX clients would cost 400 threads. Clients of one level share a small
number of links logged in as that level's NICOS account (tier 2); a
request waits for a free link in arrival order.

Links are opened (and reopened after the daemon restarts) by background
threads, since opening blocks; everything else runs in the proxy's serving
thread, which `post` hands results back to, and where `LinkWatch` reads
their replies.
"""

from __future__ import annotations

import collections
import logging
import select
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Deque, Dict, List, Optional, Tuple

from nicos_scriptserver.proxy.classic import LinkError, Reply
from nicos_scriptserver.proxy.daemonlink import DaemonLink
from nicos_scriptserver.proxy.loop import EventLoop
from nicos_scriptserver.proxy.protocol import ProtocolError, error_reply, \
    ok_reply
from nicos_scriptserver.proxy.transport import Route

log = logging.getLogger('nicos_scriptserver.proxy')


@dataclass
class Forward:
    """A client request on its way to the daemon."""

    route: Route
    command: str
    args: list
    queued_at: float = field(default_factory=time.monotonic)


class LinkPool:
    """The daemon links of one role and the requests waiting for them."""

    def __init__(self, role: str, opener: Callable[[], DaemonLink], size: int,
                 post: Callable[[Callable[[], None]], None],
                 changed: Callable[[], None], stopping: threading.Event):
        self.role = role
        self._opener = opener
        self.size = size
        self._post = post
        self._changed = changed
        self._stopping = stopping
        self.links: List[DaemonLink] = []
        self.in_flight: Dict[DaemonLink, Forward] = {}
        self.waiting: Deque[Forward] = collections.deque()
        self.user_level: Optional[int] = None
        self.last_error = 'not connected to the daemon yet'

    def start(self) -> None:
        """Open one link now (`LinkError` if the daemon refuses it), the
        others in the background."""
        link = self._opener()
        link.serve()
        self.links.append(link)
        self.user_level = link.user_level
        self._changed()
        for _ in range(self.size - 1):
            self._open_later(0.0)

    def _open_later(self, delay: float) -> None:
        threading.Thread(target=self._open, args=(delay,), daemon=True,
                         name=f'proxy link opener ({self.role})').start()

    def _open(self, delay: float) -> None:
        backoff = max(delay, 0.2)
        if self._stopping.wait(delay):
            return
        while not self._stopping.is_set():
            try:
                link = self._opener()
            except LinkError as err:
                self._post(lambda err=err: self._failed(err))
                if self._stopping.wait(backoff):
                    return
                backoff = min(backoff * 2, 5.0)
                continue
            self._post(lambda: self._add(link))
            return

    def _failed(self, err: LinkError) -> None:
        if str(err) != self.last_error:
            log.warning('%s link: %s', self.role, err)
        self.last_error = str(err)

    def _add(self, link: DaemonLink) -> None:
        if self._stopping.is_set():
            link.close()
            return
        link.serve()
        self.links.append(link)
        self.user_level = link.user_level
        log.info('%s link logged into the daemon as %r (level %d)',
                 self.role, link.login, link.user_level)
        self._changed()
        self._dispatch()

    @property
    def available(self) -> bool:
        """Whether a request can be served now or once a link is free."""
        return bool(self.links)

    def submit(self, forward: Forward) -> None:
        self.waiting.append(forward)
        self._dispatch()

    def _dispatch(self) -> None:
        for link in self.links:
            if not self.waiting:
                return
            if link not in self.in_flight:
                forward = self.waiting.popleft()
                self.in_flight[link] = forward
                try:
                    link.send(forward.command, forward.args)
                except LinkError as err:
                    self.waiting.appendleft(forward)
                    del self.in_flight[link]
                    self.broken(link, err)
                    return

    def reply_ready(self, link: DaemonLink) -> Optional[Tuple[Forward, Reply]]:
        """Read from *link*; the request and its reply once complete."""
        reply = link.read_reply()
        if reply is None:
            return None
        forward = self.in_flight.pop(link)
        self._dispatch()
        return forward, reply

    def broken(self, link: DaemonLink, err: Exception) -> Optional[Forward]:
        """Drop a broken link (a new one is opened); returns the request it
        was serving, which has failed."""
        log.warning('%s link to the daemon broke: %s', self.role, err)
        self.last_error = str(err)
        if link in self.links:
            self.links.remove(link)
            # Before the sockets close: the loop stops watching them while
            # their descriptor numbers are still theirs.
            self._changed()
            self._open_later(0.2)
        link.close()
        return self.in_flight.pop(link, None)

    def expired(self, now: float, limit: float) -> List[Forward]:
        """Remove and return the requests that waited longer than *limit*."""
        gone = []
        while self.waiting and now - self.waiting[0].queued_at > limit:
            gone.append(self.waiting.popleft())
        return gone

    def drain(self) -> List[Forward]:
        """Remove every pending request (when no link is left)."""
        gone = list(self.waiting)
        self.waiting.clear()
        return gone

    def close(self) -> None:
        for link in self.links:
            link.close()
        self.links.clear()


class LinkWatch:
    """The sockets of every pool's links on the serving loop: replies go
    back through *reply*, and *done* hears of each request that ended
    (answered or failed)."""

    def __init__(self, loop: EventLoop,
                 reply: Callable[[Route, List[bytes]], None],
                 done: Callable[[Forward], None]):
        self.loop = loop
        self.pools: Dict[str, LinkPool] = {}
        self._reply = reply
        self._done = done
        self._fds: Dict[int, Tuple[LinkPool, DaemonLink, bool]] = {}

    def changed(self) -> None:
        """Watch the sockets of the pools' links, and only those. Called
        before a dropped link's sockets close, so that no descriptor is
        forgotten after its number went to a new connection."""
        current = {}
        for pool in self.pools.values():
            for link in pool.links:
                for sock, is_events in ((link.sock, False), (link.event_sock, True)):
                    current[sock.fileno()] = (pool, link, is_events)
        for fd, (_, link, _) in list(self._fds.items()):
            if fd not in current or current[fd][1] is not link:
                self.loop.forget(fd)
                del self._fds[fd]
        for fd, entry in current.items():
            if fd not in self._fds:
                self._fds[fd] = entry
                self.loop.watch(fd, select.EPOLLIN,
                                lambda _events, entry=entry: self._serve(*entry))

    def _serve(self, pool: LinkPool, link: DaemonLink, is_events: bool) -> None:
        if link not in pool.links:
            return
        try:
            if is_events:
                link.discard_events()
                return
            done = pool.reply_ready(link)
        except LinkError as err:
            failed = pool.broken(link, err)
            if failed:
                self._done(failed)
                self._reply(failed.route, error_reply(
                    f'the connection to the daemon broke: {err}'))
            if not pool.links:
                for waiting in pool.drain():
                    self._reply(waiting.route, error_reply(
                        f'the daemon is not reachable: {err}'))
            return
        if done is None:
            return
        forward, (ok, payload) = done
        self._done(forward)
        if not ok:
            self._reply(forward.route, error_reply(str(payload)))
            return
        try:
            frames = ok_reply(payload)
        except ProtocolError as err:
            frames = error_reply(f'{forward.command}: {err}')
        self._reply(forward.route, frames)
