"""Runs a bridged job (black-box, or isolated aware) from NICOS's script thread.

The script runs in a child process (`runner.BlackBoxRun` with
`runner.bridgechild`); its output becomes ``ss_output`` events and NICOS
log messages, so stock clients see it too. The daemon keeps one end of a
socket pair, the child gets the other: no port, nothing another process
can reach. NICOS's script thread serves the child's calls
(`bridgecalls`) under its execution controller, from a loop compiled as
the job's ``<script>``: NICOS sees a running script, checks device access
against the job's user, and its stops reach a command in flight (at
NICOS's breakpoints) and the loop between two calls.

Ending: the controller `abort`\\ s the bridge (child's process tree
killed) and stops the script thread as for any job. Whichever way the job
ends, devices that were idle when it started and move now are stopped: a
child that died mid-move leaves nothing moving. An isolated job pauses in
the daemon, inside its ``pause_point()`` call, when a pause was requested
(`request_pause` pushes the wish to the child, which asks only then).
"""

import collections
import contextlib
import os
import selectors
import socket
import threading
from typing import Any, Deque, Dict, Optional, Set, Tuple

from nicos import session
from nicos.core import Measurable, Moveable, status
from nicos.protocols.daemon import BREAK_AFTER_STEP
from nicos.services.daemon.utils import formatScript
from nicos.utils.loggers import INPUT

from nicos_scriptserver.daemon.bridgecalls import (BridgeCalls, RefusedCall,
                                                   describe)
from nicos_scriptserver.runner.blackbox import BlackBoxRun
from nicos_scriptserver.runner.bridgewire import FrameReader, WireError, encode
from nicos_scriptserver.runner.childenv import child_env

CHILD_MODULE = 'nicos_scriptserver.runner.bridgechild'
#: s between looks whether the child ended while it sends nothing (its
#: end closes the channel; this only covers a descendant keeping it open).
POLL = 0.25
#: s a reply or push may wait for a child that does not read them; then
#: the daemon hangs up (neither the script thread nor a client's pause
#: request may hang on a child).
SEND_TIMEOUT = 10.0
# The loop the script thread runs: as "<script>", so that NICOS's stop
# requests take effect between two calls too (each turn of a loop is a
# line event). One line per loop: NICOS tells every client when the line
# changes, which a two-line loop would do at every call.
SERVE_LOOP = compile('bridge.start()\n'
                     'while bridge.serve(): pass\n'
                     'while not bridge.ended(): pass\n',
                     '<script>', 'exec')


def _moving() -> Set[str]:
    """Names of the devices that move or count now."""
    names = set()
    for name, device in list(session.devices.items()):
        if isinstance(device, (Moveable, Measurable)):
            with contextlib.suppress(Exception):
                if device.status(0)[0] == status.BUSY:
                    names.add(name)
    return names


class Bridge:
    """One bridged job: its child, its channel, and the calls it makes.

    *env* adds to the child's allowlisted environment. What concerns the
    clients (`_output`, `_line_changed`) and pausing (`_pause_point`) are
    methods of their own: a dry run (`bridgedryrun`) has neither.
    """

    def __init__(self, script: str, job_id: Optional[int], isolated: bool,
                 controller, env: Optional[Dict[str, str]] = None):
        self.controller = controller
        self.job_id = job_id
        self.ours, theirs = socket.socketpair()
        self.ours.settimeout(SEND_TIMEOUT)
        self._theirs: Optional[socket.socket] = theirs
        self.calls = BridgeCalls(isolated, self._pause_point)
        self.reader = FrameReader()
        self.inbox: Deque[Dict[str, Any]] = collections.deque()
        self.line: Optional[int] = None
        self._send_lock = threading.Lock()
        self._pause: Optional[Tuple] = None   # the flag of a wanted pause
        self._busy_at_start: Set[str] = set()
        self._selector = selectors.DefaultSelector()
        self._selector.register(self.ours, selectors.EVENT_READ)
        self.run = BlackBoxRun(script, cwd=os.getcwd(), env=child_env(env),
                               on_output=self._output,
                               launcher=['-m', CHILD_MODULE,
                                         str(theirs.fileno())],
                               pass_fds=[theirs.fileno()])

    def _output(self, stream: str, text: str) -> None:
        session.daemon_device.emit_event(
            'ss_output', {'id': self.job_id, 'stream': stream, 'text': text})
        session.log.info('%s', text.rstrip('\n'))

    # -- script thread -------------------------------------------------------

    def start(self) -> None:
        """Start the child and tell it its globals."""
        self._busy_at_start = _moving()
        self.run.start()
        self._theirs.close()
        self._theirs = None
        self._send({'welcome': self.calls.welcome()})

    def serve(self) -> bool:
        """Serve the child's next request; False once it is gone."""
        while not self.inbox:
            data = self._receive()
            if data is None:
                return not self.run.ended()
            if not data:
                return False
            try:
                self.inbox.extend(self.reader.feed(data))
            except WireError as err:
                # Out of step for good: tell the child, hang up.
                self._send({'id': None, 'error': describe(err)})
                session.log.warning('job %s sent a bad frame over the '
                                    'bridge: %s', self.job_id, err)
                with contextlib.suppress(OSError):
                    self.ours.shutdown(socket.SHUT_RDWR)
                return False
        self._answer(self.inbox.popleft())
        return True

    def ended(self) -> bool:
        """Whether the child has ended; waits up to `POLL` for it (the
        channel is closed: it can only print or end)."""
        with contextlib.suppress(TimeoutError):
            self.run.wait(POLL)
        return self.run.ended()

    def _receive(self) -> Optional[bytes]:
        """What the child sent next; None after `POLL` without any."""
        if not self._selector.select(POLL):
            return None
        try:
            return self.ours.recv(65536)
        except OSError:
            return b''

    def _answer(self, request: Dict[str, Any]) -> None:
        call_id = request.get('id')
        if not isinstance(call_id, int):   # echoed: nothing larger
            call_id = None
        line = request.get('line')
        if isinstance(line, int) and line != self.line:
            self.line = line
            self._line_changed(line)
        try:
            reply = {'id': call_id, 'result': self.calls.run(request)}
        except RefusedCall as err:
            session.log.warning('job %s: refused over the bridge: %s',
                                self.job_id, err)
            reply = {'id': call_id, 'error': describe(err)}
        except Exception as err:
            reply = {'id': call_id, 'error': describe(err)}
        try:
            self._send(reply)
        except WireError as err:   # a result too large for a frame
            self._send({'id': call_id, 'error': describe(err)})

    def _line_changed(self, line: int) -> None:
        # What stock clients highlight: the child's line, as NICOS's own
        # status event gives an aware job's.
        self.controller.eventfunc('status', (self.controller.status, line))

    def _pause_point(self) -> None:
        """``pause_point()`` of an isolated job: pause here if wanted."""
        flag = self._pause
        if flag is not None:
            # From the script thread itself: NICOS pauses at the
            # breakpoint below, and waits there until resumed or stopped.
            self.controller.set_break(flag)
            session.breakpoint(BREAK_AFTER_STEP)
            self.end_pause()
            # Moves made by hand while paused are not the job's to stop.
            self._busy_at_start |= _moving()

    def finish(self, aborted: bool) -> None:
        """End the child (at once if *aborted*), wait for it, stop what the
        job left moving, close the channel."""
        if aborted:
            self.run.abort(grace=0)
        with contextlib.suppress(RuntimeError):   # never started
            self.run.wait()
        for name in sorted(_moving() - self._busy_at_start):
            session.log.info('stopping %s, which the job left moving', name)
            with contextlib.suppress(Exception):
                session.devices[name].stop()
        self._selector.close()
        self.ours.close()
        if self._theirs is not None:
            self._theirs.close()

    # -- other threads -------------------------------------------------------

    def _send(self, message: Dict[str, Any]) -> None:
        frame = encode(message)
        with self._send_lock:
            try:
                self.ours.sendall(frame)
            except OSError:   # gone, or not reading: the stream is broken
                with contextlib.suppress(OSError):
                    self.ours.shutdown(socket.SHUT_RDWR)

    def abort(self) -> None:
        """Kill the child's process tree (from any thread)."""
        self.run.abort(grace=0)

    def request_pause(self, flag: Tuple) -> None:
        """An isolated job should pause at its next pause point."""
        self._pause = flag
        self._send({'pause': True})

    def end_pause(self) -> None:
        """No pause is wanted any more (resumed)."""
        if self._pause is not None:
            self._pause = None
            self._send({'pause': False})


def run_bridged(request, controller, isolated: bool
                ) -> Tuple[str, Optional[dict]]:
    """Run *request*'s script to the end; return (outcome, error report).

    NICOS's ControlStop (an abort) propagates once the child is gone.
    """
    session.log.log(INPUT, formatScript(
        request, 'isolated' if isolated else 'black-box'))
    bridge = Bridge(request.text, request.job_id, isolated, controller)
    controller.bridge = bridge
    aborted = True
    try:
        controller.start_exec(SERVE_LOOP, {'bridge': bridge}, None, None)
        aborted = False
    finally:
        controller.bridge = None
        bridge.finish(aborted)
    result = bridge.run.result
    if result is None or result.aborted:
        return 'aborted', None
    return ('done', None) if result.ok else ('failed', result.error)
