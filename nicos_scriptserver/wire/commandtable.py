"""Every daemon command, once: who may send it and what it takes.

The one table of the script server's access policy. Registration of our
commands with NICOS (`protocol`), the daemon's access guard (an allowlist:
a command not in the table is refused), the proxy's allowlist per role and
the command table in docs/PROTOCOL.md all come from it, and a test checks
that they agree with NICOS's own list. Pure: no NICOS, no sockets.

Levels are NICOS's user levels (the same numbers as ``nicos.core.GUEST``,
``USER``, ``ADMIN``). Guests only watch: everything that runs code, moves
something or changes the queue needs user level; the two commands that
evaluate expressions (``eval``, ``watch``) take from a guest only
expressions that pass the read-only check.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

GUEST, USER, ADMIN = 0, 10, 20
LEVEL_NAMES = {GUEST: 'guest', USER: 'user', ADMIN: 'admin'}

#: Roles of proxy clients: a viewer only reads, a writer (token holder)
#: steers the queue. HANDSHAKE: answered by the proxy itself.
VIEWER, WRITER, HANDSHAKE = 'viewer', 'writer', 'handshake'


@dataclass(frozen=True)
class ArgKind:
    """What one argument may be: a name for messages and the Python types
    a plain-data request carries for it (None: anything)."""

    name: str
    types: Optional[Tuple[type, ...]]

    def admits(self, value: Any) -> bool:
        if self.types is None:
            return True
        # True is an int to Python, never a number or an id to us
        if isinstance(value, bool) and bool not in self.types:
            return False
        return isinstance(value, self.types)


TEXT = ArgKind('text', (str,))
INT = ArgKind('an integer', (int,))
NUMBER = ArgKind('a number', (int, float))
FLAG = ArgKind('true or false', (bool, int))
LIST = ArgKind('a list', (list, tuple))
DICT = ArgKind('an object', (dict,))
JOB = ArgKind('a job id', (int, str))
POSITION = ArgKind('an index or a word', (int, str))
MAYBE_NUMBER = ArgKind('a number or null', (int, float, type(None)))
VERSION = ArgKind('a job version or null', (int, type(None)))
MAYBE_INT = ArgKind('an integer or null', (int, type(None)))
ANY = ArgKind('any value', None)


@dataclass(frozen=True)
class Arg:
    name: str
    kind: ArgKind
    #: The default, as docs show it; None: the argument is required.
    default: Optional[str] = None

    @property
    def required(self) -> bool:
        return self.default is None


@dataclass(frozen=True)
class Command:
    """One daemon command and its access policy."""

    name: str
    #: The least NICOS user level that may send it.
    level: int
    #: The least proxy role that may send it (None: not through the proxy).
    proxy: Optional[str]
    args: Tuple[Arg, ...]
    summary: str
    #: Our own commands' numbers in NICOS's classic transport (None: stock).
    code: Optional[int] = None
    #: Guests may send it, with read-only expressions only.
    guest_expressions: bool = False

    @property
    def usage(self) -> str:
        return f"{self.name}({', '.join(arg.name for arg in self.args)})"

    @cached_property
    def least_args(self) -> int:
        return sum(arg.required for arg in self.args)

    def check_args(self, args: Sequence[Any]) -> Optional[str]:
        """What is wrong with *args*, or None (checked for every request)."""
        if not isinstance(args, (list, tuple)):
            return f'{self.name}: arguments must be a list; usage: {self.usage}'
        least = self.least_args
        if not least <= len(args) <= len(self.args):
            return (f'{self.name}: takes {_count(least, len(self.args))}, '
                    f'got {len(args)}; usage: {self.usage}')
        for arg, value in zip(self.args, args):
            if not arg.kind.admits(value):
                return (f'{self.name}: {arg.name} must be {arg.kind.name}, '
                        f'not {type(value).__name__}; usage: {self.usage}')
        return None


def _count(least: int, most: int) -> str:
    if least == most:
        return f'{most} argument{"s" * (most != 1)}'
    return f'{least} to {most} arguments'


def _args(*spec: Tuple) -> Tuple[Arg, ...]:
    return tuple(Arg(*item) for item in spec)


def _stock(name: str, level: int, proxy: Optional[str], summary: str,
           *args: Tuple, guest_expressions: bool = False) -> Command:
    return Command(name, level, proxy, _args(*args), summary,
                   guest_expressions=guest_expressions)


def _ours(name: str, code: int, level: int, summary: str,
          *args: Tuple) -> Command:
    return Command(name, level, VIEWER if level == GUEST else WRITER,
                   _args(*args), summary, code=code)


_STOCK = (
    # running scripts: each becomes a job of the unified queue
    _stock('start', USER, WRITER, 'run a script now (a job that skips its dry run)',
           ('name', TEXT), ('code', TEXT)),
    _stock('queue', USER, WRITER, 'queue a script (an aware job)',
           ('name', TEXT), ('code', TEXT)),
    _stock('simulate', USER, None, 'dry-run a script; simmessage/simresult events',
           ('name', TEXT), ('code', TEXT), ('uuid', ANY, 'None')),
    _stock('unqueue', USER, WRITER, "remove a waiting job ('*': all)",
           ('reqid', JOB)),
    _stock('update', USER, WRITER, "edit a waiting job's script",
           ('newcode', TEXT), ('reason', TEXT), ('reqid', ANY, 'None')),
    _stock('rearrange', USER, WRITER, 'reorder waiting jobs', ('ids', LIST)),
    _stock('break', USER, WRITER, 'pause the current job', ('level', INT)),
    _stock('continue', USER, WRITER, 'resume the paused job; none running: '
           'release the hold or confirm the first held-back job'),
    _stock('stop', USER, WRITER, 'abort the current job; the waiting jobs '
           'stay, held',
           ('level', INT)),
    _stock('finish', USER, WRITER, 'end the current count early'),
    _stock('emergency', USER, WRITER, 'abort at once and stop every device'),
    # code and expressions
    _stock('exec', USER, None, 'run a line of code at once', ('cmd', TEXT)),
    _stock('eval', GUEST, None, 'evaluate an expression (guests: read-only ones)',
           ('expr', TEXT), ('stringify', FLAG), guest_expressions=True),
    _stock('watch', GUEST, None, 'add watch expressions (guests: read-only ones)',
           ('vallist', LIST), guest_expressions=True),
    _stock('unwatch', GUEST, None, 'remove watch expressions', ('vallist', LIST)),
    _stock('complete', GUEST, None, 'completions of a typed line (no private names)',
           ('line', TEXT), ('lastword', TEXT)),
    _stock('debug', USER, None, 'debug the running script', ('code', TEXT)),
    _stock('debuginput', USER, None, "input for the running script's debugger",
           ('line', TEXT)),
    _stock('transfer', USER, None, 'store a file in a temporary file of the daemon',
           ('content', ANY)),
    # what is going on
    _stock('getversion', GUEST, VIEWER, "the daemon's version"),
    _stock('getstatus', GUEST, VIEWER, 'status (a queue waiting for a person: '
           'paused), script, queued jobs, ...'),
    _stock('getmessages', GUEST, VIEWER, 'the last log messages', ('n', ANY)),
    _stock('getscript', GUEST, VIEWER, 'the current script'),
    _stock('gethistory', GUEST, VIEWER, "a cache key's history",
           ('key', TEXT), ('fromtime', NUMBER), ('totime', NUMBER),
           ('interval', MAYBE_NUMBER, 'None')),
    _stock('getcachekeys', GUEST, VIEWER, 'cache keys and values matching a query',
           ('query', TEXT)),
    _stock('gettrace', GUEST, VIEWER, "the script thread's stack"),
    _stock('getdataset', GUEST, VIEWER, 'a data set of the current experiment',
           ('index', ANY)),
    # the connection
    _stock('authenticate', GUEST, HANDSHAKE, 'log in (first command only)',
           ('data', DICT)),
    _stock('eventmask', GUEST, None, 'stop sending these events', ('events', LIST)),
    _stock('eventunmask', GUEST, None, 'send these events again', ('events', LIST)),
    _stock('unlock', GUEST, None, 'give up control of the session'),
    _stock('keepalive', GUEST, VIEWER, 'keep the login alive'),
    _stock('quit', GUEST, HANDSHAKE, 'close the connection'),
)

_OURS = (
    _ours('ss_submit', 0x7001, USER, 'submit a job or a batch; the new jobs',
          ('jobs', ANY), ('position', ANY, 'None')),
    _ours('ss_queue', 0x7002, GUEST, 'the current job, the waiting jobs, the hold'),
    _ours('ss_job', 0x7003, GUEST, 'one job in full', ('job_id', JOB)),
    _ours('ss_edit', 0x7004, USER, 'edit a waiting job', ('job_id', JOB),
          ('changes', DICT), ('version', VERSION, 'None')),
    _ours('ss_move', 0x7005, USER, 'move a waiting job', ('job_id', JOB),
          ('to', POSITION), ('version', VERSION, 'None')),
    _ours('ss_skip', 0x7006, USER, 'skip a waiting job', ('job_id', JOB),
          ('version', VERSION, 'None')),
    _ours('ss_unskip', 0x7007, USER, 'let a skipped job run again', ('job_id', JOB),
          ('version', VERSION, 'None')),
    _ours('ss_repeat', 0x7008, USER, 'queue copies of a job after it',
          ('job_id', JOB), ('times', NUMBER, '1'), ('version', VERSION, 'None')),
    _ours('ss_duplicate', 0x7009, USER, 'queue one copy of a job after it',
          ('job_id', JOB)),
    _ours('ss_remove', 0x700A, USER, 'remove a waiting job', ('job_id', JOB),
          ('version', VERSION, 'None')),
    _ours('ss_clear', 0x700B, USER, 'remove every waiting job'),
    _ours('ss_requeue', 0x700C, USER, 'queue a finished job again, maybe edited',
          ('job_id', JOB), ('changes', ANY, 'None'), ('position', ANY, 'None')),
    _ours('ss_history', 0x700D, GUEST, 'finished jobs, newest first',
          ('limit', NUMBER, '50'), ('before', ANY, 'None'),
          ('user', ANY, 'None'), ('state', ANY, 'None'),
          ('since', MAYBE_NUMBER, 'None'), ('until', MAYBE_NUMBER, 'None')),
    _ours('ss_hold', 0x700E, USER, 'start nothing new, also jobs queued later, '
          'until released'),
    _ours('ss_release', 0x700F, USER, 'run waiting jobs again (ends any hold)'),
    _ours('ss_pause', 0x7010, USER, 'pause the current job at its next pause point',
          ('level', NUMBER, '2')),
    _ours('ss_resume', 0x7011, USER, 'resume the paused job'),
    _ours('ss_abort', 0x7012, USER, 'abort the current job; the waiting jobs '
          'stay, held',
          ('level', NUMBER, '2')),
    _ours('ss_catalog', 0x7013, GUEST, "the instrument's commands"),
    _ours('ss_confirm', 0x7014, USER, 'let a held-back job run in its turn',
          ('job_id', JOB), ('version', VERSION, 'None')),
    _ours('ss_dryrun', 0x7015, USER, 'dry-run a job spec without queueing it',
          ('job', ANY)),
    _ours('ss_timeline', 0x7016, GUEST, 'expected times of the current and waiting jobs'),
    _ours('ss_audit', 0x7017, USER, 'who changed the queue, when, from where, why',
          ('limit', NUMBER, '50'), ('job_id', ANY, 'None')),
    _ours('ss_changes', 0x7018, GUEST, 'what changed in the queue since a change '
          'number (all of it if too far back)', ('since', MAYBE_INT, 'None')),
)

#: Every daemon command by name.
COMMANDS: Dict[str, Command] = {command.name: command
                                for command in _STOCK + _OURS}

#: Our commands' numbers for NICOS's classic transport.
CODES: Dict[str, int] = {command.name: command.code for command in _OURS}


def proxy_commands(role: str) -> frozenset:
    """The commands a proxy client of *role* may send after logging in
    (HANDSHAKE: those the proxy answers itself)."""
    roles = {HANDSHAKE: (HANDSHAKE,), VIEWER: (VIEWER,),
             WRITER: (VIEWER, WRITER)}[role]
    return frozenset(name for name, command in COMMANDS.items()
                     if command.proxy in roles)


def needs_user(name: str) -> bool:
    """Whether *name* changes something (refused to guests and view-only
    clients); unknown commands count as changing."""
    command = COMMANDS.get(name)
    return command is None or command.level > GUEST


def markdown_table(commands: Iterable[Command] = None) -> str:
    """The command table of docs/PROTOCOL.md."""
    rows: List[str] = ['| command | arguments | level | proxy | what it does |',
                       '| --- | --- | --- | --- | --- |']
    for command in commands or COMMANDS.values():
        args = ', '.join(arg.name if arg.required else f'{arg.name}={arg.default}'
                         for arg in command.args)
        level = LEVEL_NAMES[command.level]
        if command.guest_expressions:
            level += ' (guests: read-only expressions)'
        rows.append(f'| `{command.name}` | {args} | {level} | '
                    f'{command.proxy or "-"} | {command.summary} |')
    return '\n'.join(rows) + '\n'
