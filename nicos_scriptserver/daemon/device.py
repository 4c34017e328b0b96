"""The script server's NICOS daemon device."""

import contextlib
import threading
import time
from typing import Any, Dict, List, Mapping, Optional

from nicos.core import Override, Param, User, floatrange, intrange, oneof
from nicos.protocols.daemon import BREAK_NOW, STATUS_STOPPING
from nicos.services.daemon import NicosDaemon
from nicos import session

from nicos_scriptserver.app.spec import parse_edits, parse_specs, parse_spec
from nicos_scriptserver.catalog import describe_calls
from nicos_scriptserver.daemon import access, plaindata, queuecommands, \
    stockcommands  # noqa: F401 (registers commands)
from nicos_scriptserver.daemon.auth import HashedAccounts
from nicos_scriptserver.daemon.catalogdev import find_command_catalog
from nicos_scriptserver.daemon.dryrun import \
    use_private_channel_for_stock_dry_runs
from nicos_scriptserver.daemon.dryruns import DryRunScheduler
from nicos_scriptserver.daemon.events import EventRelay
from nicos_scriptserver.daemon.execution import ScriptServerController
from nicos_scriptserver.daemon.stockview import HELD, StockView
from nicos_scriptserver.daemon.timelineevents import TimelineEmitter
from nicos_scriptserver.estimates import (blackbox_report, not_possible,
                                          timeline)
from nicos_scriptserver.queue import (InvalidTransition, Job, JobKind,
                                      JobQueue, JobState, runs_as)
from nicos_scriptserver.queue.model import SAFETY


class ScriptServerDaemon(NicosDaemon):
    """NICOS daemon of a script server, running one persistent job queue.

    Every entry point (the stock ``queue``/``start``/``rearrange``/
    ``unqueue`` commands that NICOS's GUI, console and IBEX send, and the
    ``ss_*`` commands) acts on the same queue, kept in an SQLite file.
    Guest logins may only watch.
    """

    parameters = {
        'queuefile': Param('SQLite file that keeps the queue and its history',
                           type=str, mandatory=True),
        'failurepolicy': Param('What the queue does after a job failed: hold '
                               '(start nothing until released) or continue',
                               type=oneof('hold', 'continue'), default='hold'),
        'dryrunpolicy': Param('Dry runs of queued jobs: hold (a job starts '
                              'only after its dry run, and one whose dry run '
                              'found a problem waits for a user to confirm '
                              'or edit it), mark (only report problems) or '
                              'off', type=oneof('hold', 'mark', 'off'),
                              default='hold'),
        'dryrunworkers': Param('How many dry runs may run at once',
                               type=intrange(1, 8), default=1),
        'dryrunlimit': Param('Wall time after which a dry run is cut off and '
                             'reported as failed', type=floatrange(1, 3600),
                             default=60, unit='s'),
    }

    parameter_overrides = {
        'servercls': Override(
            default='nicos_scriptserver.daemon.transport.ClassicServer'),
        # The only one that reads plain data only (no pickle from a client
        # runs code): NICOS's classic and JSON serializers both unpickle.
        'serializercls': Override(
            default='nicos_scriptserver.daemon.transport.PlainDataSerializer',
            type=oneof('nicos_scriptserver.daemon.transport.PlainDataSerializer')),
    }

    def doInit(self, mode):
        access.install()
        plaindata.install()
        use_private_channel_for_stock_dry_runs()
        self._jobs = JobQueue(self.queuefile)
        if self.jobs.state.on_failure != self.failurepolicy:
            self.jobs.set_on_failure(self.failurepolicy)
        self._controller_replaced = threading.Event()
        NicosDaemon.doInit(self, mode)
        self._stock = StockView(self.jobs, self.emit_event,
                                lambda: session.log)
        self._controller = ScriptServerController(self, self.simmode,
                                                  self.autosimulate)
        self._stock.attach(self._controller)
        self._controller_replaced.set()
        self.jobs.add_listener(EventRelay(self.jobs, self.emit_event))
        self.jobs.add_listener(self._stock)
        self._timeline_events = TimelineEmitter(self.timeline, self.emit_event)
        self.jobs.add_listener(self._timeline_events)
        self._blackbox = None
        self._starting_now = threading.local()
        self._dryruns = None
        if self.dryrunpolicy != 'off':
            self._dryruns = DryRunScheduler(
                self.jobs, self.user_for, self.dryrunworkers,
                self.dryrunlimit, self.dryrunpolicy, self.log)

    def _watch_entry(self):
        # NICOS's watch loop reads the controller once, as its thread
        # starts inside NicosDaemon.doInit: it must see ours, which holds
        # the watch expressions clients add.
        self._controller_replaced.wait()
        NicosDaemon._watch_entry(self)

    def quit(self, signum=None):
        self._timeline_events.stop()
        if self._dryruns is not None:
            self._dryruns.stop()
        NicosDaemon.quit(self, signum)

    @property
    def jobs(self) -> JobQueue:
        """The unified job queue."""
        return self._jobs

    @property
    def stock(self) -> StockView:
        """What stock NICOS clients see of the queue."""
        return self._stock

    # -- used by the command handlers ----------------------------------------

    def _catalog(self):
        device = find_command_catalog()
        return device.catalog if device else None

    def submit(self, specs: List[Mapping[str, Any]], user: User,
               position=None) -> List[Job]:
        """Check and queue jobs submitted by *user*."""
        prepared = parse_specs(specs, self._catalog(), JobKind.AWARE)
        jobs = self.jobs.submit(prepared, owner=user.name, position=position)
        if getattr(self._starting_now, 'active', False) and self._dryruns:
            for job in jobs:
                self._dryruns.run_unchecked(job.id)
            self._controller.queue.wake()
        return jobs

    @contextlib.contextmanager
    def starting_now(self):
        """Jobs submitted in this block do not wait for their dry run.

        For NICOS's ``start`` command: "run this now", as typed at a
        console, whose clients wait for the script to start at once.
        """
        self._starting_now.active = True
        try:
            yield
        finally:
            self._starting_now.active = False

    def checked_edits(self, edits: Mapping[str, Any], label: str,
                      when: str = 'in an edit') -> Dict[str, Any]:
        """Edits of a job, checked like a submission."""
        return parse_edits(edits, self._catalog(), label, when)

    def commands_changed(self) -> None:
        """Command files changed: let the script thread reload them when idle."""
        self._controller.queue.wake()

    def before_next_job(self) -> None:
        """Called by the script thread before it starts a job (none runs)."""
        device = find_command_catalog()
        if device is not None:
            device.apply_changes()
        if self._dryruns is not None:
            self._dryruns.start()

    def job_ready(self, job: Job) -> bool:
        """Whether *job* may start (its dry run is done, if it must be)."""
        return self._dryruns is None or self._dryruns.ready(job)

    def dry_run(self, spec: Mapping[str, Any], user: User) -> Dict[str, Any]:
        """Check and dry-run a job that is not queued; returns the report."""
        prepared = parse_spec(spec, self._catalog(),
                              default_kind=JobKind.AWARE)
        if prepared.kind is JobKind.BLACKBOX:
            return blackbox_report(prepared.source)
        if self._dryruns is None:
            return not_possible('dry runs are off (dryrunpolicy)')
        return self._dryruns.validate(prepared.source, user)

    def user_for(self, job: Job) -> User:
        """The NICOS user a job runs as: whoever last changed what it runs,
        at that account's level; `UnknownAccount` if there is no such
        account (see `runs_as`)."""
        account = runs_as(job, self._level_of)
        return User(account.name, account.level)

    def _level_of(self, name: str) -> Optional[int]:
        """The user level of account *name*, None if there is none."""
        for auth in self._attached_authenticators:
            if isinstance(auth, HashedAccounts):
                level = auth.level_of(name)
                if level is not None:
                    return level
        return None

    def job_dict(self, job: Job) -> Dict[str, Any]:
        """A job for clients; a running job's line is read live.

        The controller tracks the line; storing every line change on the
        job would slow down every executed line of a script. A generated
        job also gets its calls as readable lines, with units.
        """
        data = job.to_dict()
        if job.state == JobState.RUNNING:
            data['current_line'] = self._controller.lineno
        if job.calls:
            data['call_lines'] = describe_calls(job.calls, self._catalog())
        return data

    def timeline(self) -> Dict[str, Any]:
        """Expected times of the current and the waiting jobs, now."""
        return timeline(self.jobs.current(), self.jobs.waiting(), time.time(),
                        self.jobs.state.held)

    def report_progress(self, fraction: float, message: str) -> None:
        if self.jobs.current() is not None:
            self.jobs.report_progress(fraction, message)

    def _current(self, action: str) -> Job:
        job = self.jobs.current()
        if job is None:
            raise InvalidTransition(f'cannot {action}: no job is running')
        return job

    def pause_current(self, user: User, level: int) -> None:
        job = self._current('pause')
        if job.kind == JobKind.BLACKBOX:
            raise InvalidTransition(f'job {job.id} is a black-box job and '
                                    'cannot be paused; abort it instead')
        if self.jobs.is_paused():
            raise InvalidTransition(f'job {job.id} is already paused')
        if self._controller.status == STATUS_STOPPING:
            raise InvalidTransition(f'job {job.id} is being aborted')
        session.log.info('Pause requested by %s', user.name)
        self._controller.interrupt(('break', level, user.name))
        if level >= BREAK_NOW:
            session.countloop_request = ('pause', f'Paused by {user.name}')

    def resume_current(self, user: User) -> None:
        job = self._current('resume')
        if not self.jobs.is_paused():
            raise InvalidTransition(f'job {job.id} is not paused')
        self._controller.set_continue(('continue', 0, user.name))

    def continue_queue(self, user: User) -> None:
        """What a stock client's ``continue`` means while no job runs: the
        queue waits for a person (`StockView.attention`), who releases
        its hold or runs the first held-back job anyway."""
        attention = self.stock.attention()
        if attention is None:
            raise InvalidTransition('nothing to continue: no job is paused, '
                                    'the queue is not held and no queued job '
                                    'is held back')
        kind, job_id = attention
        if kind == HELD:
            state = self.jobs.state
            self.jobs.release()
            session.log.info('Queue released by %s (continue): the %s hold '
                             '(%s) is over, the waiting jobs run.', user.name,
                             'safety' if state.hold_kind == SAFETY else
                             'manual', state.hold_reason)
        else:
            reason = self.jobs.get(job_id).hold_reason
            job = self.jobs.confirm(job_id)
            session.log.info('Job %d %r confirmed by %s (continue): it runs '
                             'although it was held back (%s).', job.id,
                             job.name, user.name, reason)

    def abort_current(self, user: User, level: int) -> None:
        self._current('abort')
        self._controller.script_stop(level, user)

    def set_blackbox(self, run: Optional[object]) -> None:
        """The black-box process of the current job (for aborting it)."""
        self._blackbox = run

    def abort_blackbox(self) -> None:
        """Terminate the current black-box job's processes, if any."""
        run = self._blackbox
        if run is not None:
            run.abort()
