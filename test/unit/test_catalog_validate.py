"""Generated calls against the catalog; rendering and syntax checks.

Refusals are checked by their exact message: it is what the user reads.
"""

import ast
import keyword
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nicos_scriptserver.catalog import (ScriptSyntaxError, ValidationError,
                                        check_syntax, describe_calls,
                                        parse_source, render_script,
                                        validate_calls)

SOURCE = '''
from typing import List, Literal, Optional

def set_ei(energy: float, wait: bool = True):
    """Sets the incident energy.

    Args:
        energy [meV] (0.5..100): incident energy.
        wait: wait for the choppers.
    """

def measure(frames: Optional[int] = None, seconds: Optional[float] = None):
    """Counts.

    Args:
        frames (>= 1): frames.
        seconds [s] (> 0): time.
    """

def mode(kind: Literal['fast', 'slow'], level: Literal[1, 2] = 1,
         below: float = 0):
    """Chooses.

    Args:
        below (< 10): exclusive maximum.
    """

def positions(xs: List[float], name: str = ''):
    """Moves through positions.

    Args:
        xs [mm] (-50..50): the positions.
    """

def flexible(a, /, b, *rest: int, c, **extra: float):
    """Anything."""

def nothing():
    """No arguments."""

def point(x, y=0, /):
    """Positional-only."""
'''

CATALOG = {e['name']: e for e in
           parse_source(SOURCE, '/cmds/demo.py', 'demo.py').commands}


def call(command, posargs=None, **args):
    result = {'command': command, 'args': args}
    if posargs is not None:
        result['posargs'] = posargs
    return result


def problems(*calls):
    with pytest.raises(ValidationError) as info:
        validate_calls(CATALOG, list(calls))
    return info.value.problems


def problem(*calls):
    (text,) = problems(*calls)
    return text


def test_valid_calls_pass():
    validate_calls(CATALOG, [
        call('set_ei', energy=12.5), call('set_ei', energy=1, wait=False),
        call('set_ei', energy=100), call('set_ei', energy=0.5),
        call('measure'), call('measure', frames=1),
        call('measure', seconds=None),
        call('mode', kind='slow', level=2, below=9.99),
        call('positions', xs=[], name='a'), call('positions', xs=[-50, 50.0]),
        call('flexible', [1, 2, 3, 4], c=None, d=1.5),
        call('flexible', [1], b=2, c={'any': ['json']}),
        call('nothing'), call('point', [1]), call('point', [1, 2]),
        call('flexible', [1, 2], c=0, a=1.0),
    ])


def test_above_maximum_names_call_command_argument_and_rule():
    with pytest.raises(ValidationError) as info:
        validate_calls(CATALOG, [call('set_ei', energy=12),
                                 call('set_ei', energy=150)])
    assert str(info.value) == ("call 2 (set_ei): argument 'energy' = 150 is "
                               "above its maximum 100 meV")


@pytest.mark.parametrize('bad_call, message', [
    (call('set_ei', energy=0.4),
     "argument 'energy' = 0.4 is below its minimum 0.5 meV"),
    (call('measure', frames=0),
     "argument 'frames' = 0 is below its minimum 1"),
    (call('measure', seconds=0),
     "argument 'seconds' = 0 must be above 0 s"),
    (call('mode', kind='fast', below=10),
     "argument 'below' = 10 must be below 10"),
    (call('mode', kind='medium'),
     "argument 'kind' = 'medium' is not one of 'fast', 'slow'"),
    (call('mode', kind='fast', level=True),
     "argument 'level' = True is not a whole number"),
    (call('mode', kind='fast', level=3),
     "argument 'level' = 3 is not one of 1, 2"),
    (call('set_ei', energy=True),
     "argument 'energy' = True is not a number"),
    (call('set_ei', energy='12'),
     "argument 'energy' = '12' is not a number"),
    (call('set_ei', energy=None),
     "argument 'energy' = None is not a number"),
    (call('set_ei', energy=math.nan),
     "argument 'energy' = nan is not a finite number"),
    (call('measure', frames=2.0),
     "argument 'frames' = 2.0 is not a whole number"),
    (call('set_ei', energy=10, wait=1),
     "argument 'wait' = 1 is not True or False"),
    (call('positions', xs=[1, 'x']),
     "argument 'xs' item 2 = 'x' is not a number"),
    (call('positions', xs=[1, 60]),
     "argument 'xs' item 2 = 60 is above its maximum 50 mm"),
    (call('positions', xs=5.0),
     "argument 'xs' = 5.0 is not a list"),
    (call('positions', xs=[], name=3),
     "argument 'name' = 3 is not text"),
    (call('set_ei', energy=10, enrgy=1),
     "unknown argument 'enrgy' (did you mean 'energy'?)"),
    (call('set_ei', energy=10, speed=1),
     "unknown argument 'speed' (set_ei takes energy, wait)"),
    (call('nothing', x=1),
     "unknown argument 'x' (nothing takes no arguments by name)"),
    (call('set_ei'), "missing required argument 'energy'"),
    (call('set_ei', [1, True, 3]),
     'takes at most 2 positional arguments, 3 given'),
    (call('set_ei', [1], energy=2),
     "argument 'energy' is given both by position and by name"),
    (call('point', x=1),
     'argument \'x\' is positional-only; give it in "posargs"'),
    (call('point', [1, 2, 3]),
     'takes at most 2 positional arguments, 3 given'),
    (call('flexible', [1, 2, 'x'], c=1),
     "positional argument 3 = 'x' is not a whole number"),
    (call('flexible', [1, 2], c=1, more='x'),
     "argument 'more' = 'x' is not a number"),
    # As in Python, **extra takes the names of *rest and of positional-only
    # arguments.
    (call('flexible', [1, 2], c=1, rest=[1]),
     "argument 'rest' = [1] is not a number"),
    (call('flexible', [1, 2], c=1, a='x'),
     "argument 'a' = 'x' is not a number"),
    (call('set_ei', energy=1, rest=[1]),
     "unknown argument 'rest' (set_ei takes energy, wait)"),
    (call('flexible', [1, 2], c=object()),
     "argument 'c' = <object object at 0x... cannot be given: only "
     "numbers, text, True/False, None and lists and dicts of them can be "
     "given"),
    (call('set_ei', 12.5), '"posargs" must be a list of values'),
    ({'command': 'set_ei', 'args': [12.5]},
     '"args" must be a dict of argument name to value'),
])
def test_each_rule_has_a_clear_message(bad_call, message):
    text = problem(bad_call)
    prefix = f"call 1 ({bad_call['command']}): "
    if '0x...' in message:   # an object's repr holds its address
        text = text[:text.index('0x') + 2] + '...' + text[
            text.index(' cannot'):]
    assert text == prefix + message


def test_unknown_command_and_malformed_calls():
    assert problems(call('set_eii', energy=1), {'args': {}}, 'measure') == [
        "call 1 (set_eii): unknown command 'set_eii' (did you mean "
        "'set_ei'?)",
        'call 2: not a command call; give {"command": name, "args": '
        '{name: value}}',
        'call 3: not a command call; give {"command": name, "args": '
        '{name: value}}',
    ]
    assert problem(call('zzz')) == "call 1 (zzz): unknown command 'zzz'"


def test_all_problems_are_collected_and_the_message_leads_with_the_first():
    with pytest.raises(ValidationError) as info:
        validate_calls(CATALOG, [call('set_ei', energy=500, wait='no'),
                                 call('measure'), call('mode')])
    assert info.value.problems == [
        "call 1 (set_ei): argument 'energy' = 500 is above its maximum "
        "100 meV",
        "call 1 (set_ei): argument 'wait' = 'no' is not True or False",
        "call 3 (mode): missing required argument 'kind'",
    ]
    assert str(info.value) == '\n'.join(info.value.problems)
    assert isinstance(info.value, ValueError)


def test_a_long_message_lists_ten_problems():
    with pytest.raises(ValidationError) as info:
        validate_calls(CATALOG, [call('set_ei')] * 25)
    assert len(info.value.problems) == 25
    lines = str(info.value).splitlines()
    assert len(lines) == 11 and lines[-1] == '... and 15 more'


def test_long_values_are_cut_in_messages():
    text = problem(call('set_ei', energy='x' * 100))
    assert text == ("call 1 (set_ei): argument 'energy' = '" + 'x' * 36 +
                    "... is not a number")


def test_render_script_writes_one_call_per_line():
    script = render_script([
        call('set_ei', energy=12.5, wait=False),
        call('flexible', [1, 'two'], c=None, d={'k': [1.5, True]}),
        call('nothing'),
    ])
    assert script == ("set_ei(energy=12.5, wait=False)\n"
                      "flexible(1, 'two', c=None, d={'k': [1.5, True]})\n"
                      "nothing()\n")
    assert render_script([]) == ''


@pytest.mark.parametrize('bad_call, message', [
    (call('set ei'), "command 'set ei' is not a valid name"),
    (call('class'), "command 'class' is not a valid name"),
    ({'command': 'f', 'args': {'lambda': 1}},
     "argument 'lambda' of f: 1 'lambda' is not a valid name"),
    (call('f', x=math.inf), "argument 'x' of f: inf is not a finite number"),
    (call('f', [b'x']), "positional argument 1 of f: b'x' cannot be given: "
     "only numbers, text, True/False, None and lists and dicts of them can "
     "be given"),
    (call('f', x={1: 2}), "argument 'x' of f: {1: 2} has keys that are not "
     "text"),
    ({'command': 'f', 'args': [1]},
     'call of f: "posargs" must be a list and "args" a dict'),
    ('f()', "'f()' is not a command call"),
])
def test_render_script_refuses_what_a_script_cannot_hold(bad_call, message):
    with pytest.raises(ValueError) as info:
        render_script([bad_call])
    assert str(info.value) == message


def test_describe_calls_shows_units_from_the_catalog():
    calls = [call('set_ei', energy=12.5, wait=True), call('flexible', [1]),
             call('positions', xs=[1, 2]), call('unknown', x=1)]
    assert describe_calls(calls, CATALOG) == [
        'set_ei(energy=12.5 meV, wait=True)', 'flexible(1)',
        'positions(xs=[1, 2])', 'unknown(x=1)']
    assert describe_calls(calls[:1]) == ['set_ei(energy=12.5, wait=True)']


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() |
    st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) |
    st.dictionaries(st.text(max_size=5), children, max_size=4),
    max_leaves=8)
# Built from characters: st.from_regex is several times slower.
names = st.builds(str.__add__, st.sampled_from('abfinrTN_'),
                  st.text('aefilnorsuT_09', max_size=6)).filter(
    lambda name: not keyword.iskeyword(name))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(names, st.lists(json_values, max_size=2),
                          st.dictionaries(names, json_values, max_size=3)),
                min_size=1, max_size=3))
def test_rendered_values_evaluate_back_to_the_same_values(calls):
    calls = [{'command': command, 'posargs': posargs, 'args': args}
             for command, posargs, args in calls]
    tree = ast.parse(render_script(calls))
    assert len(tree.body) == len(calls)
    for statement, original in zip(tree.body, calls):
        rendered = statement.value
        assert rendered.func.id == original['command']
        assert [ast.literal_eval(a) for a in rendered.args] == \
            original['posargs']
        assert {k.arg: ast.literal_eval(k.value)
                for k in rendered.keywords} == original['args']


def test_check_syntax_accepts_a_script():
    assert check_syntax('set_ei(12.5)\nfor t in (1, 2):\n    measure(t)\n') \
        is None


@pytest.mark.parametrize('text, line, column, message, source_line', [
    ('set_ei(12.5\nmeasure(1)\n', 1, 7, "'(' was never closed",
     'set_ei(12.5'),
    ('x = 1\nreturn x\n', 2, 1, "'return' outside function", 'return x'),
    ('a = 1\nb = 2 +\n', 2, 8, 'invalid syntax', 'b = 2 +'),
    ('a = 1\nb = "x\0y"\n', 2, 7, 'the script contains a NUL character',
     'b = "x\0y"'),
])
def test_check_syntax_names_line_and_column(text, line, column, message,
                                            source_line):
    with pytest.raises(ScriptSyntaxError) as info:
        check_syntax(text)
    error = info.value
    assert (error.line, error.column, error.message, error.source_line) == \
        (line, column, message, source_line)
    assert str(error) == f'syntax error at line {line}, column {column}: ' \
        f'{message}'
