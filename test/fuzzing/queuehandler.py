"""The daemon's new commands (``ss_*`` and the re-registered stock ones),
driven in-process without a daemon, through the real application.

`QueueHandler` calls the registered command wrappers (exactly what NICOS's
handler calls for a request) for a daemon whose application is the real
`ScriptServer` over an in-memory queue. Only NICOS is stood in for:
`ScriptThread` does a pause, resume or abort at once, as the script
thread would a little later; the command catalog is the repo's; every
account exists, at user level; dry runs are off (the integration fuzzing
covers them through a real daemon). Imports NICOS (the wrappers live in
its registry) but starts nothing.
"""

from __future__ import annotations

import itertools
import logging
from types import SimpleNamespace
from typing import Any, List, Optional, Tuple

from nicos.protocols.daemon import DAEMON_COMMANDS

from nicos_scriptserver.wire.commandtable import CODES


def _import_handler():
    """NICOS's handler module, imported as the daemon imports it.

    At import it refuses any registered command without a handler; in a
    test process a client module may have registered ours already
    (`protocol.register`), so they are taken out for the import.
    """
    saved = {name: DAEMON_COMMANDS.pop(name) for name in CODES
             if name in DAEMON_COMMANDS}
    try:
        from nicos.services.daemon import handler
    finally:
        DAEMON_COMMANDS.update(saved)
    return handler


command_wrappers = _import_handler().command_wrappers
from nicos_scriptserver.app.ports import Ports  # noqa: E402
from nicos_scriptserver.app.server import ScriptServer  # noqa: E402
from nicos_scriptserver.catalog import Catalog  # noqa: E402
# Registering the handlers:
from nicos_scriptserver.daemon import sscommands  # noqa: E402
from nicos_scriptserver.daemon import stockcommands  # noqa: E402,F401
from nicos_scriptserver.queue import Caller, Job, JobQueue  # noqa: E402

#: Commands fuzzed in-process: ss_dryrun needs NICOS's simulation and
#: ss_catalog the session's catalog device (the integration fuzzing
#: covers both through a real daemon).
COMMANDS = sorted(
    name for name, wrapper in command_wrappers.items()
    if getattr(getattr(wrapper, 'orig_function', None), '__module__', None)
    == sscommands.__name__ and name not in ('ss_dryrun', 'ss_catalog'))
#: NICOS's user level, which every account has here.
USER = 10
# A fixed "now": a replayed input does exactly the same.
EPOCH = 1_700_000_000.0


class ScriptThread:
    """NICOS's script thread as the application steers it: what is asked
    of the current job happens at once."""

    def __init__(self) -> None:
        self.app: Optional[ScriptServer] = None

    def pause(self, job: Job, level: int, by: Caller) -> None:
        self.app.paused(None)

    def resume(self, by: Caller) -> None:
        self.app.resumed()

    def abort(self, job: Job, level: int, by: Caller) -> None:
        self.app.finished('aborted', None)

    def emergency_stop(self, job: Optional[Job], by: Caller) -> None:
        if job is not None:
            self.app.finished('aborted', None)

    def line(self) -> Optional[int]:
        return None

    def wake(self) -> None:
        pass


class RepoCommands:
    """The command catalog of the repo's commands/, as it is."""

    def __init__(self, catalog: Optional[Catalog]) -> None:
        self.catalog = catalog

    def lookup(self) -> Optional[Catalog]:
        return self.catalog

    def between_jobs(self) -> None:
        pass


class QueueHandler:
    """What a command wrapper sees of NICOS's connection handler."""

    def __init__(self, catalog: Optional[Catalog]) -> None:
        ticks = itertools.count(int(EPOCH))
        thread = ScriptThread()
        self.app = thread.app = ScriptServer(
            JobQueue(':memory:', clock=lambda: float(next(ticks))),
            Ports(thread, RepoCommands(catalog), lambda name: USER,
                  lambda: logging.getLogger('fuzzing'), clock=lambda: EPOCH))
        self.daemon = SimpleNamespace(app=self.app)
        self.user = SimpleNamespace(name='fuzz', level=USER)
        self.replies: List[Tuple[str, Any]] = []

    def send_ok_reply(self, payload: Any) -> None:
        self.replies.append(('ok', payload))

    def send_error_reply(self, text: str) -> None:
        self.replies.append(('error', text))

    def call(self, command: str, args: List[Any]) -> Tuple[str, Any]:
        """Run *command* with *args* as the daemon would; returns its one
        reply. An exception escaping here would, in the daemon, end the
        client's connection (NICOS's handler loop does not catch it)."""
        del self.replies[:]
        command_wrappers[command](self, args)
        assert len(self.replies) == 1, (command, self.replies)
        return self.replies[0]

    # The script thread's side, so that the commands meet every job state.
    def run_next(self) -> None:
        """Start the next waiting job, if one may start."""
        self.app.next_job()

    def end_current(self, outcome: str) -> None:
        """End the current job (done, failed or aborted), if one runs."""
        if self.app.queue.current() is not None:
            self.app.finished(outcome, None)

    def close(self) -> None:
        self.app.queue.close()
