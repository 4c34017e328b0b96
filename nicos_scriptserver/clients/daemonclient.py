"""A NICOS daemon client for programs: errors raise, events can be awaited.

Built on NICOS's own `NicosClient` (classic transport), which reports
errors through signals; scripts, the test suite and the command-line tool
want exceptions and a way to wait for events instead.
"""

import json
import threading
import time
from typing import Any, Callable, List, Tuple

from nicos.clients.base import ConnectionData, ErrorResponse, NicosClient
from nicos.clients.proto import classic as classic_client
from nicos.protocols.daemon import ProtocolError
from nicos.protocols.daemon.classic import LENGTH

from nicos_scriptserver.clients.queueview import QueueView, jobs_of_rows
from nicos_scriptserver.wire import protocol

protocol.register()


# Stock events about waiting scripts; ScriptServerClient masks them.
STOCK_QUEUE_EVENTS = ('request', 'blocked', 'rearranged', 'updated')


class _LinearReadTransport(classic_client.ClientTransport):
    """NICOS's classic client transport, reading replies in linear time.

    The stock one appends 4 KiB reads to a bytes object, which is quadratic:
    a 1 MB reply (the catalog of a thousand commands) took ~40 ms to read.
    """

    def _recv_exactly(self, length: int) -> bytes:
        buf = bytearray(length)
        view, got = memoryview(buf), 0
        while got < length:
            read = self.sock.recv_into(view[got:], length - got)
            if not read:
                raise ProtocolError('connection broken')
            got += read
        return bytes(buf)

    def recv_reply(self):
        start = self._recv_exactly(1)
        if start == classic_client.ACK:
            return True, None
        if start not in (classic_client.NAK, classic_client.STX):
            raise ProtocolError(f'invalid response {start!r}')
        length, = LENGTH.unpack(self._recv_exactly(LENGTH.size))
        data = self._recv_exactly(length)
        if not self.serializer:
            self.serializer = self.determine_serializer(
                data, start == classic_client.STX)
        return self.serializer.deserialize_reply(data, start == classic_client.STX)


class ServerError(Exception):
    """The daemon refused a command or the connection failed."""


class ScriptServerClient(NicosClient):
    """Connects to a script-server daemon and records every event it sends.

    ``events`` is the list of ``(name, data)`` received so far; `wait_for`
    blocks until an event matching a predicate has arrived. The script
    server's own events (``ss_*``) are unmasked at login.

    ``queue_view`` is the queue listing as of the last `sync_queue`. Once
    synced, it is brought up to date by itself when the client logs in
    again (after a broken connection) and when an event's change number
    shows that changes were missed.
    """

    def __init__(self, keep_events: bool = True):
        NicosClient.__init__(self, self._log)
        self.transport = _LinearReadTransport()
        self.events: List[Tuple[str, Any]] = []
        self.keep_events = keep_events
        self.problems: List[str] = []
        self.queue_view = QueueView()
        self._syncing = threading.Lock()  # the event thread syncs too
        self._cond = threading.Condition()

    def _log(self, msg, *args):
        self.problems.append(str(msg))

    def signal(self, name, *args):
        data = args[0] if args else None
        if name in ('error', 'failed', 'broken'):
            self.problems.append(str(data))
        if name in ('ss_queue', 'ss_job') and isinstance(data, dict):
            self._check_seq(data.get('seq'))
        with self._cond:
            if self.keep_events:
                self.events.append((name, data))
            self._cond.notify_all()

    def login(self, host: str, port: int, user: str, password: str,
              eventmask=None) -> 'ScriptServerClient':
        """Connect and log in; raise `ServerError` with the daemon's reason.

        Once only: NICOS's client then sets ``login`` to the user name. To
        connect again, call `connect`."""
        self.problems.clear()
        self.connect(ConnectionData(host, port, user, password), eventmask)
        if not self.isconnected:
            raise ServerError(self.problems[-1] if self.problems
                              else 'login failed')
        return self

    def connect(self, conndata: ConnectionData, eventmask=None) -> None:
        """NICOS's connect, then: the ss_* events unmasked, the stock ones
        they replace masked, and `queue_view`, if synced before, brought
        up to date (the connection may have been down for a while)."""
        NicosClient.connect(self, conndata, eventmask)
        if not self.isconnected:
            return
        self.call('eventunmask', sorted(protocol.EVENTS))
        # The ss_* events say everything these stock ones say about the
        # queue; one event per change is enough.
        self.call('eventmask', list(STOCK_QUEUE_EVENTS))
        if self.queue_view.seq is not None:
            self.sync_queue()

    def sync_queue(self) -> dict:
        """Bring `queue_view` up to date (only what changed since it was,
        see ``ss_changes``); return the queue as `queue` does."""
        view = self.queue_view
        with self._syncing:
            view.apply(self.call('ss_changes', view.seq))
            return dict(view.listing(), waiting=view.waiting())

    def _check_seq(self, seq) -> None:
        # Called in the event thread: the reply comes on the command
        # connection, so syncing here cannot wait for this thread.
        view = self.queue_view
        if view.seq is not None and view.missed(seq):
            try:
                self.sync_queue()
            except ServerError:
                return  # the connection broke: login syncs again
        view.note(seq)

    def call(self, command: str, *args) -> Any:
        """Send a daemon command and return its reply; errors raise."""
        if not self.isconnected:
            raise ServerError('not connected to a server')
        try:
            with self.lock:
                self.transport.send_command(command, args)
                ok, data = self.transport.recv_reply()
        except Exception as err:
            self.handle_error(err)
            raise ServerError(f'connection to the server broke: {err}') from err
        if not ok:
            raise ServerError(str(data))
        return data

    def wait_index(self, predicate: Callable[[str, Any], bool],
                   timeout: float = 30.0, start: int = 0) -> int:
        """Index in `events` of the first event from *start* on matching
        *predicate*; waits up to *timeout* seconds for it to arrive."""
        deadline = time.monotonic() + timeout
        with self._cond:
            index = start
            while True:
                while index < len(self.events):
                    name, data = self.events[index]
                    if predicate(name, data):
                        return index
                    index += 1
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f'no matching event within {timeout} s')
                self._cond.wait(remaining)

    def wait_for(self, predicate: Callable[[str, Any], bool],
                 timeout: float = 30.0, start: int = 0) -> Tuple[str, Any]:
        """The first event ``(name, data)`` from index *start* on matching
        *predicate*; waits up to *timeout* seconds for it to arrive."""
        return self.events[self.wait_index(predicate, timeout, start)]

    def wait_idle(self, timeout: float = 60.0) -> dict:
        """Poll until no script runs or waits in the queue; return the status."""
        deadline = time.monotonic() + timeout
        while True:
            status = self.call('getstatus')
            if status['status'][0] < 0 and not status['requests']:
                return status
            if time.monotonic() > deadline:
                raise TimeoutError(f'daemon still busy after {timeout} s')
            time.sleep(0.05)

    def queue(self) -> dict:
        """The queue, with the waiting jobs as dicts (`ss_queue` sends rows)."""
        return queue_with_dicts(self.call('ss_queue'))

    def catalog(self) -> dict:
        """The command catalog: ``{generation, commands, errors}``."""
        return json.loads(self.call('ss_catalog'))

    def eval_value(self, expr: str) -> Any:
        """Evaluate *expr* in the daemon's namespace; errors raise."""
        return self.call('eval', expr, False)


def queue_with_dicts(reply: dict) -> dict:
    """An ``ss_queue`` reply (from the daemon or the proxy) with its waiting
    jobs' rows turned into dicts."""
    reply['waiting'] = jobs_of_rows(reply.pop('columns'), reply['waiting'])
    return reply


__all__ = ['ScriptServerClient', 'ServerError', 'ErrorResponse',
           'queue_with_dicts']
