"""The daemon's new commands (``ss_*`` and the re-registered ``unqueue``,
``update``, ``break``), driven in-process without a daemon.

`QueueHandler` calls the registered command wrappers (exactly what NICOS's
handler calls for a request) over a real `JobQueue` in an in-memory SQLite
database. `FakeDaemon` stands in for the few `ScriptServerDaemon` methods
the commands use; it keeps their pure checks (via `app.spec`, the job
queue, `describe_calls`, `timeline`) and replaces only what needs a NICOS
session or script thread: a pause/resume/abort request is applied to the
queue at once, as the script thread would apply it later. Imports NICOS
(the wrappers live in its registry) but starts nothing.
"""

from __future__ import annotations

import itertools
from types import SimpleNamespace
from typing import Any, Dict, List, Mapping, Optional, Tuple

from nicos.protocols.daemon import DAEMON_COMMANDS

from nicos_scriptserver.app.spec import parse_edits, parse_specs
from nicos_scriptserver.commandtable import CODES


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
from nicos_scriptserver.catalog import Catalog, describe_calls
from nicos_scriptserver.daemon import queuecommands  # noqa: F401 (registers them)
from nicos_scriptserver.estimates import timeline
from nicos_scriptserver.queue import (InvalidTransition, Job, JobKind,
                                      JobQueue)

#: Commands fuzzed in-process: ss_dryrun needs NICOS's simulation and
#: ss_catalog the session's catalog device (the integration fuzzing
#: covers both through a real daemon).
COMMANDS = sorted(
    name for name, wrapper in command_wrappers.items()
    if getattr(getattr(wrapper, 'orig_function', None), '__module__', None)
    == queuecommands.__name__ and name not in ('ss_dryrun', 'ss_catalog'))


class FakeDaemon:
    """The daemon side of the commands over an in-memory queue."""

    def __init__(self, catalog: Optional[Catalog]) -> None:
        self.catalog = catalog
        # A deterministic clock: a replayed input does exactly the same.
        ticks = itertools.count(1_700_000_000)
        self.jobs = JobQueue(':memory:', clock=lambda: float(next(ticks)))

    def submit(self, specs: List[Mapping[str, Any]], user: Any,
               position: Any = None) -> List[Job]:
        prepared = parse_specs(specs, self.catalog, JobKind.AWARE)
        return self.jobs.submit(prepared, owner=user.name, position=position)

    def checked_edits(self, edits: Mapping[str, Any], label: str,
                      when: str = 'in an edit') -> Dict[str, Any]:
        return parse_edits(edits, self.catalog, label, when)

    def job_dict(self, job: Job) -> Dict[str, Any]:
        data = job.to_dict()
        if job.calls:
            data['call_lines'] = describe_calls(job.calls, self.catalog)
        return data

    def timeline(self) -> Dict[str, Any]:
        return timeline(self.jobs.current(), self.jobs.waiting(),
                        1_700_000_000.0, self.jobs.state.held)

    def _current(self, action: str) -> Job:
        job = self.jobs.current()
        if job is None:
            raise InvalidTransition(f'cannot {action}: no job is running')
        return job

    def pause_current(self, user: Any, level: int) -> None:
        job = self._current('pause')
        if job.kind == JobKind.BLACKBOX:
            raise InvalidTransition(f'job {job.id} is a black-box job')
        if self.jobs.is_paused():
            raise InvalidTransition(f'job {job.id} is already paused')
        self.jobs.pause()

    def resume_current(self, user: Any) -> None:
        job = self._current('resume')
        if not self.jobs.is_paused():
            raise InvalidTransition(f'job {job.id} is not paused')
        self.jobs.resume()

    def abort_current(self, user: Any, level: int) -> None:
        self._current('abort')
        self.jobs.finish('aborted')


class QueueHandler:
    """What a command wrapper sees of NICOS's connection handler."""

    def __init__(self, catalog: Optional[Catalog]) -> None:
        self.daemon = FakeDaemon(catalog)
        self.user = SimpleNamespace(name='fuzz', level=10)
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
        self.daemon.jobs.start_next()

    def end_current(self, outcome: str) -> None:
        """End the current job (done, failed or aborted), if one runs."""
        if self.daemon.jobs.current() is not None:
            self.daemon.jobs.finish(outcome)

    def close(self) -> None:
        self.daemon.jobs.close()
