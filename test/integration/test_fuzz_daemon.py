"""Fuzzing the daemon's new commands through a real daemon (bounded).

Random ``ss_*`` commands with random JSON arguments, as a user: each gets
a reply or an error naming the command; the connection never breaks and
the daemon keeps serving. bench/bench_fuzz.py runs many more.
"""

import os

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from nicos_scriptserver.wire.commandtable import CODES
from nicos_scriptserver.clients.daemonclient import ServerError

pytestmark = pytest.mark.integration

EXAMPLES = int(os.environ.get('FUZZ_DAEMON_EXAMPLES', 150))

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 10**12) |
    st.floats(allow_nan=False) | st.text(max_size=12) |
    st.sampled_from(['top', 'bottom', 'up', 'down', 'x = 1', 'set_ei(5)', '*']),
    lambda inner: st.lists(inner, max_size=3) |
    st.dictionaries(st.sampled_from(['kind', 'name', 'source', 'calls', 'command',
                                     'args', 'energy', 'held']), inner, max_size=4),
    max_leaves=12)

# Those that would only wait (a dry run of arbitrary code runs up to its
# limit) or stop everything are left to the other tests.
COMMANDS = sorted(set(CODES) - {"ss_dryrun"})


@pytest.fixture(scope='module')
def server_args():
    return {'dry_run_policy': 'off'}


@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                 HealthCheck.too_slow])
@given(command=st.sampled_from(COMMANDS),
       args=st.lists(json_values, max_size=3))
def test_new_commands_reply_or_refuse_by_name(client, command, args):
    try:
        client.call(command, *args)
    except ServerError as err:
        assert str(err).startswith(f'{command}: '), str(err)
    assert client.isconnected


def test_the_daemon_still_serves_after_the_fuzzing(server):
    checker = server.client('user')
    assert checker.call('getstatus')['status']
    assert 'waiting' in checker.queue()
