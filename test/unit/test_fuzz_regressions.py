"""The bugs coverage-guided fuzzing found, checked without atheris.

The inputs that found them are in test/fuzzing/regressions/ and replayed
through their targets by test_fuzz_atheris.py.
"""

import pytest

from fuzzing import oracles
from nicos_scriptserver.catalog import ScriptSyntaxError, check_syntax
from nicos_scriptserver.proxy.protocol import ProtocolError, parse_request
from nicos_scriptserver.queue import QueueError
from nicos_scriptserver.app.spec import parse_job_id


@pytest.mark.parametrize('payload', [b'[' * 1001 + b']' * 1001,
                                     b'[{"a":' * 5000, b'[' * 600000])
def test_proxy_refuses_json_nested_beyond_the_recursion_limit(payload):
    # Was: RecursionError out of parse_request, out of the proxy's loop.
    with pytest.raises(ProtocolError, match='nested deeper'):
        parse_request([b'ss_submit', b'', payload])


@pytest.mark.parametrize('number', [b'1e999', b'-1e400', b'1E+309'])
def test_proxy_refuses_numbers_that_json_turns_into_infinity(number):
    # Was: accepted as inf, though NaN/Infinity are refused as not plain.
    with pytest.raises(ProtocolError, match='not a finite number'):
        parse_request([b'ss_repeat', b'', b'[1, ' + number + b']'])
    assert parse_request([b'x', b'', b'[1e308, -2.5E-3]']).args == \
        [1e308, -2.5e-3]


def test_a_lone_surrogate_in_a_script_is_a_syntax_error_with_its_place():
    # Was: UnicodeEncodeError from compile() (JSON "\ud901" decodes to it).
    with pytest.raises(ScriptSyntaxError) as info:
        check_syntax('x = 1\ny = "\ud901"\n')
    assert (info.value.line, info.value.column) == (2, 6)
    assert 'lone surrogate' in info.value.message
    oracles.check_job_spec({'kind': 'aware', 'source': '\udc80'},
                           oracles.repo_catalog())


@pytest.mark.parametrize('value', [2**63, -2**63 - 1, '9' * 30, 1e30])
def test_job_ids_beyond_sqlite_integers_are_refused(value):
    # Was: OverflowError from sqlite3 when the queue looked the id up.
    with pytest.raises(QueueError, match='is not a job id'):
        parse_job_id(value)
    assert parse_job_id(2**63 - 1) == 2**63 - 1


@pytest.mark.parametrize('command, args', [
    ('ss_repeat', [1, float('inf')]), ('ss_pause', [float('-inf')]),
    ('ss_abort', [float('inf')]), ('ss_history', [float('inf')]),
    ('break', [float('inf')]), ('ss_job', [10**30]), ('ss_remove', ['9' * 25]),
])
def test_daemon_commands_refuse_numbers_out_of_range_by_name(command, args):
    # Was: OverflowError out of the command wrapper: NICOS's handler loop
    # does not catch it, so the client lost its connection.
    from fuzzing.queuehandler import QueueHandler
    handler = QueueHandler(oracles.repo_catalog())
    try:
        handler.call('ss_submit', [{'kind': 'aware', 'source': 'x = 1'}])
        handler.run_next()
        kind, text = handler.call(command, args)
    finally:
        handler.close()
    assert kind == 'error' and text.startswith(f'{command}: '), text
