"""A NICOS daemon client for programs: errors raise, events can be awaited.

Built on NICOS's own `NicosClient` (classic transport), which reports
errors through signals; scripts, the test suite and the command-line tool
want exceptions and a way to wait for events instead.
"""

import threading
import time
from typing import Any, Callable, List, Tuple

from nicos.clients.base import ConnectionData, ErrorResponse, NicosClient

from nicos_scriptserver import protocol

protocol.register()


class ServerError(Exception):
    """The daemon refused a command or the connection failed."""


class ScriptServerClient(NicosClient):
    """Connects to a script-server daemon and records every event it sends.

    ``events`` is the list of ``(name, data)`` received so far; `wait_for`
    blocks until an event matching a predicate has arrived. The script
    server's own events (``ss_*``) are unmasked at login.
    """

    def __init__(self, keep_events: bool = True):
        NicosClient.__init__(self, self._log)
        self.events: List[Tuple[str, Any]] = []
        self.keep_events = keep_events
        self.problems: List[str] = []
        self._cond = threading.Condition()

    def _log(self, msg, *args):
        self.problems.append(str(msg))

    def signal(self, name, *args):
        data = args[0] if args else None
        if name in ('error', 'failed', 'broken'):
            self.problems.append(str(data))
        with self._cond:
            if self.keep_events:
                self.events.append((name, data))
            self._cond.notify_all()

    def login(self, host: str, port: int, user: str, password: str,
              eventmask=None) -> 'ScriptServerClient':
        """Connect and log in; raise `ServerError` with the daemon's reason."""
        self.problems.clear()
        self.connect(ConnectionData(host, port, user, password), eventmask)
        if not self.isconnected:
            raise ServerError(self.problems[-1] if self.problems
                              else 'login failed')
        self.call('eventunmask', sorted(protocol.EVENTS))
        return self

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

    def wait_for(self, predicate: Callable[[str, Any], bool],
                 timeout: float = 30.0, start: int = 0) -> Tuple[str, Any]:
        """Return the first event from index *start* on matching *predicate*."""
        deadline = time.monotonic() + timeout
        with self._cond:
            index = start
            while True:
                while index < len(self.events):
                    name, data = self.events[index]
                    index += 1
                    if predicate(name, data):
                        return name, data
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f'no matching event within {timeout} s')
                self._cond.wait(remaining)

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

    def eval_value(self, expr: str) -> Any:
        """Evaluate *expr* in the daemon's namespace; errors raise."""
        return self.call('eval', expr, False)


__all__ = ['ScriptServerClient', 'ServerError', 'ErrorResponse']
