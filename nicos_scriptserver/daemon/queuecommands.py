"""Daemon commands of the unified job queue (``ss_*``).

Each ``ss_*`` command takes JSON-ready arguments and replies JSON-ready
data; refusals are error replies whose text says what was wrong. See
docs/PROTOCOL.md. `queue_command` also registers the stock commands that
`stockcommands` re-defines. Which user level may call what is decided in
`access`.
"""

import inspect

from nicos.services.daemon.handler import command_wrappers

from nicos_scriptserver import protocol
from nicos_scriptserver.daemon.catalogdev import find_command_catalog
from nicos_scriptserver.estimates import summary
from nicos_scriptserver.queue import Caller, QueueError
from nicos_scriptserver.app.spec import parse_job_id


def _jobs(handler):
    return handler.daemon.jobs


def queue_command(name: str):
    """Register ``func(handler, *args)`` as daemon command *name*.

    The function returns the reply. Wrong arguments, `QueueError` and bad
    values become error replies naming the command. (NICOS's handler loop
    does not catch what escapes: the client would lose its connection.)
    """
    def deco(func):
        signature = inspect.signature(func)
        usage = f"{name}({', '.join(list(signature.parameters)[1:])})"

        def wrapper(handler, args):
            try:
                signature.bind(handler, *args)
            except TypeError as err:
                handler.send_error_reply(f'{name}: {err}; usage: {usage}')
                return
            try:
                reply = func(handler, *args)
            # OverflowError: int() of an infinite number (e.g. a repeat
            # count of 1e999 or inf from a JSON or pickle client).
            except (QueueError, ValueError, TypeError, OverflowError) as err:
                handler.send_error_reply(f'{name}: {err}')
                return
            handler.send_ok_reply(reply)

        wrapper.__name__ = name
        wrapper.orig_function = func
        command_wrappers[name] = wrapper
        return func
    return deco


@queue_command('ss_submit')
def ss_submit(self, jobs, position=None):
    """Submit one job (a dict) or a batch (a list of dicts); reply: the jobs."""
    batch = jobs if isinstance(jobs, list) else [jobs]
    created = self.daemon.submit(batch, self.user, position)
    return [job.to_dict() for job in created]


@queue_command('ss_queue')
def ss_queue(self):
    """The queue: current job, waiting jobs in order (rows), the hold: held,
    its reason, its kind and the jobs a safety hold protects."""
    jobs = _jobs(self)
    current = jobs.current()
    return dict(jobs.state.to_dict(),
                current=self.daemon.job_dict(current) if current else None,
                columns=protocol.LISTING_COLUMNS,
                waiting=[_row(job) for job in jobs.waiting()])


def _row(job) -> list:
    return [job.id, job.kind.value, job.name, job.owner, job.state.value,
            job.batch_id, job.batch_index, job.batch_size, job.queued_at,
            summary(job.estimate), job.held, job.hold_reason,
            job.requeued_from]


@queue_command('ss_job')
def ss_job(self, job_id):
    """One job with everything about it (its content, to edit it)."""
    return self.daemon.job_dict(_jobs(self).get(parse_job_id(job_id)))


@queue_command('ss_edit')
def ss_edit(self, job_id, changes):
    """Edit a waiting job: changes is a dict of name/source/calls. Only its
    owner or an admin may; the job then runs as the editor."""
    job_id = parse_job_id(job_id)
    edits = self.daemon.checked_edits(changes, f'job {job_id}')
    return _jobs(self).edit(job_id, by=Caller(self.user.name, self.user.level),
                            **edits).to_dict()


@queue_command('ss_move')
def ss_move(self, job_id, to):
    """Move a waiting job to an index, or 'up'/'down'/'top'/'bottom'."""
    _jobs(self).move(parse_job_id(job_id), to)


@queue_command('ss_skip')
def ss_skip(self, job_id):
    """Skip a waiting job: it stays in the queue but does not run."""
    _jobs(self).skip(parse_job_id(job_id))


@queue_command('ss_unskip')
def ss_unskip(self, job_id):
    """Let a skipped job run again in its place."""
    _jobs(self).unskip(parse_job_id(job_id))


@queue_command('ss_repeat')
def ss_repeat(self, job_id, times=1):
    """Queue copies of a job right after it, as the caller's jobs; reply:
    the new jobs."""
    return [job.to_dict() for job in _jobs(self).repeat(
        parse_job_id(job_id), int(times), owner=self.user.name)]


@queue_command('ss_duplicate')
def ss_duplicate(self, job_id):
    """Queue one copy of a job right after it, as the caller's job; reply:
    the new job."""
    return _jobs(self).duplicate(parse_job_id(job_id),
                                 owner=self.user.name).to_dict()


@queue_command('ss_remove')
def ss_remove(self, job_id):
    """Remove a waiting job."""
    _jobs(self).remove(parse_job_id(job_id))


@queue_command('ss_clear')
def ss_clear(self):
    """Remove every waiting job; reply: their ids."""
    return _jobs(self).clear()


@queue_command('ss_requeue')
def ss_requeue(self, job_id, changes=None, position=None):
    """Queue an aborted/failed/interrupted job again, optionally edited."""
    job_id = parse_job_id(job_id)
    edits = self.daemon.checked_edits(changes or {}, f're-queued job {job_id}',
                                      'when re-queuing')
    return _jobs(self).requeue(job_id, position=position,
                               owner=self.user.name, **edits).to_dict()


@queue_command('ss_history')
def ss_history(self, limit=50, before=None):
    """Finished jobs, newest first, with their results and error reports."""
    before = None if before is None else parse_job_id(before)
    return [job.to_dict() for job in _jobs(self).history(int(limit), before)]


@queue_command('ss_hold')
def ss_hold(self):
    """Let the current job finish, then start nothing, also jobs queued
    later, until released."""
    _jobs(self).hold(f'held by {self.user.name}')


@queue_command('ss_release')
def ss_release(self):
    """Start running waiting jobs again (ends a hold of either kind)."""
    _jobs(self).release()


@queue_command('ss_pause')
def ss_pause(self, level=2):
    """Pause the current job at its next pause point."""
    self.daemon.pause_current(self.user, int(level))


@queue_command('ss_resume')
def ss_resume(self):
    """Resume the paused job."""
    self.daemon.resume_current(self.user)


@queue_command('ss_abort')
def ss_abort(self, level=2):
    """Abort the current job at its next safe point; the jobs waiting now
    are held (a safety hold)."""
    self.daemon.abort_current(self.user, int(level))


@queue_command('ss_confirm')
def ss_confirm(self, job_id):
    """Let a job that was held back (e.g. by its dry run) run in its turn."""
    return _jobs(self).confirm(parse_job_id(job_id)).to_dict()


@queue_command('ss_dryrun')
def ss_dryrun(self, job):
    """Check and dry-run a job spec without queueing it; reply: the report."""
    return self.daemon.dry_run(job, self.user)


@queue_command('ss_timeline')
def ss_timeline(self):
    """Expected end of the current job and start/end of the waiting ones."""
    return self.daemon.timeline()


@queue_command('ss_catalog')
def ss_catalog(self):
    """The instrument's commands as JSON text: {generation, commands, errors}.

    Text, not data: the catalog keeps it ready per generation, where
    serializing a thousand entries for every request would take ~40 ms.
    """
    device = find_command_catalog()
    if device is None:
        raise ValueError('no command catalog: the instrument setup is not loaded')
    return device.catalog.to_json()


protocol.register()
