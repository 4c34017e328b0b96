"""Runs the unified job queue in NICOS's script thread.

NICOS's `ExecutionController` takes requests from ``controller.queue`` and
runs them block by block under its C trace function (which gives pauses,
stops and line numbers). `JobFeed` takes the place of that queue: the
script thread's ``get()`` starts the next job of the unified queue, and the
controller hooks report pauses, lines and outcomes back to it.

Stock daemon commands keep working because the handlers call controller
methods that are overridden here: ``queue``/``start`` submit a job,
``rearrange`` reorders waiting jobs, ``stop`` and ``emergency`` abort the
current job without dropping the waiting ones. What the stock clients see
(``getstatus``'s requests, the ``status`` events) comes from the daemon's
`stockview.StockView`.
"""

import collections
import contextlib
import sys
import threading
import time
import traceback
from bdb import BdbQuit

from nicos import session
from nicos.commands.device import stop
from nicos.core import Measurable, Moveable, User
from nicos.protocols.daemon import BREAK_AFTER_LINE, BREAK_IMMEDIATE, \
    BREAK_NOW
from nicos.services.daemon.errors import RequestError
from nicos.services.daemon.pyctl import ControlStop
from nicospyctl.pyctl import ControllerError
from nicos.services.daemon.script import EmergencyStopRequest, \
    ExecutionController, ScriptRequest

from nicos_scriptserver.daemon.blackbox import run_blackbox
from nicos_scriptserver.queue import (InvalidTransition, JobKind, QueueError,
                                      UnknownAccount)

_STOP_MODES = ('stop', 'emergency stop')
INTERRUPT_RETRY_SECONDS = 2.0


def error_report(exc_info, script_file: str = '<script>') -> dict:
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


class JobRequest(ScriptRequest):
    """One job of the unified queue, as NICOS's script thread runs it.

    Records how the run ended (done, failed with an error report, or
    aborted) and reports it to the feed before NICOS sends ``done``.
    """

    def __init__(self, job, user: User, feed: 'JobFeed'):
        ScriptRequest.__init__(self, job.source, job.name or None, user)
        self.reqid = str(job.id)
        self.job_id = job.id
        self.kind = job.kind
        self._feed = feed

    def serialize(self):
        data = ScriptRequest.serialize(self)
        data['job'] = self.job_id
        return data

    def parse(self):
        if self.kind == JobKind.BLACKBOX:
            # Nothing runs in the daemon's namespace: the script goes to a
            # child process (see `run_blackbox`).
            self.code, self.blocks = [], []
            self.resetSimstate()
            return
        try:
            ScriptRequest.parse(self)
        except Exception:
            self._feed.finished(self, 'failed', error_report(sys.exc_info()))
            raise

    def execute(self, controller):
        try:
            if self.kind == JobKind.BLACKBOX:
                outcome, error = run_blackbox(self, controller)
            else:
                ScriptRequest.execute(self, controller)
                outcome, error = 'done', None
        except (ControlStop, BdbQuit):
            self._feed.finished(self, 'aborted', None)
            raise
        except Exception:
            self._feed.finished(self, 'failed', error_report(sys.exc_info()))
            raise
        self._feed.finished(self, outcome, error)


class JobFeed:
    """Stands in for NICOS's `ScriptQueue` in front of the unified queue.

    ``get()`` (script thread) returns internal requests first (NICOS's own
    start-up request, emergency stops), then starts the next runnable job.
    """

    def __init__(self, jobs, daemon):
        self.jobs = jobs
        self.daemon = daemon
        self._internal = collections.deque()
        self._wakeup = threading.Condition()
        jobs.add_listener(lambda events: self.wake())

    def wake(self) -> None:
        with self._wakeup:
            self._wakeup.notify_all()

    def put(self, request) -> None:
        with self._wakeup:
            self._internal.append(request)
            self._wakeup.notify_all()

    def get(self):
        with self._wakeup:
            while True:
                if self._internal:
                    return self._internal.popleft()
                self.daemon.before_next_job()
                job = self.jobs.start_next(self.daemon.job_ready)
                if job is None:
                    self._wakeup.wait()
                    continue
                try:
                    return JobRequest(job, self.daemon.user_for(job), self)
                except UnknownAccount as err:
                    # Started only to fail: its error and the failure
                    # policy (hold) then apply as to any failed job.
                    self.jobs.finish('failed', error={
                        'type': type(err).__name__, 'message': str(err),
                        'traceback': '', 'line': None})

    def finished(self, request: JobRequest, outcome: str, error) -> None:
        self.jobs.finish(outcome, error=error)


class ScriptServerController(ExecutionController):
    """NICOS's execution controller running the unified job queue."""

    def __init__(self, daemon, simmode, autosim):
        # Its status events go out as stock clients see the queue.
        ExecutionController.__init__(self, daemon.log,
                                     daemon.stock.controller_event,
                                     'startup', simmode, autosim)
        self.daemon = daemon
        self.jobs = daemon.jobs
        self.queue = JobFeed(daemon.jobs, daemon)

    # -- entry points used by the stock daemon commands ---------------------

    def new_request(self, request, notify=True):
        if not isinstance(request, ScriptRequest) or not notify \
                or request.settrace:
            # NICOS's own start-up request, emergency stops, debug runs.
            return ExecutionController.new_request(self, request, notify)
        # A script without a name is a line typed at a NICOS console
        # (GUI console panel, nicos-client), which runs at once there;
        # those clients take "idle" after it as "done".
        typed = contextlib.nullcontext() if request.name \
            else self.daemon.starting_now()
        try:
            with typed:
                job, = self.daemon.submit([{'kind': JobKind.AWARE.value,
                                            'name': request.name or '',
                                            'source': request.text}],
                                          request.user)
        except (QueueError, ValueError) as err:
            raise RequestError(str(err)) from None
        return str(job.id)

    def get_queue(self):
        return self.daemon.stock.requests()

    def rearrange_queue(self, ids):
        try:
            self.jobs.rearrange([int(i) for i in ids])
        except (QueueError, ValueError, TypeError) as err:
            raise RequestError(f'cannot rearrange: {err}') from None

    def block_all_requests(self):
        """Stop and emergency stop leave the waiting jobs where they are."""

    def script_stop(self, level, user, message=None):
        """Abort the current job at the next point of *level*; the jobs
        queued now wait for a person (a safety hold; none if none is).

        A black-box job's process group is terminated instead.
        """
        self.jobs.hold_for_safety(f'job aborted by {user.name}')
        current = self.jobs.current()
        if current is None:
            return
        session.log.info('Abort requested by %s', user.name)
        if current.kind == JobKind.BLACKBOX:
            self.daemon.abort_blackbox()
        else:
            self.interrupt(('stop', level, user.name))
            if level >= BREAK_NOW:
                session.countloop_request = ('pause', f'Stopped by {user.name}')

    def script_immediate_stop(self, user, message=None):
        """Emergency stop: abort the current job at once and stop all devices.

        Unlike stock NICOS, waiting jobs are kept, and the ones queued now
        wait for a person (a safety hold).
        """
        self.jobs.hold_for_safety(f'emergency stop by {user.name}')
        session.log.warning('Immediate stop requested by %s', user.name)
        current = self.jobs.current()
        if current is None or current.kind == JobKind.BLACKBOX:
            self.daemon.abort_blackbox()
            self.queue.put(EmergencyStopRequest(user))
        else:
            self.interrupt(('emergency stop', BREAK_IMMEDIATE, user.name))

    def interrupt(self, flag) -> None:
        """Ask the current job to pause or stop (*flag* as NICOS's breaks).

        Decided by the job's state, not the controller's: between two
        top-level blocks NICOS reports idle and refuses breaks although
        the job runs on, so a refused break is retried until the next
        block starts (microseconds) or the job has ended.
        """
        job = self.jobs.current()
        deadline = time.monotonic() + INTERRUPT_RETRY_SECONDS
        while job is not None:
            if self.jobs.is_paused():
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
            current = self.jobs.current()
            if current is None or current.id != job.id:
                return

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

    # -- hooks of the script thread -----------------------------------------

    def _breakfunc(self, frame, arg):
        filename = frame.f_code.co_filename
        level = int(filename[7:]) if filename.startswith('<break>') \
            else BREAK_AFTER_LINE
        # Same condition as NICOS's own _breakfunc for really pausing here.
        if arg[1] >= level and arg[0] not in _STOP_MODES:
            # The line is read from the controller when asked for (see
            # ScriptServerDaemon.job_dict); a paused job stores it.
            self.jobs.set_line(self.lineno)
            self.jobs.pause()
        ExecutionController._breakfunc(self, frame, arg)

    def set_continue(self, flag):
        """Resume a paused job (``continue``), or let a stop proceed."""
        ExecutionController.set_continue(self, flag)
        if flag[0] == 'continue' and self.jobs.is_paused():
            self.jobs.resume()
