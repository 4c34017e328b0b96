"""The subcommands: each asks the server through `ss_*` commands and shows
the reply with ``show(data, text)``, which prints the data as JSON under
--json and the text otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict

from nicos_scriptserver.clients.cli import views
from nicos_scriptserver.clients.cli.connection import Connection
from nicos_scriptserver.clients.cli.errors import RequestRefused, UsageError
from nicos_scriptserver.clients.cli.formatting import estimate_text
from nicos_scriptserver.clients.cli.values import call_args, position
from nicos_scriptserver.clients.queueview import QueueView
from nicos_scriptserver.queue.lifecycle import not_waiting_reason

Show = Callable[[Any, str], None]
Handler = Callable[[Connection, argparse.Namespace, Show], None]

# Seconds between frames of `watch`.
WATCH_INTERVAL = 0.5


def status(conn: Connection, args: argparse.Namespace, show: Show) -> None:
    """Current job and the queue's state."""
    queue, timeline = conn.call('ss_queue'), conn.call('ss_timeline')
    show({'queue': queue, 'timeline': timeline},
         views.status_text(queue, timeline, time.time()))


def queue(conn: Connection, args: argparse.Namespace, show: Show) -> None:
    """The waiting jobs in running order."""
    queue, timeline = conn.call('ss_queue'), conn.call('ss_timeline')
    show({'queue': queue, 'timeline': timeline},
         views.queue_table(queue, timeline, time.time()))


def submitted_text(jobs: list) -> str:
    return '\n'.join(f'queued job {job["id"]} {job["name"]} '
                     f'(estimate {estimate_text(job.get("estimate"))})'
                     for job in jobs)


def submit(conn: Connection, args: argparse.Namespace, show: Show) -> None:
    """Queue a script file, or one generated job from a command call."""
    if args.call:
        if args.blackbox or args.isolated:
            raise UsageError('--blackbox and --isolated are for script '
                             'files, not --call')
        values = call_args(args.items)
        # Named after the call, so that the queue listing says what it does.
        name = '{}({})'.format(args.call, ', '.join(
            f'{key}={value!r}' for key, value in values.items()))
        spec: Dict[str, Any] = {'kind': 'generated', 'name': name, 'calls': [
            {'command': args.call, 'args': values}]}
    else:
        if len(args.items) != 1:
            raise UsageError('submit takes one script FILE, or --call COMMAND '
                             'ARG=VALUE ...')
        path = Path(args.items[0])
        try:
            source = path.read_text(encoding='utf-8')
        except (OSError, UnicodeDecodeError) as err:
            raise UsageError(f'cannot read {path}: '
                             f'{getattr(err, "strerror", None) or err}') from None
        spec = {'kind': 'blackbox' if args.blackbox else 'aware',
                'name': path.name, 'source': source}
        if args.isolated:
            spec['isolated'] = True
    if args.name:
        spec['name'] = args.name
    where = None if args.position is None else position(
        args.position, ('top', 'bottom'))
    jobs = conn.call('ss_submit', spec, where)
    show(jobs, submitted_text(jobs))


def move(conn: Connection, args: argparse.Namespace, show: Show) -> None:
    """Move a waiting job to an index or up/down/top/bottom."""
    to = position(args.to)
    show(conn.call('ss_move', args.id, to), f'moved job {args.id} to {to}')


def simple(command: str, done: str) -> Handler:
    """A handler for a command taking the job id and replying None."""
    def handler(conn: Connection, args: argparse.Namespace, show: Show) -> None:
        show(conn.call(command, args.id), done.format(id=args.id))
    return handler


def repeat(conn: Connection, args: argparse.Namespace, show: Show) -> None:
    """Queue copies of a job right after it."""
    copies = conn.call('ss_repeat', args.id, args.times)
    ids = ', '.join(str(job['id']) for job in copies)
    show(copies, f'repeated job {args.id} as {ids}')


def run_editor(source: str, suffix: str = '.py') -> str:
    """Let $EDITOR (default vi) change *source*; the text it saved."""
    editor = shlex.split(os.environ.get('EDITOR') or 'vi')
    with tempfile.TemporaryDirectory(prefix='nicos-scriptserver-') as folder:
        path = Path(folder) / f'job{suffix}'
        path.write_text(source, encoding='utf-8')
        try:
            result = subprocess.run([*editor, str(path)], check=False)
        except OSError as err:
            raise UsageError(f'cannot run the editor {editor[0]}: '
                             f'{err.strerror}') from None
        if result.returncode != 0:
            raise UsageError(f'the editor {editor[0]} failed (exit status '
                             f'{result.returncode}); nothing changed')
        return path.read_text(encoding='utf-8')


def edit(conn: Connection, args: argparse.Namespace, show: Show) -> None:
    """Edit a waiting job's script in $EDITOR."""
    job = conn.call('ss_job', args.id)
    # Refused now rather than after the user's editing, which would be lost.
    refusal = not_waiting_reason(job, 'edit')
    if refusal is not None:
        raise RequestRefused(f'ss_edit: {refusal}')
    new = run_editor(job['source'])
    if new == job['source']:
        show(job, f'job {args.id} unchanged')
        return
    # The version seen before editing: if someone changed the job while
    # the editor was open, the server refuses instead of overwriting.
    job = conn.call('ss_edit', args.id, {'source': new}, job.get('version'))
    show(job, f'edited job {args.id} (estimate '
              f'{estimate_text(job.get("estimate"))})')


def action(command: str, done: str) -> Handler:
    """A handler for a command without arguments."""
    def handler(conn: Connection, args: argparse.Namespace, show: Show) -> None:
        show(conn.call(command), done)
    return handler


def requeue(conn: Connection, args: argparse.Namespace, show: Show) -> None:
    """Queue an aborted, failed or interrupted job again as a new job."""
    where = None if args.position is None else position(
        args.position, ('top', 'bottom'))
    job = conn.call('ss_requeue', args.id, None, where)
    show(job, f're-queued job {args.id} as job {job["id"]}')


def duplicate(conn: Connection, args: argparse.Namespace, show: Show) -> None:
    """Queue one copy of a job right after it."""
    job = conn.call('ss_duplicate', args.id)
    show(job, f'duplicated job {args.id} as job {job["id"]}')


def clear(conn: Connection, args: argparse.Namespace, show: Show) -> None:
    """Remove every waiting job."""
    ids = conn.call('ss_clear')
    show(ids, f'removed {len(ids)} waiting job{"" if len(ids) == 1 else "s"}'
              + (f': {", ".join(map(str, ids))}' if ids else ''))


def show_job(conn: Connection, args: argparse.Namespace, show: Show) -> None:
    """One job in full: hold reason, times, error and dry-run report."""
    job = conn.call('ss_job', args.id)
    show(job, views.job_text(job, time.time()))


def confirm(conn: Connection, args: argparse.Namespace, show: Show) -> None:
    """Let a job held back by its dry run run in its turn."""
    # Looked at first, to say whether the confirmation changed anything.
    held = conn.call('ss_job', args.id)['held']
    reply = conn.call('ss_confirm', args.id)
    show(reply, f'job {args.id} is no longer held back: it runs in its turn'
                if held else
                f'job {args.id} was not held back: it runs in its turn anyway')


def history(conn: Connection, args: argparse.Namespace, show: Show) -> None:
    """Finished jobs with their outcome and error, last finished first."""
    jobs = conn.call('ss_history', args.limit, args.before, args.owner,
                     args.state, args.since, args.until)
    show(jobs, views.history_table(jobs, time.time()))


def audit(conn: Connection, args: argparse.Namespace, show: Show) -> None:
    """The queue's audit trail, newest first."""
    entries = conn.call('ss_audit', args.limit, args.job)
    show(entries, views.audit_table(entries, time.time()))


def commands(conn: Connection, args: argparse.Namespace, show: Show) -> None:
    """The instrument's command catalog."""
    # ss_catalog replies with JSON text (see docs/PROTOCOL.md).
    catalog = json.loads(conn.call('ss_catalog'))
    show(catalog, views.catalog_text(catalog))


def watch(conn: Connection, args: argparse.Namespace, show: Show) -> None:
    """Redraw the current job and the queue's end until Ctrl-C.

    Each frame asks only for what changed since the last one
    (``ss_changes``): a long queue is not sent twice a second."""
    count = 1 if args.once else args.count
    drawn = 0
    view = QueueView()
    try:
        while count is None or drawn < count:
            if drawn:
                time.sleep(WATCH_INTERVAL)
            view.apply(conn.call('ss_changes', view.seq))
            queue, timeline = view.listing(), conn.call('ss_timeline')
            frame = views.watch_frame(queue, timeline, time.time())
            if sys.stdout.isatty():
                frame = '\033[H\033[J' + frame  # home and clear the terminal
            show({'queue': queue, 'timeline': timeline}, frame)
            drawn += 1
    except KeyboardInterrupt:
        pass  # Ctrl-C is how a watch ends


HANDLERS: Dict[str, Handler] = {
    'status': status,
    'queue': queue,
    'submit': submit,
    'move': move,
    'skip': simple('ss_skip', 'skipped job {id}'),
    'unskip': simple('ss_unskip', 'job {id} will run again'),
    'repeat': repeat,
    'remove': simple('ss_remove', 'removed job {id}'),
    'clear': clear,
    'duplicate': duplicate,
    'requeue': requeue,
    'show': show_job,
    'confirm': confirm,
    'edit': edit,
    'pause': action('ss_pause', 'the current job pauses at its next pause '
                                'point'),
    'resume': action('ss_resume', 'resumed the current job'),
    'abort': action('ss_abort', 'the current job is being aborted; the jobs '
                                'waiting now are held until "release"'),
    'hold': action('ss_hold', 'the queue is held: the current job finishes, '
                              'nothing new starts'),
    'release': action('ss_release', 'the queue is released: waiting jobs run'),
    'history': history,
    'audit': audit,
    'commands': commands,
    'watch': watch,
}
