"""NICOS user commands for the job queue, to type at a NICOS console.

They act through the same application (`app.server.ScriptServer`) as the
daemon's ``ss_*`` commands and every other client, as the user who typed
them. A line
typed while a job runs waits behind it, unless the console executes it at
once (NICOS's "execute now", the daemon's ``exec``): the commands that
only look or steer are `parallel_safe` for that, so ``PauseJob()`` works
while the job it pauses runs.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any, Iterator, List

from nicos import session
from nicos.commands import helparglist, parallel_safe, usercommand
from nicos.core import NicosError
from nicos.utils import printTable

from nicos_scriptserver.app.server import ScriptServer
from nicos_scriptserver.queue import Caller, QueueError
from nicos_scriptserver.queue.audit import Actor, acting
from nicos_scriptserver.queue.model import SAFETY
from nicos_scriptserver.clients.timefmt import clock, duration


def _app() -> ScriptServer:
    app = getattr(getattr(session, 'daemon_device', None), 'app', None)
    if app is None:
        raise NicosError('the job queue exists only in the script server daemon')
    return app


def _caller() -> Caller:
    return Caller.of(session.getExecutingUser())


@contextlib.contextmanager
def _refusals() -> Iterator[None]:
    """Queue refusals as NICOS errors: printed as one line, no traceback
    (a UsageError would also print the command's help, which is beside
    the point for "no job 99 in the queue")."""
    try:
        yield
    except (QueueError, ValueError, TypeError) as err:
        raise NicosError(str(err)) from None


def _estimate(job) -> str:
    report = job.estimate or {}
    if report.get('seconds') is not None:
        return duration(report['seconds'])
    return report.get('state', '-')


def _name(job) -> str:
    """A job's name; a generated job without one is named by its calls."""
    if job.name or not job.calls:
        return job.name
    more = f' (+{len(job.calls) - 1})' if len(job.calls) > 1 else ''
    return job.calls[0]['command'] + more


def _state(job) -> str:
    state = job.state.value
    if job.held:
        state += f' (held: {job.hold_reason})' if job.hold_reason else ' (held)'
    return state


@usercommand
@helparglist('')
@parallel_safe
def ListJobs():
    """Lists the running job and the waiting jobs, with their estimates and
    expected start times.

    Job ids in the first column are what `MoveJob`, `SkipJob` and the other
    job commands take.
    """
    app = _app()
    jobs = app.queue
    timeline = app.timeline()
    current = jobs.current()
    if current is None:
        session.log.info('No job is running.')
    else:
        now = timeline['current'] or {}
        progress = f'{current.progress * 100:.0f}%' if current.progress is not None else '-'
        session.log.info('%s: job %d %r, %s %s, expected end %s',
                         current.state.value.capitalize(), current.id,
                         _name(current), progress, current.progress_message or '',
                         clock(now.get('expected_end'), missing='-'))
    starts = {entry['id']: entry['expected_start'] for entry in timeline['jobs']}
    waiting = jobs.waiting()
    if not waiting:
        session.log.info('No jobs are waiting.')
    else:
        rows = [[str(pos), str(job.id), job.kind.value, _name(job), job.owner,
                 _state(job), _estimate(job), clock(starts.get(job.id), missing='-')]
                for pos, job in enumerate(waiting)]
        printTable(('pos', 'id', 'kind', 'name', 'owner', 'state', 'estimate',
                    'expected start'), rows, session.log.info)
    state = jobs.state
    if state.held and state.hold_kind == SAFETY:
        session.log.info('The queue is held for safety (%s): jobs %s and every '
                         'job queued later wait; ReleaseQueue() runs them.',
                         state.hold_reason or 'no reason given',
                         ', '.join(map(str, state.protected)))
    elif state.held:
        session.log.info('The queue is held (%s); ReleaseQueue() runs it again.',
                         state.hold_reason or 'no reason given')


def _submit(spec: dict) -> int:
    with _refusals():
        job, = _app().submit(spec, _caller())
    session.log.info('Queued job %d %r (%s).', job.id, _name(job), job.kind.value)
    return job.id


def _script_path(filename: str) -> str:
    path = os.path.expanduser(filename)
    if not os.path.isabs(path):
        path = os.path.join(session.experiment.scriptpath, path)
    return path


@usercommand
@helparglist('filename, [name], [blackbox=False], [isolated=None]')
@parallel_safe
def SubmitScript(filename, name=None, blackbox=False, isolated=None):
    """Queues a script file as one job; returns the job's id.

    A relative *filename* is looked up in the experiment's script
    directory. The job is named after the file unless *name* is given.
    With ``blackbox=True`` the script runs in its own process as one
    abortable job (no pauses, no progress), calling the instrument's
    commands and devices through the server. With ``isolated=True`` an
    ordinary script runs that way too, and may still pause and report
    progress (the default is the server's setting).
    """
    path = _script_path(str(filename))
    try:
        with open(path, encoding='utf-8') as fp:
            source = fp.read()
    except OSError as err:
        raise NicosError(f'cannot read script {path}: {err.strerror}') from None
    spec = {'kind': 'blackbox' if blackbox else 'aware',
            'name': name or os.path.basename(path), 'source': source}
    if isolated is not None:
        spec['isolated'] = bool(isolated)
    return _submit(spec)


@usercommand
@helparglist('command, arg=value, ...')
@parallel_safe
def SubmitCall(command, **args):
    """Queues one call of an instrument command as a job; returns its id.

    The arguments are checked against the command's parameters (types,
    limits, choices) first, e.g. ``SubmitCall('set_ei', energy=25)``.
    `ListInstrumentCommands` shows the commands and their parameters.
    """
    return _submit({'kind': 'generated', 'name': str(command),
                    'calls': [{'command': str(command), 'args': args}]})


def _act(action: str, *args: Any) -> Any:
    """The application's *action*, its refusals as NICOS errors."""
    with _refusals(), acting(Actor(_caller().name, 'console')):
        return getattr(_app(), action)(*args)


@usercommand
@helparglist('job_id, to')
@parallel_safe
def MoveJob(job_id, to):
    """Moves a waiting job: *to* is a position (0 = next to run) or one of
    'up', 'down', 'top', 'bottom'."""
    _act('move', job_id, to, _caller())
    session.log.info('Moved job %s %s.', job_id,
                     f'to position {to}' if isinstance(to, int) else to)


@usercommand
@helparglist('job_id')
@parallel_safe
def SkipJob(job_id):
    """Skips a waiting job: it keeps its place but does not run until
    `UnskipJob`."""
    _act('skip', job_id, _caller())
    session.log.info('Job %s will be skipped.', job_id)


@usercommand
@helparglist('job_id')
@parallel_safe
def UnskipJob(job_id):
    """Lets a skipped job run again in its place."""
    _act('unskip', job_id, _caller())
    session.log.info('Job %s will run again in its turn.', job_id)


@usercommand
@helparglist('job_id, [times=1]')
@parallel_safe
def RepeatJob(job_id, times=1):
    """Queues *times* copies of a job right after it, as your jobs; returns
    their ids."""
    copies = _act('repeat', job_id, times, _caller())
    ids = [job.id for job in copies]
    session.log.info('Job %s repeated as %s.', job_id, ', '.join(map(str, ids)))
    return ids


@usercommand
@helparglist('job_id')
@parallel_safe
def ConfirmJob(job_id):
    """Lets a held-back job run in its turn anyway.

    A job whose dry run found a problem is held back; `ListJobs` shows why.
    Editing it instead gives it a new dry run, which releases it if it
    passes.
    """
    _act('confirm', job_id, _caller())
    session.log.info('Job %s is no longer held back: it runs in its turn.',
                     job_id)


@usercommand
@helparglist('job_id')
@parallel_safe
def RemoveJob(job_id):
    """Removes a waiting job from the queue."""
    _act('remove', job_id)
    session.log.info('Removed job %s.', job_id)


@usercommand
@helparglist('job_id')
@parallel_safe
def RequeueJob(job_id):
    """Queues a finished (aborted, failed or interrupted) job again, as your
    job; it runs from the start. Returns the new job's id."""
    job = _act('requeue', job_id, None, None, _caller())
    session.log.info('Job %s queued again as job %d.', job_id, job.id)
    return job.id


@usercommand
@helparglist('')
@parallel_safe
def HoldQueue():
    """Lets the running job finish, then starts nothing, also jobs queued
    later, until `ReleaseQueue`."""
    _act('hold', _caller())
    session.log.info('The queue is held.')


@usercommand
@helparglist('')
@parallel_safe
def ReleaseQueue():
    """Lets the waiting jobs run again."""
    _act('release')
    session.log.info('The queue runs again.')


@usercommand
@helparglist('')
@parallel_safe
def PauseJob():
    """Pauses the running job at its next pause point.

    Nothing else runs while it is paused; devices may be moved by hand and
    stay where they were put. `ResumeJob` continues, `AbortJob` ends it.
    """
    _act('pause', _caller(), 2)


@usercommand
@helparglist('')
@parallel_safe
def ResumeJob():
    """Resumes the paused job."""
    _act('resume', _caller())


@usercommand
@helparglist('')
@parallel_safe
def AbortJob():
    """Aborts the running job at its next safe point; the jobs waiting now
    are held.

    The job can be edited and queued again (`RequeueJob`); it then runs from
    the start. `ReleaseQueue` runs the waiting jobs.
    """
    _act('abort', _caller(), 2)


@usercommand
@helparglist('[n=10]')
@parallel_safe
def ListFinishedJobs(n=10):
    """Lists the last *n* finished jobs: outcome, and where a failed job
    failed and why."""
    finished: List = _act('history', n)
    if not finished:
        session.log.info('No job has finished yet.')
        return
    rows = []
    for job in finished:
        error = job.error or {}
        why = f"line {error.get('line') or '?'}: {error.get('message', '')}" if error else ''
        rows.append([str(job.id), job.kind.value, _name(job), job.owner,
                     job.state.value, clock(job.finished_at, missing='-'), why])
    printTable(('id', 'kind', 'name', 'owner', 'outcome', 'finished', 'error'),
               rows, session.log.info)
