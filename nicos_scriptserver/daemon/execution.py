"""Runs the unified job queue in NICOS's script thread.

NICOS's `ExecutionController` takes requests from ``controller.queue`` and
runs them block by block under its C trace function (which gives pauses,
stops and line numbers). `JobFeed` takes the place of that queue: the
script thread's ``get()`` starts the next job the application
(`app.server.ScriptServer`) lets start, and the controller's hooks report
pauses and outcomes back to it.

The controller is an adapter both ways. NICOS's entry points (the stock
``queue``/``start``, ``rearrange``, its watchdog's and the stock
``emergency`` stops) become use cases of the application; and it is the
application's `ScriptControl`: pause, resume and abort requests become
NICOS's breaks. What stock clients see (``getstatus``'s requests, the
``status`` events) comes from the daemon's `stockview.StockView`.
"""

import collections
import contextlib
import gc
import sys
import threading
import time
import traceback
from bdb import BdbQuit
from types import FrameType
from typing import Iterator, Optional

from nicos import session
from nicos.commands.device import stop
from nicos.core import Measurable, Moveable, User
from nicos.protocols.daemon import BREAK_AFTER_LINE, BREAK_AFTER_STEP, \
    BREAK_IMMEDIATE, BREAK_NOW
from nicos.services.daemon.errors import RequestError
from nicos.services.daemon.pyctl import LINENO_TOPLEVEL, Controller, ControlStop
from nicospyctl.pyctl import ControllerError
from nicos.services.daemon.script import EmergencyStopRequest, \
    ExecutionController, ScriptRequest

from nicos_scriptserver.daemon.bridgerun import run_bridged
from nicos_scriptserver.daemon.jobapi import step
from nicos_scriptserver.queue import (Caller, InvalidTransition, Job, JobKind,
                                      QueueError, StoreError)

_STOP_MODES = ('stop', 'emergency stop')
#: The file name NICOS compiles a script's blocks with.
SCRIPT_FILE = '<script>'
INTERRUPT_RETRY_SECONDS = 2.0
#: Seconds until the script thread tries again to start the next job when
#: the queue database could not save its start.
STORE_RETRY = 0.2


def error_report(exc_info, script_file: str = SCRIPT_FILE) -> dict:
    """Describe an exception for the job's record: type, message, line."""
    exc_type, exc, tb = exc_info
    frames = traceback.extract_tb(tb)
    lines = [frame.lineno for frame in frames if frame.filename == script_file]
    return {
        'type': exc_type.__name__,
        'message': str(exc),
        'traceback': ''.join(traceback.format_exception(exc_type, exc, tb)),
        'line': lines[-1] if lines else None,
    }


def frame_line(frame: FrameType) -> int:
    """The line *frame* is at. A block paused as it starts, before its first
    line, is at line 0 in Python; it is shown at the line it runs next."""
    if frame.f_lineno:
        return frame.f_lineno
    return next((line for _, _, line in frame.f_code.co_lines() if line), 0)


class JobRequest(ScriptRequest):
    """One job of the unified queue, as NICOS's script thread runs it.

    Reports how the run ended (done, failed with an error report, or
    aborted) to the application before NICOS sends ``done``.
    """

    def __init__(self, job: Job, user: User, app):
        ScriptRequest.__init__(self, job.source, job.name or None, user)
        self.reqid = str(job.id)
        self.job_id = job.id
        self.kind = job.kind
        # Its script runs in a child process, through the bridge.
        self.bridged = job.kind == JobKind.BLACKBOX or job.isolated
        self._app = app
        self._steps = app.call_steps(job)

    def serialize(self):
        data = ScriptRequest.serialize(self)
        data['job'] = self.job_id
        return data

    def parse(self):
        if self.bridged:
            # Nothing runs in the daemon's namespace: the script goes to a
            # child process (see `run_bridged`).
            self.code, self.blocks = [], []
            self.resetSimstate()
            return
        try:
            ScriptRequest.parse(self)
        except Exception:
            self._app.finished('failed', error_report(sys.exc_info()))
            raise

    def emitETA(self, controller):
        # Called as each block starts. A generated job's blocks are its
        # calls, one each: each is a step (step i of n: call i begins),
        # reported with the step API.
        ScriptRequest.emitETA(self, controller)
        if self.blocks and len(self.blocks) == len(self._steps):
            with contextlib.suppress(QueueError):   # e.g. paused meanwhile
                step(self.curblock + 1, len(self._steps),
                     self._steps[self.curblock])

    def execute(self, controller):
        try:
            if self.bridged:
                outcome, error = run_bridged(
                    self, controller, isolated=self.kind != JobKind.BLACKBOX)
            else:
                ScriptRequest.execute(self, controller)
                outcome, error = 'done', None
        except (ControlStop, BdbQuit):
            self._app.finished('aborted', None)
            raise
        except Exception:
            self._app.finished('failed', error_report(sys.exc_info()))
            raise
        self._app.finished(outcome, error)


class JobFeed:
    """Stands in for NICOS's `ScriptQueue` in front of the unified queue.

    ``get()`` (script thread) returns internal requests first (NICOS's own
    start-up request, emergency stops), then starts the next job the
    application lets start; it waits for a change of the queue otherwise.
    """

    def __init__(self, app):
        self.app = app
        self._internal = collections.deque()
        self._wakeup = threading.Condition()
        app.queue.add_listener(lambda events: self.wake())

    def wake(self) -> None:
        """Look again for a job to start."""
        with self._wakeup:
            self._wakeup.notify_all()

    def put(self, request) -> None:
        """Run NICOS's own *request* next."""
        with self._wakeup:
            self._internal.append(request)
            self._wakeup.notify_all()

    def get(self):
        """The next request for the script thread (blocks)."""
        with self._wakeup:
            while True:
                if self._internal:
                    return self._internal.popleft()
                try:
                    started = self.app.next_job()
                except StoreError as err:
                    # The disk fails: the job stays waiting; look again.
                    session.log.warning('Next job not started: %s', err)
                    self._wakeup.wait(STORE_RETRY)
                    continue
                if started is None:
                    self._wakeup.wait()
                    continue
                job, account = started
                return JobRequest(job, User(account.name, account.level),
                                  self.app)


class ScriptServerController(ExecutionController):
    """NICOS's execution controller running the unified job queue.

    `serve` gives it the application, once there is one (the application
    steers the script thread through this controller).
    """

    def __init__(self, log, stock, simmode, autosim):
        # Its status events go out as stock clients see the queue.
        ExecutionController.__init__(self, log, stock.controller_event,
                                     'startup', simmode, autosim)
        # NICOS asks the C controller for the lines of every frame of
        # '<script>'. To tell those, nicos-pyctl 1.4's trace function takes
        # a reference to the code of every line it traces and never gives
        # it back (PyFrame_GetCode returns a new one since Python 3.9), so
        # every block of every job stayed in memory for good. The lines of
        # the block's own frame need no such look-up; `line()` finds the
        # line in a function the script defines when it is asked for.
        Controller.__init__(self, break_only_in_filename=SCRIPT_FILE,
                            lineno_behavior=LINENO_TOPLEVEL)
        self.set_observer(self._observer)
        self.stock = stock
        self.app = None
        self.bridge = None   # the current bridged job's child and channel
        self._starting_now = threading.local()
        self._break_flag = None   # the last flag of set_break

    def serve(self, app) -> None:
        """Run the jobs of *app*."""
        self.app = app
        self.queue = JobFeed(app)

    @contextlib.contextmanager
    def starting_now(self) -> Iterator[None]:
        """Jobs submitted in this block do not wait for their dry run.

        For NICOS's ``start`` command: "run this now", as typed at a
        console, whose clients wait for the script to start at once.
        """
        self._starting_now.active = True
        try:
            yield
        finally:
            self._starting_now.active = False

    def _setup(self):
        # What the start-up setup loads (NICOS, devices, command files)
        # lives as long as the daemon. Collections while it loads walk the
        # growing heap again and again for little garbage (with 1,000
        # command files, about 0.1 s of CPU); one at the end does instead.
        gc.disable()
        try:
            ExecutionController._setup(self)
            gc.collect()
            # A full cyclic collection walks every object the daemon holds,
            # in one stretch under the GIL: with 1,000 command files that
            # stalled a running job for 50 ms, every few seconds. Frozen,
            # what the setup loaded is left out of collections.
            gc.freeze()
        finally:
            gc.enable()

    # -- entry points of NICOS (stock daemon commands, its watchdog) -------

    def new_request(self, request, notify=True):
        if not isinstance(request, ScriptRequest) or not notify \
                or request.settrace:
            # NICOS's own start-up request, emergency stops, debug runs.
            return ExecutionController.new_request(self, request, notify)
        # A script without a name is a line typed at a NICOS console
        # (GUI console panel, nicos-client), which runs at once there;
        # those clients take "idle" after it as "done".
        now = not request.name or getattr(self._starting_now, 'active', False)
        try:
            # A console's line runs in the daemon's namespace, as there.
            job, = self.app.submit({'kind': JobKind.AWARE.value,
                                    'name': request.name or '',
                                    'source': request.text,
                                    **({} if request.name
                                       else {'isolated': False})},
                                   Caller.of(request.user), start_now=now)
        except (QueueError, ValueError) as err:
            raise RequestError(str(err)) from None
        return str(job.id)

    def get_queue(self):
        return self.stock.requests()

    def rearrange_queue(self, ids):
        try:
            self.app.rearrange(ids)
        except (QueueError, ValueError, TypeError) as err:
            raise RequestError(f'cannot rearrange: {err}') from None

    def block_all_requests(self):
        """Stop and emergency stop leave the waiting jobs where they are."""

    def script_stop(self, level, user, message=None):
        """NICOS's watchdog stops the script (clients' ``stop`` is
        `stockcommands.stop`)."""
        self.app.safety_stop(Caller.of(user), level)

    def script_immediate_stop(self, user, message=None):
        """Emergency stop (the stock ``emergency`` command, the watchdog)."""
        self.app.emergency_stop(Caller.of(user))

    def execute_estop(self, user):
        """Run NICOS's emergency-stop functions, then stop every device.

        NICOS's ``stop()`` stops only devices whose *cached* status is
        busy, which needs a poller keeping the cache current; an emergency
        stop must not depend on that.
        """
        ExecutionController.execute_estop(self, user)
        devices = [dev for name, dev in sorted(session.devices.items())
                   if isinstance(dev, (Moveable, Measurable))
                   and not getattr(dev, 'ignore_general_stop', False)]
        if devices:
            stop(*devices)

    # -- the application's ScriptControl -----------------------------------

    def pause(self, job: Job, level: int, by: Caller) -> None:
        """Ask the running job to pause at the next point of *level*; an
        isolated job pauses at its next pause point."""
        bridge = self.bridge
        if bridge is not None:
            bridge.request_pause(('break', BREAK_AFTER_STEP, by.name))
            return
        self.interrupt(('break', level, by.name))
        if level >= BREAK_NOW:
            session.countloop_request = ('pause', f'Paused by {by.name}')

    def resume(self, by: Caller) -> None:
        """Let the paused job go on."""
        bridge = self.bridge
        if bridge is not None:
            bridge.end_pause()
        self.set_continue(('continue', 0, by.name))

    def abort(self, job: Job, level: int, by: Caller) -> None:
        """Ask the current job to stop at the next point of *level*; a
        bridged job's process tree is killed, and the command it has in
        flight in the daemon stops now."""
        if self.abort_bridged():
            level = max(level, BREAK_NOW)
        self.interrupt(('stop', level, by.name))
        if level >= BREAK_NOW:
            session.countloop_request = ('pause', f'Stopped by {by.name}')

    def emergency_stop(self, job: Optional[Job], by: Caller) -> None:
        """Stop the current job at once, then every device."""
        self.abort_bridged()
        if job is None:
            self.queue.put(EmergencyStopRequest(User(by.name, by.level)))
        else:
            self.interrupt(('emergency stop', BREAK_IMMEDIATE, by.name))

    def line(self) -> Optional[int]:
        """The line of its script the running job is at (of a bridged
        job: where its last call came from)."""
        bridge = self.bridge
        if bridge is not None:
            return bridge.line
        frame = self.currentframe
        while frame is not None:
            if frame.f_code.co_filename == SCRIPT_FILE:
                return frame_line(frame)
            frame = frame.f_back
        return self.lineno

    def wake(self) -> None:
        """A job may start now that could not before."""
        self.queue.wake()

    def abort_bridged(self) -> bool:
        """Kill the current bridged job's processes; whether there was one."""
        bridge = self.bridge
        if bridge is not None:
            bridge.abort()
        return bridge is not None

    def interrupt(self, flag) -> None:
        """Ask the current job to pause or stop (*flag* as NICOS's breaks).

        Decided by the job's state, not the controller's: between two
        top-level blocks NICOS reports idle and refuses breaks although
        the job runs on, so a refused break is retried until the next
        block starts (microseconds) or the job has ended.
        """
        jobs = self.app.queue
        job = jobs.current()
        deadline = time.monotonic() + INTERRUPT_RETRY_SECONDS
        while job is not None:
            if jobs.is_paused():
                self.set_continue(flag)
                return
            try:
                self.set_break(flag)
                return
            except ControllerError:
                if time.monotonic() > deadline:
                    raise InvalidTransition(
                        f'job {job.id} did not reach a point where it can be '
                        'interrupted; try again') from None
                time.sleep(0.001)
            current = jobs.current()
            if current is None or current.id != job.id:
                return

    # -- hooks of the script thread -----------------------------------------

    def set_break(self, flag) -> None:
        """Ask the script to break at its next point of *flag*'s level
        (NICOS's flag: mode, level, user)."""
        self._break_flag = flag
        ExecutionController.set_break(self, flag)

    def _breakfunc(self, frame, arg=None):
        if arg is None:
            # The C controller lost the flag, not the break: when a block
            # starts, it clears the flag after it has let other threads
            # run (its observer sends the status), and a set_break from
            # one of them in that moment is left without one. The break
            # is still wanted, with the flag last asked for.
            arg = self._break_flag
        filename = frame.f_code.co_filename
        level = int(filename[7:]) if filename.startswith('<break>') \
            else BREAK_AFTER_LINE
        # Same condition as NICOS's own _breakfunc for really pausing here.
        if arg[1] >= level and arg[0] not in _STOP_MODES:
            # The line is read from the controller when asked for (see
            # ScriptServer.job_view); a paused job stores it.
            self.app.paused(self.line())
        ExecutionController._breakfunc(self, frame, arg)

    def set_continue(self, flag):
        """Resume a paused job (``continue``), or let a stop proceed."""
        ExecutionController.set_continue(self, flag)
        if flag[0] == 'continue':
            self.app.resumed()
