"""Daemon commands of the unified job queue (``ss_*``).

Each ``ss_*`` command takes JSON-ready arguments, hands them to the
application (`app.server.ScriptServer`, the daemon's ``app``) and replies
JSON-ready data; refusals are error replies whose text says what was
wrong. See docs/PROTOCOL.md. `queue_command` also registers the stock
commands that `stockcommands` re-defines. Which user level may call what
is decided in `access`.
"""

import inspect

from nicos.services.daemon.handler import command_wrappers

from nicos_scriptserver.wire import protocol
from nicos_scriptserver.app.server import ScriptServer
from nicos_scriptserver.daemon.catalogdev import find_command_catalog
from nicos_scriptserver.queue import Caller, QueueError


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


def _app(handler) -> ScriptServer:
    return handler.daemon.app


def _caller(handler) -> Caller:
    return Caller.of(handler.user)


@queue_command('ss_submit')
def ss_submit(self, jobs, position=None):
    """Submit one job (a dict) or a batch (a list of dicts); reply: the jobs."""
    return [job.to_dict()
            for job in _app(self).submit(jobs, _caller(self), position)]


@queue_command('ss_queue')
def ss_queue(self):
    """The queue: current job, waiting jobs in order (rows), the hold: held,
    its reason, its kind and the jobs a safety hold protects; seq: the
    number of the last change (see ss_changes)."""
    return _app(self).listing(None)


@queue_command('ss_changes')
def ss_changes(self, since=None):
    """What changed in the queue after change number since (the seq of an
    ss_queue reply or event): the changed waiting jobs (rows), the ids of
    changed jobs that left, the order, the current job and the hold in
    full. full is true when since is too far back (or null, or a number
    the queue never gave): then every waiting job is listed."""
    return _app(self).listing(since)


@queue_command('ss_job')
def ss_job(self, job_id):
    """One job with everything about it (its content, to edit it)."""
    app = _app(self)
    return app.job_view(app.get(job_id))


@queue_command('ss_edit')
def ss_edit(self, job_id, changes, version=None):
    """Edit a waiting job: changes is a dict of name/source/calls. Only its
    owner or an admin may; the job then runs as the editor. With version
    (the job's as the client saw it), refused if someone changed it since;
    so are the other changes of one job that take a version."""
    return _app(self).edit(job_id, changes, _caller(self), version).to_dict()


@queue_command('ss_move')
def ss_move(self, job_id, to, version=None):
    """Move a waiting job to an index, or 'up'/'down'/'top'/'bottom'."""
    _app(self).move(job_id, to, _caller(self), version)


@queue_command('ss_skip')
def ss_skip(self, job_id, version=None):
    """Skip a waiting job: it stays in the queue but does not run."""
    _app(self).skip(job_id, _caller(self), version)


@queue_command('ss_unskip')
def ss_unskip(self, job_id, version=None):
    """Let a skipped job run again in its place."""
    _app(self).unskip(job_id, _caller(self), version)


@queue_command('ss_repeat')
def ss_repeat(self, job_id, times=1, version=None):
    """Queue copies of a job right after it, as the caller's jobs; reply:
    the new jobs."""
    return [job.to_dict() for job in
            _app(self).repeat(job_id, times, _caller(self), version)]


@queue_command('ss_duplicate')
def ss_duplicate(self, job_id):
    """Queue one copy of a job right after it, as the caller's job; reply:
    the new job."""
    return _app(self).duplicate(job_id, _caller(self)).to_dict()


@queue_command('ss_remove')
def ss_remove(self, job_id, version=None):
    """Remove a waiting job."""
    _app(self).remove(job_id, version)


@queue_command('ss_clear')
def ss_clear(self):
    """Remove every waiting job; reply: their ids."""
    return _app(self).clear()


@queue_command('ss_requeue')
def ss_requeue(self, job_id, changes=None, position=None):
    """Queue an aborted/failed/interrupted job again, optionally edited."""
    return _app(self).requeue(job_id, changes, position,
                              _caller(self)).to_dict()


@queue_command('ss_history')
def ss_history(self, limit=50, before=None, user=None, state=None,
               since=None, until=None):
    """Finished jobs, newest first, with their results and error reports;
    optionally only those of one user, in one state (or a list), finished
    in [since, until) (epoch seconds)."""
    return [job.to_dict() for job in
            _app(self).history(limit, before, user, state, since, until)]


@queue_command('ss_audit')
def ss_audit(self, limit=50, job_id=None):
    """The queue's audit trail, newest first: every change with when, who,
    from which client, the operation, the jobs and why; job_id: of one job
    only."""
    return _app(self).audit(limit, job_id)


@queue_command('ss_hold')
def ss_hold(self):
    """Let the current job finish, then start nothing, also jobs queued
    later, until released."""
    _app(self).hold(_caller(self))


@queue_command('ss_release')
def ss_release(self):
    """Start running waiting jobs again (ends a hold of either kind)."""
    _app(self).release()


@queue_command('ss_pause')
def ss_pause(self, level=2):
    """Pause the current job at its next pause point."""
    _app(self).pause(_caller(self), level)


@queue_command('ss_resume')
def ss_resume(self):
    """Resume the paused job."""
    _app(self).resume(_caller(self))


@queue_command('ss_abort')
def ss_abort(self, level=2):
    """Abort the current job at its next safe point; the jobs waiting now
    are held (a safety hold)."""
    _app(self).abort(_caller(self), level)


@queue_command('ss_confirm')
def ss_confirm(self, job_id, version=None):
    """Let a job that was held back (e.g. by its dry run) run in its turn."""
    return _app(self).confirm(job_id, _caller(self), version).to_dict()


@queue_command('ss_dryrun')
def ss_dryrun(self, job):
    """Check and dry-run a job spec without queueing it; reply: the report."""
    return _app(self).dry_run(job, _caller(self))


@queue_command('ss_timeline')
def ss_timeline(self):
    """Expected end of the current job and start/end of the waiting ones."""
    return _app(self).timeline()


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
