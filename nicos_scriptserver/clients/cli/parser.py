"""The command line: global connection options, then one subcommand."""

from __future__ import annotations

import argparse
import datetime

from nicos_scriptserver.clients.cli.credentials import PASSWORD_ENV, TOKEN_ENV
from nicos_scriptserver.queue.historyfilter import FINISHED_STATES

DESCRIPTION = """\
Command-line client of the NICOS script server: look at and steer the job
queue. Connects through the localhost proxy (default; the user name and
token are read from the PVs) or, with --daemon, straight to the NICOS daemon
with a NICOS account."""

EPILOG = f"""\
exit status:
  0  done
  1  the server refused the request (its reason is printed)
  2  usage error
  3  cannot connect: nothing listens at the address
  4  login failed: wrong token or password, or the token PV is unreadable

environment:
  {TOKEN_ENV}     token for the proxy (instead of the PV)
  {PASSWORD_ENV}  password for --daemon (instead of a prompt)
  EDITOR                       editor for "edit" (default vi)
  EPICS_CA_ADDR_LIST           if set, used instead of --pv-port

examples:
  nicos-scriptserver status
  nicos-scriptserver submit scan.py --name "T scan" --position top
  nicos-scriptserver submit --call set_ei energy=25 wait_for_choppers=False
  nicos-scriptserver move 12 top
  nicos-scriptserver --daemon 127.0.0.1:1303 --user user queue
  nicos-scriptserver watch
"""


def job_id(text: str) -> int:
    """A job id: a non-negative integer."""
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f'{text!r} is not a job id')
    return int(text)


def positive(text: str) -> int:
    """An integer of at least 1."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f'{text!r} is not a positive integer')
    return int(text)


def moment(text: str) -> float:
    """An ISO date or date and time (local time) as epoch seconds."""
    try:
        return datetime.datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise argparse.ArgumentTypeError(
            f'{text!r} is not a date (2026-12-06 or 2026-12-06T14:30)'
        ) from None


def add_connection_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group('connection')
    group.add_argument('--proxy', metavar='HOST:PORT', default='127.0.0.1:1301',
                       help='the proxy to log in at (default %(default)s)')
    group.add_argument('--daemon', metavar='HOST:PORT',
                       help='connect straight to the NICOS daemon instead, '
                            'as --user with a password')
    group.add_argument('--user', metavar='NAME',
                       help='login name (proxy: default from the USER PV)')
    group.add_argument('--pv-prefix', default='SCRIPTSERVER:',
                       help='prefix of the USER and TOKEN PVs '
                            '(default %(default)s)')
    group.add_argument('--pv-port', type=positive, default=5064,
                       help='Channel Access port of the PVs on 127.0.0.1 '
                            '(default %(default)s)')
    secret = group.add_mutually_exclusive_group()
    secret.add_argument('--token-prompt', action='store_true',
                        help='type the proxy token instead of reading the PV')
    secret.add_argument('--token-file', metavar='FILE',
                        help='read the proxy token from the first line of FILE '
                             '("-": standard input)')
    parser.add_argument('--json', action='store_true',
                        help='print the reply data as JSON instead of text')


def add_subcommands(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest='command', metavar='COMMAND',
                                required=True)

    def command(name: str, text: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=text, description=text)

    def with_id(name: str, text: str) -> argparse.ArgumentParser:
        cmd = command(name, text)
        cmd.add_argument('id', type=job_id, help='job id')
        return cmd

    command('status', 'the current job and the state of the queue')
    command('queue', 'the waiting jobs, in running order')
    submit = command('submit', 'queue a script FILE, or a command call '
                               '(--call COMMAND ARG=VALUE ...)')
    submit.add_argument('items', nargs='*', metavar='FILE | ARG=VALUE',
                        help='the script file, or the arguments of --call '
                             '(values are Python literals, else text)')
    submit.add_argument('--call', metavar='COMMAND',
                        help='queue a generated job calling this instrument '
                             'command')
    submit.add_argument('--name', help='job name (default: the file name)')
    submit.add_argument('--blackbox', action='store_true',
                        help='run the script as an opaque black-box job')
    submit.add_argument('--isolated', action='store_true',
                        help='run the script in its own process (it may '
                             'still pause and report progress)')
    submit.add_argument('--position', metavar='INDEX|top|bottom',
                        help='where to queue it (default: at the end)')
    move = with_id('move', 'move a waiting job')
    move.add_argument('to', metavar='TO',
                      help='index in the waiting list (from 0), or up, down, '
                           'top, bottom')
    with_id('skip', 'skip a waiting job (it stays in the queue)')
    with_id('unskip', 'let a skipped job run again')
    repeat = with_id('repeat', 'queue copies of a job right after it')
    repeat.add_argument('--times', type=positive, default=1,
                        help='number of copies (default 1)')
    with_id('remove', 'remove a waiting job')
    command('clear', 'remove every waiting job')
    with_id('duplicate', 'queue one copy of a job right after it')
    requeue = with_id('requeue', 'queue an aborted, failed or interrupted job '
                                 'again, as a new job')
    requeue.add_argument('--position', metavar='INDEX|top|bottom',
                         help='where to queue it (default: at the end)')
    with_id('show', 'one job in full: hold reason, times, error, dry run, '
                    'script')
    with_id('confirm', 'let a job held back by its dry run run in its turn')
    with_id('edit', 'edit a waiting job\'s script in $EDITOR')
    command('pause', 'pause the current job at its next pause point')
    command('resume', 'resume the paused job')
    command('abort', 'abort the current job (the jobs waiting then are held)')
    command('hold', 'let the current job finish, then start nothing')
    command('release', 'let waiting jobs run again')
    history = command('history', 'finished jobs with outcome, how long '
                                 'they took and error')
    history.add_argument('--limit', type=positive, default=20,
                         help='at most this many (default 20)')
    history.add_argument('--owner', metavar='NAME',
                         help='only the jobs this account submitted')
    history.add_argument('--state', action='append',
                         choices=FINISHED_STATES,
                         help='only jobs that ended so (repeat for several)')
    history.add_argument('--since', type=moment, metavar='TIME',
                         help='only jobs that finished at or after TIME '
                              '(ISO date or date and time, local time)')
    history.add_argument('--until', type=moment, metavar='TIME',
                         help='only jobs that finished before TIME')
    history.add_argument('--before', type=job_id, metavar='ID',
                         help='the next page: jobs that finished before job '
                              'ID (the last one shown)')
    audit = command('audit', 'who changed the queue, when, from where, why')
    audit.add_argument('--limit', type=positive, default=20,
                       help='at most this many entries (default 20)')
    audit.add_argument('--job', type=job_id, metavar='ID',
                       help='only the changes of this job')
    command('commands', 'the instrument commands: parameters and summary')
    watch = command('watch', 'live view of the current job until Ctrl-C')
    frames = watch.add_mutually_exclusive_group()
    frames.add_argument('--once', action='store_true',
                        help='draw one frame and exit')
    frames.add_argument('--count', type=positive, metavar='N',
                        help='draw N frames and exit')


def build_parser() -> argparse.ArgumentParser:
    """The parser of the whole command line."""
    parser = argparse.ArgumentParser(
        prog='nicos-scriptserver', description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    add_connection_options(parser)
    add_subcommands(parser)
    return parser
