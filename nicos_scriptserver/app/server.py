"""The script server's use cases: what every client may do to the queue.

`ScriptServer` is what the ``ss_*`` commands, the stock commands NICOS's
clients send, the console's commands and the script thread call. It
takes what clients send (job specs, edits, ids, positions: checked once,
by `spec`), decides with the queue's state machine (`queue.lifecycle`
says where a job may go), and reaches NICOS only through `ports`: the
script thread, the command catalog, the accounts, the log, a clock, and
the dry runs (`dryruns.DryRuns`, which also gate when a job may start).
Refusals are `QueueError`s (and `ValidationError` for generated calls)
whose text the user reads.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

from nicos_scriptserver.app.attention import HELD, Attention, attention
from nicos_scriptserver.app.callsteps import step_messages
from nicos_scriptserver.app.dryruns import DryRuns, bridged_kind
from nicos_scriptserver.app.listing import Listings
from nicos_scriptserver.app.ports import Ports
from nicos_scriptserver.app.progress import ProgressStack
from nicos_scriptserver.app.revalidation import changed_commands, revalidate
from nicos_scriptserver.app.spec import (parse_edits, parse_job_id,
                                         parse_spec, parse_specs,
                                         parse_version, read_back)
from nicos_scriptserver.catalog import CatalogChanges, describe_calls
from nicos_scriptserver.catalog.validate import CommandLookup
from nicos_scriptserver.estimates import not_possible, timeline
from nicos_scriptserver.estimates.timeline import (paused_for,
                                                   progress_by_time)
from nicos_scriptserver.queue import (Caller, InvalidTransition, InvalidValue,
                                      Job, JobKind, JobNotFound, JobQueue,
                                      JobState, StoreError, UnknownAccount,
                                      runs_as)
from nicos_scriptserver.queue.historyfilter import HistoryFilter
from nicos_scriptserver.queue.lifecycle import advance
from nicos_scriptserver.queue.model import SAFETY
from nicos_scriptserver.queue.naming import job_name

#: Seconds between attempts to save what must not be lost (a job's end)
#: while the disk fails: doubling from the first to the last.
RETRY_FIRST, RETRY_LAST = 0.05, 1.0


class ScriptServer:
    """The job queue's use cases over *queue*, reaching NICOS through
    *ports*; *dry_runs* None: dry runs are off."""

    def __init__(self, queue: JobQueue, ports: Ports,
                 dry_runs: Optional[DryRuns] = None, isolate: bool = False):
        self.queue = queue
        # Whether aware jobs that do not say run isolated.
        self._isolate = isolate
        self._ports = ports
        self._control = ports.control
        self._dry_runs = dry_runs
        # The progress scopes of the job whose id they are filed under.
        self._progress: Tuple[Optional[int], ProgressStack] = (
            None, ProgressStack())
        self._listings = Listings()

    # -- what clients see ---------------------------------------------------

    def get(self, job_id: Any) -> Job:
        """Any job: waiting, current or finished."""
        return self.queue.get(parse_job_id(job_id))

    def listing(self, since: Any = None) -> Dict[str, Any]:
        """The queue for a client that saw change *since*, as ``ss_queue``
        (*since* None) and ``ss_changes`` reply it (see `Listings`)."""
        return self._listings.reply(self.queue.listing(since), self.job_view)

    def job_view(self, job: Job) -> Dict[str, Any]:
        """A job for clients; a running job's line is read live.

        The script thread tracks the line; storing every line change on
        the job would slow down every executed line of a script. The
        current job also gets how long it has been paused (`paused_for`)
        and its `progress_by_time` (black-box jobs), as of now. A
        generated job also gets its calls as readable lines, with units.
        """
        data = job.to_dict()
        if job.state is JobState.RUNNING:
            data['current_line'] = self._control.line()
        if job.state.current:
            now = self._ports.clock()
            data['paused_for'] = paused_for(job, now)
            data['progress_by_time'] = progress_by_time(job, now)
        if job.calls:
            data['call_lines'] = describe_calls(job.calls,
                                                self._catalog())
        return data

    def history(self, limit: Any = 50, before: Any = None, user: Any = None,
                state: Any = None, since: Any = None, until: Any = None
                ) -> List[Job]:
        """Finished jobs, the last finished first; *before*: a job id, for
        the page before it; only those of *user*, in *state* (one or a
        list) and finished in [*since*, *until*) if given."""
        return self.queue.history(
            int(limit), None if before is None else parse_job_id(before),
            HistoryFilter.parse(user, state, since, until))

    def audit(self, limit: Any = 50, job_id: Any = None
              ) -> List[Dict[str, Any]]:
        """The newest *limit* entries of the queue's audit trail, newest
        first; *job_id*: of that job only."""
        limit = int(limit)
        if not 1 <= limit <= 10_000:
            raise InvalidValue(f'the audit limit must be 1 to 10000, not '
                               f'{limit}')
        return self.queue.audit(
            limit, None if job_id is None else parse_job_id(job_id))

    def timeline(self) -> Dict[str, Any]:
        """Expected times of the current and the waiting jobs, now."""
        return timeline(self.queue.current(), self.queue.waiting(),
                        self._ports.clock(), self.queue.state.held)

    def attention(self) -> Optional[Attention]:
        """Why nothing runs although jobs are queued (see `attention`)."""
        current = self.queue.current()
        queued = [job for job in self.queue.waiting()
                  if job.state is JobState.QUEUED]
        return attention(current is not None, len(queued),
                         sum(job.held for job in queued),
                         queued[0].id if queued else None,
                         self.queue.state.held)

    def runs_as(self, job: Job) -> Caller:
        """The account *job* runs as (`UnknownAccount` if it is gone)."""
        return runs_as(job, self._ports.level_of)

    # -- the waiting list -----------------------------------------------------

    def submit(self, specs: Any, by: Caller, position: Any = None,
               start_now: bool = False) -> List[Job]:
        """Queue one job spec or a batch (a list) as *by*'s; *start_now*:
        they do not wait for their dry run (a line typed at a console,
        whose clients expect it to start at once)."""
        checked = parse_specs(specs, self._catalog(), JobKind.AWARE,
                              self._isolate)
        jobs = self.queue.submit(checked, owner=by.name, position=position)
        if start_now and self._dry_runs is not None:
            for job in jobs:
                self._dry_runs.run_unchecked(job.id)
            self._control.wake()
        return jobs

    def edit(self, job_id: Any, changes: Any, by: Caller,
             version: Any = None) -> Job:
        """Change a waiting job's name, script or calls, as *by* (its
        owner or an admin); the job then runs as *by*. With *version*
        (the one the client saw) only if nobody changed it since
        (`Conflict`)."""
        job_id = parse_job_id(job_id)
        version = parse_version(version)
        catalog = self._catalog()
        edits = parse_edits(changes, catalog, f'job {job_id}')
        if self.queue.get(job_id).kind is JobKind.GENERATED:
            edits = read_back(edits, catalog, f'job {job_id}')
        job = self.queue.edit(job_id, by=by, version=version,
                              **self._named(job_id, edits))
        if 'why' in edits:
            self._log().info('Job %d is now an aware job: %s.', job_id,
                             edits['why'])
        return job

    def requeue(self, job_id: Any, changes: Any, position: Any,
                by: Caller) -> Job:
        """Queue an aborted, failed or interrupted job again, maybe edited,
        as *by*'s new job."""
        job_id = parse_job_id(job_id)
        edits = parse_edits(changes or {}, self._catalog(),
                            f're-queued job {job_id}', 'when re-queuing')
        return self.queue.requeue(job_id, position=position, owner=by.name,
                                  **self._named(job_id, edits))

    def _named(self, job_id: int, edits: Dict[str, Any]) -> Dict[str, Any]:
        """*edits* of job *job_id*, with a name made from the content when
        the job is to have none, or is named after content that changes
        (see `queue.naming`)."""
        try:
            job = self.queue.get(job_id)
        except JobNotFound:
            return edits   # the edit itself says so
        old = job_name(job.source, job.calls)
        new = job_name(edits.get('source', job.source),
                       edits.get('calls', job.calls))
        name = edits.get('name', job.name)
        if new != name and (not name or ('name' not in edits and name == old)):
            return dict(edits, name=new)
        return edits

    def move(self, job_id: Any, to: Any, by: Optional[Caller] = None,
             version: Any = None) -> None:
        """Move a waiting job to an index or 'up'/'down'/'top'/'bottom'.

        This and the other changes of one waiting job take the *version*
        of it the client saw: if someone changed the job since, the change
        is refused (`Conflict`, naming who changed what); None (stock
        clients): the job as it is now. *by* is who asks.
        """
        self.queue.move(parse_job_id(job_id), to, _name(by),
                        parse_version(version))

    def rearrange(self, ids: Iterable[Any]) -> None:
        """Put the listed waiting jobs in the listed order, in their
        places."""
        self.queue.rearrange([parse_job_id(job_id) for job_id in ids])

    def skip(self, job_id: Any, by: Optional[Caller] = None,
             version: Any = None) -> Job:
        """Pass over a waiting job, leaving it in its place (*version*: see
        `move`)."""
        return self.queue.skip(parse_job_id(job_id), _name(by),
                               parse_version(version))

    def unskip(self, job_id: Any, by: Optional[Caller] = None,
               version: Any = None) -> Job:
        """Let a skipped job run again in its turn (*version*: see
        `move`)."""
        return self.queue.unskip(parse_job_id(job_id), _name(by),
                                 parse_version(version))

    def confirm(self, job_id: Any, by: Optional[Caller] = None,
                version: Any = None) -> Job:
        """Let a held-back job run in its turn (*version*: see `move`)."""
        return self.queue.confirm(parse_job_id(job_id), _name(by),
                                  parse_version(version))

    def repeat(self, job_id: Any, times: Any, by: Caller,
               version: Any = None) -> List[Job]:
        """Queue copies of a job right after it, as *by*'s jobs (of a
        waiting job, as it was at *version*: see `move`)."""
        return self.queue.repeat(parse_job_id(job_id), int(times),
                                 owner=by.name,
                                 version=parse_version(version))

    def duplicate(self, job_id: Any, by: Caller) -> Job:
        """Queue one copy of a job right after it, as *by*'s job."""
        return self.queue.duplicate(parse_job_id(job_id), owner=by.name)

    def remove(self, job_id: Any, version: Any = None) -> None:
        """Take a waiting job out of the queue (*version*: see `move`)."""
        self.queue.remove(parse_job_id(job_id), parse_version(version))

    def clear(self) -> List[int]:
        """Remove every waiting job; returns their ids."""
        return self.queue.clear()

    def hold(self, by: Caller) -> None:
        """*by*'s hold: the current job finishes, then nothing starts,
        also jobs queued later, until released."""
        self.queue.hold(f'held by {by.name}')

    def release(self) -> None:
        """Run the waiting jobs again (ends a hold of either kind)."""
        self.queue.release()

    def dry_run(self, spec: Any, by: Caller) -> Dict[str, Any]:
        """Check and dry-run a job spec that is not queued, as *by*;
        returns the report."""
        checked = parse_spec(spec, self._catalog(),
                             default_kind=JobKind.AWARE,
                             isolated=self._isolate)
        if self._dry_runs is None:
            return not_possible('dry runs are off (dryrunpolicy)')
        return self._dry_runs.check(
            checked.source, by, bridged_kind(checked.kind, checked.isolated))

    # -- the current job ------------------------------------------------------

    def pause(self, by: Caller, level: Any) -> None:
        """Pause the current job at its next point of *level* (NICOS's
        break levels; 2: its next pause point)."""
        level = int(level)
        job = self.queue.request_pause()
        self._log().info('Pause requested by %s', by.name)
        self._pass_on(lambda: self._control.pause(job, level, by))

    def resume(self, by: Caller) -> None:
        """Let the paused job go on."""
        job = self.queue.current()
        if job is None:
            raise InvalidTransition('cannot resume the current job: no job '
                                    'is running')
        advance(job, 'resume')   # refused unless it may resume
        self._control.resume(by)

    def abort(self, by: Caller, level: Any) -> None:
        """Abort the current job at its next point of *level*; the jobs
        queued now wait for a person (a safety hold)."""
        level = int(level)
        job = self.queue.request_abort(f'job aborted by {by.name}')
        self._log().info('Abort requested by %s', by.name)
        self._pass_on(lambda: self._control.abort(job, level, by))

    def emergency_stop(self, by: Caller) -> None:
        """Abort the current job at once, if any, and stop every device;
        the jobs queued now wait for a person (a safety hold)."""
        reason = f'emergency stop by {by.name}'
        try:
            job: Optional[Job] = self.queue.request_abort(reason)
        except InvalidTransition:   # no job runs
            job = None
            self.queue.hold_for_safety(reason)
        self._log().warning('Immediate stop requested by %s', by.name)
        self._pass_on(lambda: self._control.emergency_stop(job, by))

    def safety_stop(self, by: Caller, level: Any) -> None:
        """NICOS's own stop (its watchdog): the current job, if any, is
        aborted; the jobs queued now wait for a person either way (stock
        NICOS drops them)."""
        try:
            self.abort(by, level)
        except InvalidTransition:
            if self.queue.current() is not None:
                raise
            self.queue.hold_for_safety(f'job aborted by {by.name}')

    def continue_(self, by: Caller) -> None:
        """A stock client's continue: resume the paused job; with none
        running, the queue that waits for a person (`attention`, a paused
        script to those clients) goes on: its hold is released, or the
        first held-back job is confirmed."""
        if self.queue.current() is not None:
            self.resume(by)
            return
        waiting = self.attention()
        if waiting is None:
            raise InvalidTransition('nothing to continue: no job is paused, '
                                    'the queue is not held and no queued job '
                                    'is held back')
        kind, job_id = waiting
        if kind == HELD:
            state = self.queue.state
            self.queue.release()
            self._log().info('Queue released by %s (continue): the %s hold '
                             '(%s) is over, the waiting jobs run.', by.name,
                             'safety' if state.hold_kind == SAFETY else
                             'manual', state.hold_reason)
        else:
            reason = self.queue.get(job_id).hold_reason
            job = self.queue.confirm(job_id, by.name)
            self._log().info('Job %d %r confirmed by %s (continue): it runs '
                             'although it was held back (%s).', job.id,
                             job.name, by.name, reason)

    def stop(self, by: Caller, level: Any) -> None:
        """A stock client's stop: abort the current job; with none running
        but a queue that waits for a person (a paused script to stock
        clients), its jobs stay held."""
        if self.queue.current() is not None:
            self.abort(by, level)
            return
        if self.attention() is None:
            raise InvalidTransition('no script is running')
        self.queue.hold_for_safety(f'stopped by {by.name}')
        self._log().info('Stop requested by %s: no job runs, the queued jobs '
                         'stay held; continue runs them, unqueue removes '
                         'them.', by.name)

    def call_steps(self, job: Job) -> List[str]:
        """A generated job's progress message for each of its calls (see
        `callsteps`); empty for other jobs."""
        return step_messages(job, self._catalog())

    def report_progress(self, fraction: float, message: str) -> None:
        """The running job's script, or the command it is in, is
        *fraction* done (see `ProgressStack`), with a note."""
        stack = self._progress_stack()
        if stack is not None:
            self._note_progress(*stack.progress(fraction, message))

    def report_step(self, number: int, total: int, message: str) -> None:
        """Step *number* of *total* of the running job's script, or of the
        command it is in, begins."""
        stack = self._progress_stack()
        if stack is not None:
            self._note_progress(*stack.step(number, total, message))

    def _note_progress(self, fraction: Optional[float], message: str) -> None:
        """Save a progress report of the running job. One that cannot be
        saved (the disk fails) is dropped: the next one replaces it, and
        the job must not fail for a note."""
        try:
            self.queue.report_progress(fraction, message)
        except StoreError as err:
            self._log().warning('Progress of the running job not saved: %s',
                                err)

    def enter_command(self) -> None:
        """The running job calls an instrument command: its progress
        reports nest in the job's current step."""
        stack = self._progress_stack()
        if stack is not None:
            stack.enter()

    def leave_command(self) -> None:
        """The instrument command the job called has returned (or raised:
        this runs while its exception, an abort say, passes, and must not
        replace it)."""
        stack = self._progress_stack()
        report = None if stack is None else stack.leave()
        if report is not None:
            with contextlib.suppress(InvalidTransition):  # no longer running
                self._note_progress(*report)

    def _progress_stack(self) -> Optional[ProgressStack]:
        """The current job's progress scopes (new for each job); None
        when no job runs."""
        job = self.queue.current()
        if job is None:
            return None
        if self._progress[0] != job.id:
            self._progress = (job.id, ProgressStack())
        return self._progress[1]

    def catalog_changed(self, changes: CatalogChanges) -> None:
        """Command files changed (*changes*): check the waiting jobs
        against the catalog as it is now (see `revalidation`). Called
        from the catalog's watcher, never from the script thread."""
        catalog = self._catalog()
        if catalog is None:
            return
        touched = revalidate(self.queue, catalog,
                             changed_commands(changes, catalog))
        held = [job for job in touched if job.held_by_catalog]
        if held:
            self._log().warning(
                'Command files changed: %d waiting job(s) held back, as '
                'their calls no longer fit (job %d: %s); fix the command '
                'file or edit the job.', len(held), held[0].id,
                held[0].hold_reason)
        if len(touched) > len(held):
            self._log().info('Command files changed: %d waiting job(s) '
                             'released or dry-run again.',
                             len(touched) - len(held))

    def _catalog(self) -> Optional[CommandLookup]:
        return self._ports.commands.lookup()

    def _log(self) -> logging.Logger:
        return self._ports.log()

    def _pass_on(self, request: Callable[[], None]) -> None:
        """Pass a recorded request on to the script thread; if it cannot
        be, the job goes on as before (a safety hold stays)."""
        try:
            request()
        except InvalidTransition:
            # Unless the job ended or paused meanwhile.
            with contextlib.suppress(InvalidTransition):
                self.queue.withdraw_request()
            raise

    # -- the script thread ----------------------------------------------------

    def next_job(self) -> Optional[Tuple[Job, Caller]]:
        """Start the next job that may start now, if any: returns it and
        the account it runs as. No job runs when this is called.

        A job whose account is gone is started only to fail (its error
        and the failure policy then apply as to any failed job).
        """
        self._ports.commands.between_jobs()
        ready = None
        if self._dry_runs is not None:
            self._dry_runs.start()
            ready = self._dry_runs.ready
        while True:
            job = self.queue.start_next(ready)
            if job is None:
                return None
            try:
                return job, self.runs_as(job)
            except UnknownAccount as err:
                self.queue.finish('failed', error={
                    'type': type(err).__name__, 'message': str(err),
                    'traceback': '', 'line': None})

    def paused(self, line: Optional[int]) -> None:
        """The current job stopped at a pause point, at *line*."""
        self.queue.set_line(line)
        self.queue.pause()

    def resumed(self) -> None:
        """The script thread let the current job go on."""
        if self.queue.is_paused():
            self.queue.resume()

    def finished(self, outcome: str, error: Optional[dict]) -> None:
        """The current job ended: 'done', 'failed' (with its error report)
        or 'aborted'. Saved however long the disk takes to take it: until
        then the job stays the current one and no other starts."""
        delay = RETRY_FIRST
        while True:
            try:
                self.queue.finish(outcome, error=error)
                return
            except StoreError as err:
                if delay == RETRY_FIRST:
                    self._log().error('The end of the running job cannot be '
                                      'saved yet (%s); retrying until it is.',
                                      err)
                time.sleep(delay)
                delay = min(delay * 2, RETRY_LAST)

    def close(self) -> None:
        """Stop the dry runs (the daemon is ending)."""
        if self._dry_runs is not None:
            self._dry_runs.stop()


def _name(by: Optional[Caller]) -> str:
    """Who asks for a change, as the job's last change names them."""
    return by.name if by is not None else ''
