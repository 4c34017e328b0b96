"""What users type on the command line: ARG=VALUE pairs, positions."""

import pytest

from nicos_scriptserver.clients.cli.errors import UsageError
from nicos_scriptserver.clients.cli.values import call_args, position


def test_values_are_python_literals():
    assert call_args(['energy=25', 'wait=False', 'xs=[1, 2.5]',
                      "label='a b'", 'none=None']) == {
        'energy': 25, 'wait': False, 'xs': [1, 2.5], 'label': 'a b',
        'none': None}


def test_other_values_are_taken_as_text():
    assert call_args(['mode=fast', 'path=/tmp/x', 'empty=']) == {
        'mode': 'fast', 'path': '/tmp/x', 'empty': ''}


@pytest.mark.parametrize('bad', ['energy', '=5', '2x=1', 'a b=1'])
def test_pairs_need_a_name_and_an_equals_sign(bad):
    with pytest.raises(UsageError, match='ARG=VALUE'):
        call_args([bad])


def test_an_argument_given_twice_is_refused():
    with pytest.raises(UsageError, match="'energy' is given twice"):
        call_args(['energy=1', 'energy=2'])


def test_positions_are_indexes_or_words():
    assert position('3') == 3
    assert position('top') == 'top'
    with pytest.raises(UsageError, match='up, down, top, bottom'):
        position('first')
    with pytest.raises(UsageError):
        position('up', ('top', 'bottom'))
