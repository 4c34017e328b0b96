"""The script server's additions to the NICOS daemon protocol.

New daemon commands and event types are registered in NICOS's protocol
tables (and the classic transport's code tables) by `register`, which must
run in the daemon and in every client process before they are used.
Commands and events are documented in docs/PROTOCOL.md.
"""

from nicos.protocols.daemon import DAEMON_COMMANDS, DAEMON_EVENTS
from nicos.protocols.daemon import classic

# Codes far above NICOS's own (0x01..0x67 and 0x1001..0x10xx) so that
# NICOS releases adding commands do not collide with ours.
COMMANDS = {
    'ss_submit': 0x7001,
    'ss_queue': 0x7002,
    'ss_job': 0x7003,
    'ss_edit': 0x7004,
    'ss_move': 0x7005,
    'ss_skip': 0x7006,
    'ss_unskip': 0x7007,
    'ss_repeat': 0x7008,
    'ss_duplicate': 0x7009,
    'ss_remove': 0x700A,
    'ss_clear': 0x700B,
    'ss_requeue': 0x700C,
    'ss_history': 0x700D,
    'ss_hold': 0x700E,
    'ss_release': 0x700F,
    'ss_pause': 0x7010,
    'ss_resume': 0x7011,
    'ss_abort': 0x7012,
    'ss_catalog': 0x7013,
    'ss_confirm': 0x7014,
    'ss_dryrun': 0x7015,
    'ss_timeline': 0x7016,
}

# Commands that change something: refused for guests and view-only clients.
# A dry run runs the user's script (simulated), so it needs a user too.
WRITING_COMMANDS = frozenset(COMMANDS) - {'ss_queue', 'ss_job', 'ss_history',
                                           'ss_catalog', 'ss_timeline'}

# Columns of the waiting jobs in an ``ss_queue`` reply (rows, not dicts:
# a listing of 5,000 jobs pickles in 1 ms instead of 8). The full job,
# script included, comes from ``ss_job``.
LISTING_COLUMNS = ('id', 'kind', 'name', 'owner', 'state', 'batch_id',
                   'batch_index', 'batch_size', 'queued_at', 'estimate',
                   'held', 'hold_reason', 'requeued_from')

EVENTS = {
    # the waiting list or the queue's hold state changed: queue summary
    'ss_queue': (0x7101, False),
    # one job changed (state, edit, progress, line): the job
    'ss_job': (0x7102, False),
    # output of a black-box job: {id, stream, text}
    'ss_output': (0x7103, False),
    # the command catalog changed: {generation, added, changed, removed, errors}
    'ss_catalog': (0x7104, False),
    # expected times changed (see ss_timeline): the timeline
    'ss_timeline': (0x7105, False),
}


def register_events() -> None:
    """Make the new event types known (daemon and clients)."""
    for name, spec in EVENTS.items():
        DAEMON_EVENTS[name] = spec
        code = classic._codefmt.pack(spec[0])
        classic.event2code[name] = code
        classic.code2event[code] = name


def register_commands() -> None:
    """Make the new command names known.

    In the daemon, call this only after the handlers are defined: NICOS's
    handler module refuses (at import) any name without a handler.
    """
    for name, number in COMMANDS.items():
        DAEMON_COMMANDS[name] = number
        code = classic._codefmt.pack(number)
        classic.command2code[name] = code
        classic.code2command[code] = name


def register() -> None:
    register_events()
    register_commands()
