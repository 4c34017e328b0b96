"""Local checks of form values against catalog parameters (gui_panels)."""

import pytest

from gui_panels import fmt
from gui_panels.formcheck import EMPTY, FieldError, check, parse_list, \
    parse_text


def param(**fields):
    base = {'name': 'x', 'type': 'float', 'nullable': False, 'item_type': None,
            'choices': None, 'unit': None, 'min': None, 'max': None,
            'min_inclusive': None, 'max_inclusive': None, 'has_default': False,
            'default': None, 'default_source': None, 'required': True}
    base.update(fields)
    return base


ENERGY = param(unit='meV', min=0.5, max=100, min_inclusive=True,
               max_inclusive=True)


@pytest.mark.parametrize('value, problem', [
    (150, 'must be at most 100 meV'),
    (0.1, 'must be at least 0.5 meV'),
    (True, 'must be a number'),
    ('25', 'must be a number'),
    (EMPTY, 'required'),
])
def test_numbers_outside_type_or_limits_are_refused(value, problem):
    with pytest.raises(FieldError, match=problem):
        check(value, ENERGY)


def test_numbers_within_limits_pass_and_ints_count_as_floats():
    assert check(25, ENERGY) == 25
    assert check(0.5, ENERGY) == 0.5


def test_exclusive_bounds_exclude_the_bound():
    seconds = param(unit='s', min=0, min_inclusive=False, max=10,
                    max_inclusive=False)
    with pytest.raises(FieldError, match='must be above 0 s'):
        check(0, seconds)
    with pytest.raises(FieldError, match='must be below 10 s'):
        check(10.0, seconds)
    assert check(9.5, seconds) == 9.5


def test_int_parameters_refuse_floats():
    with pytest.raises(FieldError, match='a whole number'):
        check(2.5, param(type='int'))


def test_empty_values_are_left_out_when_there_is_a_default_or_none():
    assert check(EMPTY, param(has_default=True, default=3.0)) is EMPTY
    assert check(EMPTY, param(nullable=True)) is None


def test_choices_and_list_items_are_checked():
    mode = param(type='str', choices=['fast', 'slow'])
    assert check('fast', mode) == 'fast'
    with pytest.raises(FieldError, match="one of 'fast', 'slow'"):
        check('medium', mode)
    temps = param(type='list', item_type='float', min=1.5, max=350,
                  min_inclusive=True, max_inclusive=True, unit='K')
    assert check([2, 300.5], temps) == [2, 300.5]
    with pytest.raises(FieldError, match='item 2 must be at most 350 K'):
        check([2, 400], temps)


def test_text_is_parsed_by_type():
    assert parse_text(' 2 ', 'int') == 2
    assert parse_text("{'a': 1}", 'any') == {'a': 1}
    assert parse_list('1, 2.5,4', 'float') == [1, 2.5, 4]
    assert parse_list('a, b', 'str') == ['a', 'b']
    assert parse_list('  ', 'float') == []
    with pytest.raises(FieldError, match='not a number'):
        parse_text('abc', 'float')
    with pytest.raises(FieldError, match='not a number'):
        parse_text('nan', 'float')
    with pytest.raises(FieldError, match='a whole number'):
        parse_text('2.5', 'int')
    with pytest.raises(FieldError, match='not a Python value'):
        parse_text('abc', 'any')


def test_calls_and_durations_read_as_typed():
    assert fmt.call('set_ei', {'energy': 25.0, 'wait': True},
                    {'energy': 'meV'}) == 'set_ei(energy=25 meV, wait=True)'
    assert fmt.value(1e-7) == '1e-07' and fmt.value(0.1 + 0.2) == repr(0.1 + 0.2)
    assert [fmt.duration(s) for s in (None, 4.6, 180, 185, 7500)] == [
        '', '5 s', '3 min', '3 min 05 s', '2 h 05 min']
    assert fmt.estimate({'state': 'ok', 'seconds': 42}) == '42 s'
    assert fmt.estimate({'state': 'failed', 'seconds': None}) == 'dry run failed'
    assert fmt.reflow('One\nparagraph.\n\nTwo.') == 'One paragraph.\n\nTwo.'
    assert fmt.people({'owner': 'ann', 'changed_by': 'ann'}) == 'by ann'
    assert fmt.people({'owner': 'ann', 'changed_by': 'root'}) == \
        'by ann, changed by root'
