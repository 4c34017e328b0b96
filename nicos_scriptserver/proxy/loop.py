"""The proxy's event loop: one thread, epoll, timers, and work handed in
from other threads.

Everything that touches client connections and daemon links runs in this
one thread; threads that do slow work (scrypt, opening links) hand their
results back with `post`, which wakes the loop through a socket pair.
"""

from __future__ import annotations

import collections
import heapq
import itertools
import math
import select
import socket
import threading
import time
from typing import Callable, Deque, Dict, List, Tuple


class EventLoop:
    """epoll with a handler per descriptor, timers and posted callbacks."""

    def __init__(self):
        self._epoll = select.epoll()
        self._handlers: Dict[int, Callable[[int], None]] = {}
        self._posted: Deque[Callable[[], None]] = collections.deque()
        self._timers: List[Tuple[float, int, Callable[[], None]]] = []
        self._timer_order = itertools.count()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self.watch(self._wake_r.fileno(), select.EPOLLIN, self._run_posted)

    # -- descriptors ----------------------------------------------------------

    def watch(self, fd: int, events: int, handler: Callable[[int], None]) -> None:
        """Call *handler*(events) whenever *fd* has one of *events*."""
        self._epoll.register(fd, events)
        self._handlers[fd] = handler

    def change(self, fd: int, events: int) -> None:
        self._epoll.modify(fd, events)

    def forget(self, fd: int) -> None:
        """Stop watching *fd*; call it before the descriptor is closed."""
        if self._handlers.pop(fd, None) is not None:
            self._epoll.unregister(fd)

    # -- callbacks ------------------------------------------------------------

    def post(self, callback: Callable[[], None]) -> None:
        """Run *callback* in the loop's thread (callable from any thread)."""
        self._posted.append(callback)
        try:
            self._wake_w.send(b'x')
        except OSError:   # the pipe is full (a wake-up is pending) or closed
            pass

    def call_in_loop(self, callback: Callable[[], None],
                     timeout: float = 10.0) -> bool:
        """Run *callback* in the loop's thread and wait until it ran (from
        another thread only); False if it did not run in time, e.g.
        because the loop is stopping."""
        ran = threading.Event()

        def run() -> None:
            try:
                callback()
            finally:
                ran.set()
        self.post(run)
        return ran.wait(timeout)

    def call_later(self, delay: float, callback: Callable[[], None]) -> None:
        """Run *callback* in the loop's thread after *delay* seconds."""
        heapq.heappush(self._timers, (time.monotonic() + delay,
                                      next(self._timer_order), callback))

    def _run_posted(self, _events: int) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except BlockingIOError:
            pass
        while self._posted:
            self._posted.popleft()()

    # -- running --------------------------------------------------------------

    def run(self, stopping: threading.Event, every: float,
            tick: Callable[[float], None]) -> None:
        """Serve until *stopping* is set (a `post` makes the loop notice);
        *tick*(now) runs every *every* seconds."""
        next_tick = time.monotonic() + every
        while not stopping.is_set():
            wake_at = min(next_tick, self._timers[0][0] if self._timers
                          else math.inf)
            for fd, events in self._epoll.poll(max(wake_at - time.monotonic(), 0.0)):
                handler = self._handlers.get(fd)
                if handler is not None:
                    handler(events)
            now = time.monotonic()
            while self._timers and self._timers[0][0] <= now:
                heapq.heappop(self._timers)[2]()
            if now >= next_tick:
                tick(now)
                next_tick = now + every

    def close(self) -> None:
        self._epoll.close()
        self._wake_r.close()
        self._wake_w.close()
