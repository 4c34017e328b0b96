"""The script server's additions to the NICOS daemon protocol.

New daemon commands (their numbers and who may send them are in
`commandtable`) and event types are registered in NICOS's protocol
tables (and the classic transport's code tables) by `register`, which must
run in the daemon and in every client process before they are used.
Commands and events are documented in docs/PROTOCOL.md.

NICOS is imported only to register: the proxy reads `EVENTS` and keeps
NICOS out of its process (`proxy.classic`).
"""

from nicos_scriptserver.wire.commandtable import CODES

# Columns of the waiting jobs in an ``ss_queue`` reply (rows of plain
# values, not dicts: a listing of 5,000 jobs pickles in 1 ms instead of 8).
# The dry-run report's summary takes the four ``estimate_`` columns;
# clients fold them back into one dict (`clients.queueview.jobs_of_rows`).
# The full job, script included, comes from ``ss_job``.
ESTIMATE_PREFIX = 'estimate_'
LISTING_COLUMNS = ('id', 'kind', 'name', 'owner', 'state', 'batch_id',
                   'batch_index', 'batch_size', 'queued_at',
                   'estimate_state', 'estimate_seconds', 'estimate_problems',
                   'estimate_problem', 'held', 'hold_reason',
                   'requeued_from', 'version')

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
    from nicos.protocols.daemon import DAEMON_EVENTS, classic
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
    from nicos.protocols.daemon import DAEMON_COMMANDS, classic
    for name, number in CODES.items():
        DAEMON_COMMANDS[name] = number
        code = classic._codefmt.pack(number)
        classic.command2code[name] = code
        classic.code2command[code] = name


def register() -> None:
    register_events()
    register_commands()
