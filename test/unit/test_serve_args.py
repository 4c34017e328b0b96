"""The supervisor's command line: bad restart numbers are refused."""

import pytest

from nicos_scriptserver.supervisor.backoff import RestartPolicy
from nicos_scriptserver.supervisor.serve import parse_args


@pytest.mark.parametrize('option, value, message', [
    ('--give-up-after', '0', '--give-up-after must be at least 1'),
    ('--healthy-after', '0', '--healthy-after must be more than 0 seconds'),
    ('--healthy-after', '-5', '--healthy-after must be more than 0 seconds'),
    ('--healthy-after', 'nan', '--healthy-after must be more than 0 seconds'),
])
def test_a_bad_restart_number_is_refused_by_name(option, value, message, capsys):
    with pytest.raises(SystemExit) as stopped:
        parse_args([option, value])
    assert stopped.value.code == 2
    assert message in capsys.readouterr().err


def test_the_defaults_are_the_policys():
    args = parse_args([])
    assert (args.give_up_after, args.healthy_after) == \
        (RestartPolicy.give_up_after, RestartPolicy.healthy_after)
