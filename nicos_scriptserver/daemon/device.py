"""The script server's NICOS daemon device: it builds the application."""

import sys
import threading
from pathlib import Path
from typing import Optional

from nicos.core import Override, Param, floatrange, intrange, oneof
from nicos.services.daemon import NicosDaemon
from nicos import session

from nicos_scriptserver.app.dryruns import DryRuns, DryRunSettings
from nicos_scriptserver.app.ports import Ports
from nicos_scriptserver.app.server import ScriptServer
from nicos_scriptserver.catalog import CatalogChanges
from nicos_scriptserver.daemon import access, plaindata, sscommands, \
    stockcommands  # noqa: F401 (registers commands)
from nicos_scriptserver.daemon.auth import HashedAccounts
from nicos_scriptserver.daemon.catalogdev import SessionCommands
from nicos_scriptserver.daemon.simulation import (
    SessionDryRunner, use_private_channel_for_stock_dry_runs)
from nicos_scriptserver.daemon.events import EventRelay
from nicos_scriptserver.daemon.execution import ScriptServerController
from nicos_scriptserver.daemon.stockview import StockView
from nicos_scriptserver.daemon.timelineevents import TimelineEmitter
from nicos_scriptserver.queue import JobQueue, QueueError

#: Seconds between two looks for finished jobs to archive.
ARCHIVE_INTERVAL = 3600
#: How long a thread that computes keeps the GIL while another waits for
#: it (Python's default: 5 ms).
SWITCH_INTERVAL = 0.001


class ScriptServerDaemon(NicosDaemon):
    """NICOS daemon of a script server, running one persistent job queue.

    Every entry point (the stock ``queue``/``start``/``rearrange``/
    ``unqueue`` commands that NICOS's GUI, console and IBEX send, and the
    ``ss_*`` commands) acts on the same queue, kept in an SQLite file,
    through the application (`app`). Guest logins may only watch.
    """

    parameters = {
        'queuefile': Param('SQLite file that keeps the queue and its history',
                           type=str, mandatory=True),
        'historydays': Param('Finished jobs that finished more than this '
                             'many days ago move to the archive file next '
                             'to queuefile (<name>-archive.sqlite; checked '
                             'at start and hourly); 0: keep them all in '
                             'queuefile', type=floatrange(0, 36500),
                             default=0, unit='d'),
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
        'bridgeddryrunlimit': Param('Wall time after which the dry run of a '
                                    'black-box or isolated job is cut off '
                                    'and its child killed; the job then has '
                                    'no estimate of its dry run ("not '
                                    'possible")', type=floatrange(1, 3600),
                                    default=30, unit='s'),
        'isolateaware': Param('Whether aware jobs run isolated, in their own '
                              'process through the bridge, unless submitted '
                              'with isolated: false (lines typed at a console '
                              'never are)', type=bool, default=False),
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
        # A thread that computes (a dry run's bookkeeping, the command
        # watcher parsing a file) otherwise holds up the script thread
        # starting the next job, or a client's reply, for 5 ms at a time.
        sys.setswitchinterval(SWITCH_INTERVAL)
        self._quitting = threading.Event()
        access.install()
        plaindata.install()
        use_private_channel_for_stock_dry_runs()
        jobs = JobQueue(self.queuefile)
        if jobs.state.on_failure != self.failurepolicy:
            jobs.set_on_failure(self.failurepolicy)
        self._controller_replaced = threading.Event()
        NicosDaemon.doInit(self, mode)
        self._stock = StockView(jobs, self.emit_event, lambda: session.log)
        self._controller = ScriptServerController(
            self.log, self._stock, self.simmode, self.autosimulate)
        dry_runs = None
        if self.dryrunpolicy != 'off':
            runner = SessionDryRunner(self.dryrunlimit,
                                      self.bridgeddryrunlimit)
            dry_runs = DryRuns(jobs, runner, self.level_of, DryRunSettings(
                self.dryrunpolicy, self.dryrunworkers, self.dryrunlimit),
                self.log)
        self._app = ScriptServer(jobs, Ports(
            self._controller, SessionCommands(), self.level_of,
            lambda: session.log), dry_runs, self.isolateaware)
        self._controller.serve(self._app)
        self._stock.attach(self._controller)
        self._controller_replaced.set()
        jobs.add_numbered_listener(EventRelay(jobs, self.emit_event))
        jobs.add_listener(self._stock)
        self._timeline_events = TimelineEmitter(self._app.timeline,
                                                self.emit_event)
        jobs.add_listener(self._timeline_events)
        if self.historydays:
            threading.Thread(target=self._archive_history, args=(jobs,),
                             daemon=True, name='history archive').start()

    def _archive_history(self, jobs: JobQueue) -> None:
        queuefile = Path(self.queuefile)
        archive = queuefile.with_name(f'{queuefile.stem}-archive.sqlite')
        while True:
            try:
                moved = jobs.archive_history(self.historydays, archive)
            except QueueError as err:
                self.log.warning('history archive: %s', err)
            else:
                if moved:
                    self.log.info('moved %d finished jobs older than %g days '
                                  'to %s', moved, self.historydays, archive)
            if self._quitting.wait(ARCHIVE_INTERVAL):
                return

    def _watch_entry(self):
        # NICOS's watch loop reads the controller once, as its thread
        # starts inside NicosDaemon.doInit: it must see ours, which holds
        # the watch expressions clients add.
        self._controller_replaced.wait()
        NicosDaemon._watch_entry(self)

    def quit(self, signum=None):
        self._quitting.set()
        self._timeline_events.stop()
        self._app.close()
        NicosDaemon.quit(self, signum)

    @property
    def app(self) -> ScriptServer:
        """The application: every use case of the job queue."""
        return self._app

    @property
    def stock(self) -> StockView:
        """What stock NICOS clients see of the queue."""
        return self._stock

    def commands_changed(self, changes: CatalogChanges) -> None:
        """Command files changed: let the script thread reload them when
        idle, and check the waiting jobs against the new catalog."""
        self._controller.wake()
        self.app.catalog_changed(changes)

    def level_of(self, name: str) -> Optional[int]:
        """The user level of account *name*, None if there is none."""
        for auth in self._attached_authenticators:
            if isinstance(auth, HashedAccounts):
                level = auth.level_of(name)
                if level is not None:
                    return level
        return None
