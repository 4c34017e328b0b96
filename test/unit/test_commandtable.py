"""The command table is the one source of who may send what: NICOS's list,
the daemon's guard, the proxy's allowlists and the docs agree with it."""

import re
from pathlib import Path

import pytest
from hypothesis import given, strategies as st

import nicos.core
from nicos.protocols.daemon import DAEMON_COMMANDS

from fuzzing.queuehandler import _import_handler
from nicos_scriptserver.wire import commandtable, protocol
from nicos_scriptserver.wire.commandtable import COMMANDS, GUEST, USER, ADMIN, \
    VIEWER, WRITER, proxy_commands
from nicos_scriptserver.proxy import protocol as proxy_protocol

DOCS = Path(__file__).resolve().parents[2] / 'docs' / 'PROTOCOL.md'

#: What watching needs; everything else needs a user login. Spelled out
#: here so that a command moved to guest level has to be moved here too.
WATCHING = {
    'eval', 'watch', 'unwatch', 'complete', 'getversion', 'getstatus',
    'getmessages', 'getscript', 'gethistory', 'getcachekeys', 'gettrace',
    'getdataset', 'authenticate', 'eventmask', 'eventunmask', 'unlock',
    'keepalive', 'quit', 'ss_queue', 'ss_job', 'ss_history', 'ss_catalog',
    'ss_timeline', 'ss_changes',
}


def test_the_table_has_exactly_the_commands_nicos_knows():
    protocol.register()
    assert set(DAEMON_COMMANDS) == set(COMMANDS)
    assert {name: DAEMON_COMMANDS[name] for name in commandtable.CODES} \
        == commandtable.CODES


def test_the_guard_wraps_every_handler_the_daemon_has():
    handler = _import_handler()
    from nicos_scriptserver.daemon import access
    access.install()
    wrappers = handler.command_wrappers
    assert set(wrappers) == set(COMMANDS)
    assert all(getattr(wrapper, 'guarded', False) for wrapper in wrappers.values())


def test_levels_are_nicos_levels():
    assert (GUEST, USER, ADMIN) == (nicos.core.GUEST, nicos.core.USER,
                                    nicos.core.ADMIN)


def test_guests_only_watch():
    assert {name for name, command in COMMANDS.items()
            if command.level == GUEST} == WATCHING
    assert {name for name, command in COMMANDS.items()
            if command.guest_expressions} == {'eval', 'watch'}


def test_the_proxy_passes_what_the_table_says():
    assert proxy_protocol.VIEWER_COMMANDS - proxy_protocol.HANDSHAKE_COMMANDS \
        == proxy_commands(VIEWER)
    assert proxy_protocol.WRITER_COMMANDS - proxy_protocol.HANDSHAKE_COMMANDS \
        == proxy_commands(WRITER)
    # no code through the proxy, and readers only read
    assert not {'exec', 'eval', 'watch', 'debug', 'simulate', 'transfer'} \
        & proxy_protocol.WRITER_COMMANDS
    assert all(COMMANDS[name].level == GUEST for name in proxy_commands(VIEWER))


def test_the_docs_show_the_table_as_it_is():
    text = DOCS.read_text()
    shown = re.search(r'<!-- command table: [^\n]*-->\n(.*?)<!-- end of the '
                      r'command table -->', text, re.S)
    assert shown, 'docs/PROTOCOL.md has no command table'
    assert shown.group(1) == commandtable.markdown_table(), (
        'docs/PROTOCOL.md shows an old command table; replace it with the '
        'output of nicos_scriptserver.wire.commandtable.markdown_table()')


@pytest.mark.parametrize('name, args, problem', [
    ('ss_move', [1], 'takes 2 to 3 arguments, got 1'),
    ('ss_move', [1, 'top', 1.5], 'version must be a job version or null, not float'),
    ('ss_move', [1, {}], 'to must be an index or a word, not dict'),
    ('ss_job', [True], 'job_id must be a job id, not bool'),
    ('getstatus', ['x'], 'takes 0 arguments, got 1'),
    ('ss_repeat', [1, 2, 3, 4], 'takes 1 to 3 arguments, got 4'),
    ('eval', ['1'], 'takes 2 arguments, got 1'),
    ('queue', 'text', 'arguments must be a list'),
])
def test_bad_arguments_are_refused_with_the_usage(name, args, problem):
    message = COMMANDS[name].check_args(args)
    assert problem in message and COMMANDS[name].usage in message


@given(st.sampled_from(sorted(COMMANDS)), st.data())
def test_arguments_of_the_right_kinds_pass(name, data):
    command = COMMANDS[name]
    samples = {'text': st.text(), 'an integer': st.integers(),
               'a number': st.integers() | st.floats(allow_nan=False),
               'true or false': st.booleans(), 'a list': st.lists(st.integers()),
               'an object': st.dictionaries(st.text(), st.integers()),
               'a job id': st.integers() | st.text(),
               'an index or a word': st.integers() | st.text(),
               'a number or null': st.none() | st.integers(),
               'a job version or null': st.none() | st.integers(),
               'an integer or null': st.none() | st.integers(),
               'any value': st.none() | st.text()}
    count = data.draw(st.integers(sum(a.required for a in command.args),
                                  len(command.args)))
    args = [data.draw(samples[arg.kind.name]) for arg in command.args[:count]]
    assert command.check_args(args) is None


def test_the_guard_refuses_unknown_commands_and_low_levels():
    from nicos_scriptserver.daemon.access import refusal
    assert refusal(None, 'run_anything', ADMIN, []) == \
        'run_anything: not a command of this server'
    assert 'guest logins can only watch' in refusal(
        COMMANDS['emergency'], 'emergency', GUEST, [])
    assert refusal(COMMANDS['emergency'], 'emergency', USER, []) is None
