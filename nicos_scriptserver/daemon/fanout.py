"""Sends the daemon's events to every client from one thread.

NICOS gives each client connection an event sender thread, fed by a queue.
An event to 50 watching clients then woke 50 threads, which took turns at
the interpreter lock (each twice more, once per ``sendall``): the last
client got a progress report 20 to 50 ms after the first. Here the thread
that emits an event writes it to every client's socket without blocking,
and one thread sends what a socket could not take at once when it can.

An event that the next one soon replaces (the script's line, which NICOS
reports as each line starts: two events per turn of a loop) is left to
the fan-out thread instead, and replaces one of its kind that a client
has not been sent any of yet. A send per event and client from the
script thread made each line of a job cost three times what it costs on
stock NICOS with six clients; sent whole, a fast loop's hundred thousand
lines a second outran the clients, which were dropped for not reading.
"""

import collections
import itertools
import selectors
import socket
import threading
import time
from typing import (Callable, Deque, Dict, Hashable, Iterable, List,
                    Optional, Tuple)

#: A client whose socket took nothing for this long is dropped (NICOS: a
#: ``sendall`` blocked for 60 s).
STALL_SECONDS = 60.0
#: Frames sent with one system call at most (Linux takes up to 1024).
FRAMES_PER_SEND = 256


class _Outbox:
    """What a client has not been sent yet."""

    def __init__(self) -> None:
        self.sock: Optional[socket.socket] = None
        self.frames: Deque[memoryview] = collections.deque()
        self.size = 0
        #: When a send last found the socket full (None: it took all).
        self.stalled_since: Optional[float] = None
        #: The key of the last frame (see `EventFanout.post`).
        self.last_key: Optional[Hashable] = None
        #: Whether part of the first frame has been sent.
        self.partly_sent = False

    def put(self, frame: memoryview, key: Optional[Hashable]) -> None:
        """Queue *frame*; one with a *key* replaces the last frame if that
        has the same key and none of it has been sent."""
        frames = self.frames
        if key is not None and key == self.last_key and frames and \
                not (self.partly_sent and len(frames) == 1):
            self.size -= len(frames[-1])
            frames[-1] = frame
        else:
            frames.append(frame)
        self.size += len(frame)
        self.last_key = key


class EventFanout:
    """The clients' event connections and what each is still to get.

    A client is added when it connects (events may be emitted before its
    event connection arrives: they wait) and gets its socket with
    `attach`; the frames are shared by all outboxes, not copied.
    *drop* is called, outside any lock of this class, for a client that
    has *backlog* bytes or more waiting when the next event comes, whose
    socket took nothing for *stall* seconds, or whose connection broke; it
    closes the connection.
    """

    def __init__(self, drop: Callable[[Hashable, str], None], backlog: int,
                 stall: float = STALL_SECONDS) -> None:
        self._drop = drop
        self._backlog = backlog
        self._stall = stall
        # Taken for every change of an outbox and every send, so that the
        # frames of concurrent emits reach each client whole and in order.
        # Sends never block, so nobody waits long for it.
        self._lock = threading.Lock()
        self._outboxes: Dict[Hashable, _Outbox] = {}
        self._selector = selectors.DefaultSelector()
        # Set while the fan-out thread has been woken and has not yet
        # looked at the outboxes: further keyed frames need no wake-up.
        self._woken = False
        self._wake_read, self._wake_write = socket.socketpair()
        self._wake_read.setblocking(False)
        self._wake_write.setblocking(False)
        self._selector.register(self._wake_read, selectors.EVENT_READ)
        threading.Thread(target=self._run, name='event fan-out',
                         daemon=True).start()

    def add(self, client: Hashable) -> None:
        """A client connected: keep its events until it gets a socket."""
        with self._lock:
            self._outboxes[client] = _Outbox()

    def attach(self, client: Hashable, sock: socket.socket) -> bool:
        """*client*'s event connection arrived: send it what waited.
        False if the client is gone (then nothing keeps *sock*)."""
        with self._lock:
            outbox = self._outboxes.get(client)
            if outbox is None:
                return False
            try:
                sock.setblocking(False)
            except OSError:
                # its connection closed it meanwhile
                return False
            outbox.sock = sock
        self._wake()
        return True

    def remove(self, client: Hashable) -> None:
        """Forget *client* (before its socket is closed: the selector must
        not keep a descriptor number that a new connection may reuse)."""
        with self._lock:
            outbox = self._outboxes.pop(client, None)
            if outbox is not None and outbox.stalled_since is not None:
                self._selector.unregister(outbox.sock)

    def post(self, clients: Iterable[Hashable], frame: bytes,
             key: Optional[Hashable] = None) -> None:
        """Send *frame* to each of *clients*, as far as their sockets take
        it now; the rest follows from the fan-out thread.

        A frame with a *key* is left to the fan-out thread, and replaces
        a client's last frame if that has the same key and none of it has
        been sent yet. A client's frames go out in the order posted.

        The emitting thread pays for these sends. Leaving them all to the
        fan-out thread was measured too (bench_load): the script thread
        reported progress about 30% more often, but events reached the
        clients later (p50 7-8 ms instead of 3 ms, p99 20-43 ms)."""
        view = memoryview(frame)
        dropped = []
        wake = False
        with self._lock:
            for client in clients:
                outbox = self._outboxes.get(client)
                if outbox is None:
                    continue
                # As NICOS's queue: an event goes in while the backlog is
                # under the limit.
                if outbox.size >= self._backlog:
                    dropped.append((client, f'{outbox.size} bytes of events '
                                    f'not read'))
                    self._forget(client, outbox)
                    continue
                outbox.put(view, key)
                # A full socket is the fan-out thread's, when it can write.
                if outbox.stalled_since is not None:
                    continue
                if key is not None:
                    wake = not self._woken
                    self._woken = True
                else:
                    self._flush(client, outbox, dropped)
        if wake:
            self._wake()
        for client, reason in dropped:
            self._drop(client, reason)

    def _flush(self, client: Hashable, outbox: _Outbox,
               dropped: List[Tuple[Hashable, str]]) -> None:
        """`_send`; a client whose connection broke goes to *dropped*."""
        reason = self._send(outbox)
        if reason:
            dropped.append((client, reason))
            self._forget(client, outbox)

    def _send(self, outbox: _Outbox) -> Optional[str]:
        """Send what *outbox* holds without blocking; watch its socket when
        it is full. The reason to drop the client, if any."""
        if outbox.sock is None:
            return None
        frames, size = outbox.frames, outbox.size
        try:
            while frames:
                sent = outbox.sock.sendmsg(
                    itertools.islice(frames, FRAMES_PER_SEND))
                outbox.size -= sent
                while sent and sent >= len(frames[0]):
                    sent -= len(frames.popleft())
                    outbox.partly_sent = False
                if sent:
                    frames[0] = frames[0][sent:]
                    outbox.partly_sent = True
        except BlockingIOError:
            if outbox.stalled_since is None:
                self._selector.register(outbox.sock, selectors.EVENT_WRITE,
                                        outbox)
            if outbox.stalled_since is None or outbox.size < size:
                outbox.stalled_since = time.monotonic()
            return None
        except OSError as err:
            return f'connection broken: {err}'
        if outbox.stalled_since is not None:
            outbox.stalled_since = None
            self._selector.unregister(outbox.sock)
        return None

    def _forget(self, client: Hashable, outbox: _Outbox) -> None:
        del self._outboxes[client]
        if outbox.stalled_since is not None:
            self._selector.unregister(outbox.sock)

    def _wake(self) -> None:
        try:
            self._wake_write.send(b'\0')
        except BlockingIOError:
            pass  # already woken

    def _run(self) -> None:
        while True:
            ready = self._selector.select(min(self._stall, 1.0))
            try:
                while self._wake_read.recv(4096):
                    pass
            except BlockingIOError:
                pass
            writable = {id(key.data) for key, _ in ready if key.data}
            dropped = []
            now = time.monotonic()
            with self._lock:
                self._woken = False
                for client, outbox in list(self._outboxes.items()):
                    if outbox.stalled_since is not None and \
                            id(outbox) not in writable:
                        if now - outbox.stalled_since > self._stall:
                            dropped.append((client, f'took no events for '
                                            f'{self._stall:g} s'))
                            self._forget(client, outbox)
                        continue
                    # writable again, or attached with events waiting
                    if outbox.frames:
                        self._flush(client, outbox, dropped)
            for client, reason in dropped:
                self._drop(client, reason)
