"""A few daemon links per client level, shared by all of that level's clients.

Why a pool and not one daemon connection per client: each daemon
connection costs the daemon two threads and an event queue, and 200 idle
IBEX clients would cost 400 threads. Clients of one level share a small
number of links logged in as that level's NICOS account (tier 2); a
request waits for a free link in arrival order.

Links are opened (and reopened after the daemon restarts) by background
threads, since opening blocks; everything else runs in the proxy's serving
thread, which opened links are handed back to, and where each link
watches its own sockets.
"""

from __future__ import annotations

import collections
import logging
import time
from typing import Callable, Deque, Dict, List, Optional, Tuple

from nicos_scriptserver.proxy.classic import LinkError
from nicos_scriptserver.proxy.connection import Failed, Forward, Outcome
from nicos_scriptserver.proxy.daemonlink import (DaemonLink, Reopening,
                                                  open_later)
from nicos_scriptserver.proxy.loop import EventLoop

log = logging.getLogger('nicos_scriptserver.proxy')


class LinkPool:
    """The daemon links of one role and the requests waiting for them;
    *finished* hears how each request ended (answered or failed)."""

    def __init__(self, role: str, opener: Callable[[], DaemonLink], size: int,
                 loop: EventLoop, reopening: Reopening,
                 finished: Callable[[Forward, Outcome], None]):
        self.role = role
        self._opener = opener
        self.size = size
        self.loop = loop
        self._reopening = reopening
        self._stopping = reopening.stopping
        self._finished = finished
        self.links: List[DaemonLink] = []
        self.in_flight: Dict[DaemonLink, Forward] = {}
        #: The requests waiting for a free link, and since when.
        self.waiting: Deque[Tuple[float, Forward]] = collections.deque()
        self.user_level: Optional[int] = None
        self.last_error = 'not connected to the daemon yet'
        #: How many links had reached the daemon (`Reopening.count`) when
        #: this pool last lost or failed to open one.
        self._reached_before_failure = reopening.count()

    def start(self) -> None:
        """Open one link now (`LinkError` if the daemon refuses it), the
        others in the background."""
        self._serve(self._opener())
        for _ in range(self.size - 1):
            self._open_later(0.0)

    def _open_later(self, delay: float) -> None:
        open_later(self._opener, delay, self.loop, self._reopening, self._add,
                   self._failed, f'proxy link opener ({self.role})')

    def _failed(self, err: LinkError) -> None:
        if str(err) != self.last_error:
            log.warning('%s link: %s', self.role, err)
        self._lost(err)
        if not self.links:
            self._fail_waiting()

    def _fail_waiting(self) -> None:
        while self.waiting:
            self._finished(self.waiting.popleft()[1], Failed(
                f'the daemon is not reachable: {self.last_error}',
                reached=False))

    def _lost(self, err: LinkError) -> None:
        self.last_error = str(err)
        self._reached_before_failure = self._reopening.count()

    def _add(self, link: DaemonLink) -> None:
        self._serve(link)
        log.info('%s link logged into the daemon as %r (level %d)',
                 self.role, link.login, link.user_level)
        self._dispatch()

    def _serve(self, link: DaemonLink) -> None:
        link.attach(self.loop, lambda: self._read_reply(link),
                    lambda: self._read_events(link),
                    lambda err: self._broken(link, err))
        self.links.append(link)
        self.user_level = link.user_level

    @property
    def unreachable(self) -> Optional[str]:
        """Why a request cannot be served now or once a link is free
        (None: it can).

        With no link, a request still waits for one if another link has
        reached the daemon since this pool's last failure: after a daemon
        restart the mirror may show its state before this pool's openers,
        which try at once then (`Reopening`), are logged in; a command a
        person sends on that state must not fail."""
        if self.links or \
                self._reopening.count() != self._reached_before_failure:
            return None
        return f'the daemon is not reachable: {self.last_error}'

    @property
    def banner(self) -> dict:
        """The daemon's banner ({} while there is no link)."""
        return self.links[0].banner if self.links else {}

    def submit(self, forward: Forward) -> None:
        self.waiting.append((time.monotonic(), forward))
        self._dispatch()

    def _dispatch(self) -> None:
        for link in self.links:
            if not self.waiting:
                return
            if link not in self.in_flight:
                waiting = self.waiting.popleft()
                forward = self.in_flight[link] = waiting[1]
                try:
                    link.send(forward.command, forward.args)
                except LinkError as err:
                    # It did not reach the daemon: it waits for another link.
                    self.waiting.appendleft(waiting)
                    del self.in_flight[link]
                    self._drop(link, err)
                    return

    def _read_reply(self, link: DaemonLink) -> None:
        try:
            reply = link.read_reply()
        except LinkError as err:
            self._broken(link, err)
            return
        if reply is None:
            return
        forward = self.in_flight.pop(link)
        self._dispatch()
        self._finished(forward, reply)

    def _read_events(self, link: DaemonLink) -> None:
        # Everything is masked; a few arrive before the mask is set.
        try:
            link.discard_events()
        except LinkError as err:
            self._broken(link, err)

    def _broken(self, link: DaemonLink, err: LinkError) -> None:
        """A link broke while serving: its request fails, and so do those
        waiting if no link is left."""
        failed = self._drop(link, err)
        if failed:
            self._finished(failed, Failed(
                f'the connection to the daemon broke: {err}', reached=True))
        if not self.links:
            self._fail_waiting()

    def _drop(self, link: DaemonLink, err: LinkError) -> Optional[Forward]:
        """Drop a broken link (a new one is opened); returns the request it
        was serving."""
        log.warning('%s link to the daemon broke: %s', self.role, err)
        self._lost(err)
        if link in self.links:
            self.links.remove(link)
            self._open_later(0.2)
        link.close()
        return self.in_flight.pop(link, None)

    def expire(self, now: float, limit: float) -> None:
        """Fail the requests that waited for a link longer than *limit*."""
        while self.waiting and now - self.waiting[0][0] > limit:
            self._finished(self.waiting.popleft()[1], Failed(
                'the daemon is busy: no free connection to it within '
                f'{limit:.0f} s', reached=False))

    def close(self) -> None:
        for link in self.links:
            link.close()
        self.links.clear()
