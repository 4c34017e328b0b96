"""Job ids as clients give them."""

import pytest

from nicos_scriptserver.queue import QueueError
from nicos_scriptserver.app.spec import parse_job_id


@pytest.mark.parametrize('value, expected', [(7, 7), ('7', 7), (' 12 ', 12), (3.0, 3)])
def test_ids_as_numbers_or_text(value, expected):
    assert parse_job_id(value) == expected


@pytest.mark.parametrize('value', [True, False, None, 'x', '1.5', 1.5, float('inf'), [], {}, 1j])
def test_anything_else_is_refused_with_its_value_named(value):
    with pytest.raises(QueueError, match='is not a job id'):
        parse_job_id(value)


# -- generated calls with positional arguments ("posargs") -----------------

from nicos_scriptserver.app.spec import parse_spec  # noqa: E402
from nicos_scriptserver.catalog import ValidationError, parse_source  # noqa: E402

COMMANDS = {e['name']: e for e in parse_source('''
def point(x: float, y: float = 0, /, *, label: str = ''):
    """A point.

    Args:
        x [mm] (-50..50): across.
    """

def many(*values: int):
    """Any number of whole numbers."""
''', '/cmds/demo.py', 'demo.py').commands}


def test_posargs_reach_positional_only_and_star_args_and_render_in_order():
    spec = parse_spec({'kind': 'generated', 'calls': [
        {'command': 'point', 'posargs': [1.5, 2], 'args': {'label': 'a'}},
        {'command': 'many', 'posargs': (1, 2, 3)},
        {'command': 'point', 'args': {}, 'posargs': [4]}]}, COMMANDS)
    assert spec.source == "point(1.5, 2, label='a')\nmany(1, 2, 3)\npoint(4)\n"
    assert spec.calls[1] == {'command': 'many', 'args': {},
                             'posargs': [1, 2, 3]}


def test_calls_without_posargs_keep_their_shape():
    spec = parse_spec({'kind': 'generated', 'calls': [
        {'command': 'many', 'posargs': [], 'args': {}},
        {'command': 'many'}]}, COMMANDS)
    assert spec.calls == [{'command': 'many', 'args': {}}] * 2


@pytest.mark.parametrize('call, message', [
    ({'command': 'point', 'posargs': [99]},
     "call 1 (point): argument 'x' = 99 is above its maximum 50 mm"),
    ({'command': 'many', 'posargs': [1, 'x']},
     "call 1 (many): positional argument 2 = 'x' is not a whole number"),
    ({'command': 'point', 'args': {'x': 1}},
     'call 1 (point): argument \'x\' is positional-only; give it in '
     '"posargs"'),
])
def test_posargs_are_validated_like_named_arguments(call, message):
    with pytest.raises(ValidationError) as info:
        parse_spec({'kind': 'generated', 'calls': [call]}, COMMANDS)
    assert info.value.problems[0] == message


def test_without_a_catalog_a_call_no_script_can_hold_is_a_bad_value():
    # Found by the fuzzer: render_script's ValueError escaped as such.
    from nicos_scriptserver.queue import InvalidValue
    with pytest.raises(InvalidValue, match=r'^the job: command .* is not a '
                                           r'valid name$'):
        parse_spec({'kind': 'generated', 'calls': [{'command': '\U000c0100'}]})
