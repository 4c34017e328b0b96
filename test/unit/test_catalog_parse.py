"""Command files to catalog entries: signatures, types, docstrings, flags."""

import json
import textwrap
from pathlib import Path

import pytest

from nicos_scriptserver.catalog import parse_file, parse_source
from nicos_scriptserver.catalog.parse import NO_DOCSTRING

DEMO_COMMANDS = Path(__file__).resolve().parents[2] / 'commands'

SET_EI = '''
from nicos import session
from nicos.commands.device import maw
from nicos_scriptserver.daemon.jobapi import pause_point, progress

def set_ei(energy: float, wait: bool = True):
    """Positions the choppers to allow the specified incident energy through.

    Longer free text description, any number of paragraphs.

    Second paragraph.

    Args:
        energy [meV] (0.5..100): incident energy to let through.
        wait: wait until all choppers are at speed and in phase.
    """

def estimate_set_ei(energy, wait=True):
    """Duration estimate in seconds (optional)."""
    return 12.0
'''


def commands(source, path='/cmds/example.py', file='example.py'):
    parsed = parse_source(textwrap.dedent(source), path, file)
    assert parsed.error is None, parsed.error
    return {entry['name']: entry for entry in parsed.commands}


def command(source):
    (entry,) = commands(source).values()
    return entry


def params(source):
    return {p['name']: p for p in command(source)['params']}


def param(source):
    (p,) = command(source)['params']
    return p


def test_set_ei_example_gives_the_documented_entry():
    entry = commands(SET_EI)['set_ei']
    assert entry['summary'] == ('Positions the choppers to allow the '
                                'specified incident energy through.')
    assert entry['description'] == ('Longer free text description, any '
                                    'number of paragraphs.\n\n'
                                    'Second paragraph.')
    assert (entry['file'], entry['path'], entry['line']) == (
        'example.py', '/cmds/example.py', 6)
    assert entry['flags'] == {'pause_points': False, 'progress': False,
                              'estimate': True}
    assert entry['warnings'] == []
    assert len(entry['hash']) == 64
    energy, wait = entry['params']
    assert energy == {
        'name': 'energy', 'kind': 'positional', 'type': 'float',
        'nullable': False, 'item_type': None, 'choices': None,
        'unit': 'meV', 'min': 0.5, 'max': 100, 'min_inclusive': True,
        'max_inclusive': True, 'default': None, 'has_default': False,
        'default_source': None, 'required': True,
        'description': 'incident energy to let through.'}
    assert (wait['type'], wait['default'], wait['has_default'],
            wait['required']) == ('bool', True, True, False)
    assert wait['description'] == ('wait until all choppers are at speed '
                                   'and in phase.')
    assert json.loads(json.dumps(entry)) == entry


def test_demo_commands_parse_without_warnings():
    for name in ('energy', 'measure', 'sample'):
        parsed = parse_file(str(DEMO_COMMANDS / f'{name}.py'), f'{name}.py')
        assert parsed.error is None and parsed.commands
        assert all(not e['warnings'] for e in parsed.commands), name


@pytest.mark.parametrize('annotation, expected', [
    ('float', ('float', False, None, None)),
    ('int', ('int', False, None, None)),
    ('str', ('str', False, None, None)),
    ('bool', ('bool', False, None, None)),
    ("Literal['fast', 'slow']", ('str', False, None, ['fast', 'slow'])),
    ("typing.Literal[1, 2, 3]", ('int', False, None, [1, 2, 3])),
    ("Literal['a', None]", ('str', True, None, ['a'])),
    ('Optional[float]', ('float', True, None, None)),
    ('float | None', ('float', True, None, None)),
    ('None | int', ('int', True, None, None)),
    ('Union[str, None]', ('str', True, None, None)),
    ('Union[int, float]', ('float', False, None, None)),
    ('Union[int, str]', ('any', False, None, None)),
    ('list[float]', ('list', False, 'float', None)),
    ('List[int]', ('list', False, 'int', None)),
    ('typing.Sequence[str]', ('list', False, 'str', None)),
    ('tuple[float, ...]', ('list', False, 'float', None)),
    ('tuple[int, str]', ('list', False, 'any', None)),
    ('list', ('list', False, 'any', None)),
    ('list[list[int]]', ('list', False, 'any', None)),
    ("list[Literal['a', 'b']]", ('list', False, 'str', ['a', 'b'])),
    ('Optional[List[float]]', ('list', True, 'float', None)),
    ("'float'", ('float', False, None, None)),
    ('Annotated[int, "frames"]', ('int', False, None, None)),
    ('Device', ('any', False, None, None)),
    ('dict[str, int]', ('any', False, None, None)),
    ("'not valid python ('", ('any', False, None, None)),
])
def test_types_come_from_annotations(annotation, expected):
    p = param(f'def f(x: {annotation}):\n    """Doc."""\n')
    assert (p['type'], p['nullable'], p['item_type'], p['choices']) == \
        expected


@pytest.mark.parametrize('default, expected', [
    ('1', ('int', False)), ('1.5', ('float', False)), ("'a'", ('str', False)),
    ('True', ('bool', False)), ('None', ('any', True)),
    ('[1, 2]', ('list', False)), ('(1.0, 2.0)', ('list', False)),
    ('{"a": 1}', ('any', False)),
])
def test_without_annotation_a_literal_default_gives_the_type(default,
                                                             expected):
    p = param(f'def f(x={default}):\n    """Doc."""\n')
    assert (p['type'], p['nullable']) == expected
    assert p['has_default'] and not p['required']


def test_defaults_are_json_values_or_marked_source_text():
    ps = params('''
        import math
        def f(a=(1, 2), b=-3, c=1e-3, d={'k': [None]}, e=math.pi,
              f=2 * SPEED, g={1, 2}, h=b'x', i=float('inf'), j=1e999):
            """Doc."""
    ''')
    assert ps['a']['default'] == [1, 2] and ps['a']['type'] == 'list'
    assert ps['a']['item_type'] == 'int'
    assert ps['b']['default'] == -3 and ps['c']['default'] == 0.001
    assert ps['d']['default'] == {'k': [None]}
    for name, source in [('e', 'math.pi'), ('f', '2 * SPEED'),
                         ('g', '{1, 2}'), ('h', "b'x'"),
                         ('i', "float('inf')"), ('j', '1e999')]:
        assert ps[name]['default'] is None, name
        assert ps[name]['default_source'] == source, name
        assert ps[name]['has_default'] and not ps[name]['required']
        assert ps[name]['type'] == 'any'
    assert all(ps[n]['default_source'] is None for n in 'abcd')


def test_none_default_makes_an_annotated_argument_nullable():
    p = param('def f(x: float = None):\n    """Doc."""\n')
    assert (p['type'], p['nullable'], p['default']) == ('float', True, None)


def test_all_signature_kinds_in_order():
    ps = command('''
        def f(a, b=2, /, c=3, *rest: float, d, e='x', **options: int):
            """Doc."""
    ''')['params']
    assert [(p['name'], p['kind'], p['required']) for p in ps] == [
        ('a', 'positional_only', True), ('b', 'positional_only', False),
        ('c', 'positional', False), ('rest', 'var_positional', False),
        ('d', 'keyword', True), ('e', 'keyword', False),
        ('options', 'var_keyword', False)]
    assert [p['default'] for p in ps] == [None, 2, 3, None, None, 'x', None]
    assert ps[3]['type'] == 'float' and ps[6]['type'] == 'int'


def test_keyword_only_after_bare_star():
    ps = command('def f(*, x: int, y: int = 0):\n    """Doc."""\n')['params']
    assert [(p['kind'], p['required']) for p in ps] == [
        ('keyword', True), ('keyword', False)]


@pytest.mark.parametrize('limits, expected', [
    ('0.5..100', (0.5, 100, True, True)),
    ('-1e-3 .. 2E3', (-0.001, 2000.0, True, True)),
    ('0..', (0, None, True, None)),
    ('..10', (None, 10, None, True)),
    ('>= 1', (1, None, True, None)),
    ('<= 10', (None, 10, None, True)),
    ('> 0', (0, None, False, None)),
    ('< 2.5', (None, 2.5, None, False)),
    ('>=-5', (-5, None, True, None)),
])
def test_limits(limits, expected):
    p = param(f'''
        def f(x: float):
            """Doc.

            Args:
                x ({limits}): the value.
            """
    ''')
    assert (p['min'], p['max'], p['min_inclusive'], p['max_inclusive']) == \
        expected


def test_unit_limits_and_continued_description():
    ps = params('''
        def f(speed, angle, plain, *values, **extra):
            """Doc.

            Arguments:
                speed [m/s] (0..10): how fast,
                    in metres per second.

                    A second paragraph.
                angle (-180..180) [deg]: limits before the unit.
                plain []: an empty unit is no unit.
                *values: the rest.
                **extra: more.
            """
    ''')
    assert ps['speed']['unit'] == 'm/s'
    assert ps['speed']['description'] == ('how fast, in metres per second.'
                                          '\n\nA second paragraph.')
    assert (ps['angle']['unit'], ps['angle']['min'], ps['angle']['max']) == \
        ('deg', -180, 180)
    assert ps['plain']['unit'] is None
    assert ps['values']['description'] == 'the rest.'
    assert ps['extra']['description'] == 'more.'


def test_google_type_in_parentheses_is_used_without_annotation():
    ps = params('''
        def f(a, b, c: str, d, e):
            """Doc.

            Parameters:
                a (float): a number.
                b (int, >= 1): with limits.
                c (int): the annotation wins.
                d (list of float, optional): a list.
                e (Literal['x', 'y']): choices.
            """
    ''')
    assert ps['a']['type'] == 'float'
    assert (ps['b']['type'], ps['b']['min']) == ('int', 1)
    assert ps['c']['type'] == 'str'
    assert (ps['d']['type'], ps['d']['item_type']) == ('list', 'float')
    assert ps['e']['choices'] == ['x', 'y']


def test_summary_description_and_other_sections():
    entry = command('''
        def f(x):
            """First line
            continues the summary.

            Body text.

            Args:
                x: the value.

            Returns:
                nothing.
            """
    ''')
    assert entry['summary'] == 'First line continues the summary.'
    assert entry['description'] == 'Body text.\n\nReturns:\n    nothing.'


def test_numpy_style():
    entry = command('''
        def f(energy, mode, x, y, wait=True):
            """Short summary.

            Parameters
            ----------
            energy [meV] (0.5..100) : float
                Incident energy,
                over two lines.
            mode : {'fast', 'slow'}
                How.
            x, y : int, optional
                Two at once.
            wait : bool

            Notes
            -----
            Kept in the description.
            """
    ''')
    ps = {p['name']: p for p in entry['params']}
    assert (ps['energy']['type'], ps['energy']['unit'], ps['energy']['min'],
            ps['energy']['max']) == ('float', 'meV', 0.5, 100)
    assert ps['energy']['description'] == 'Incident energy, over two lines.'
    assert (ps['mode']['type'], ps['mode']['choices']) == (
        'str', ['fast', 'slow'])
    assert ps['x']['type'] == ps['y']['type'] == 'int'
    assert ps['x']['description'] == ps['y']['description'] == 'Two at once.'
    assert (ps['wait']['type'], ps['wait']['description']) == ('bool', '')
    assert entry['summary'] == 'Short summary.'
    assert entry['description'] == 'Notes\n-----\nKept in the description.'
    assert entry['warnings'] == []


def test_nicos_usercommand_decorators():
    cs = commands('''
        from nicos.commands import (helparglist, hiddenusercommand,
                                    usercommand)
        import nicos.commands

        @usercommand
        @helparglist('dev, [value]')
        def nicos_style(dev, value=None):
            """A NICOS-style command.

            Example:

            >>> nicos_style(motor, 1)
            """

        @hiddenusercommand
        def hidden():
            """Not for users."""

        @nicos.commands.hiddenusercommand()
        def hidden_too():
            """Not for users."""
    ''')
    assert list(cs) == ['nicos_style']
    assert cs['nicos_style']['line'] == 8   # the def, not the decorator
    assert '>>> nicos_style(motor, 1)' in cs['nicos_style']['description']


def test_only_public_top_level_defs_are_commands():
    cs = commands('''
        from elsewhere import imported
        import os

        def outer():
            """Doc."""
            def nested():
                pass

        async def asynchronous():
            """Doc."""

        lam = lambda x: x

        class Thing:
            def method(self):
                pass

        def _private():
            pass

        def estimate_outer():
            return 1.0

        def estimate_nothing():
            return 1.0

        if os.name == 'posix':
            def conditional():
                pass
    ''')
    assert list(cs) == ['outer']


def test_missing_docstring_is_still_a_command_with_a_warning():
    entry = command('def bare(x: int):\n    return x\n')
    assert (entry['summary'], entry['description']) == ('', '')
    assert entry['warnings'] == [NO_DOCSTRING]
    assert entry['params'][0]['type'] == 'int'


def test_warnings_for_docstring_mistakes():
    entry = command('''
        def f(a: float, b: str, c: int = 50, d: bool = True,
              e: Literal['x', 'y'] = 'z', g: float = 1):
            """Doc.

            Args:
                a (0.5 to 100): unreadable limits.
                b (0..1): limits on text.
                c (1..10): default outside.
                d (>= 1): limits on a bool.
                e: default not a choice.
                g (10..1): minimum above maximum.
                typo: not an argument.
            """
    ''')
    assert entry['warnings'] == [
        "cannot read the limits (0.5 to 100) of 'a': write lo..hi, >= lo, "
        "<= hi, > lo or < hi",
        "the docstring documents 'typo', which is not a parameter",
        "'b' has limits but is not a number",
        "the default of 'c' = 50 is above its maximum 10",
        "'d' has limits but is not a number",
        "the default of 'e' = 'z' is not one of 'x', 'y'",
        "'g' has limits with minimum above maximum",
        "the default of 'g' = 1 is below its minimum 10",
    ]


def test_flags_from_calls_in_the_body_and_in_the_files_helpers():
    cs = commands('''
        import nicos_scriptserver.daemon.jobapi as ss

        def pauses():
            """Doc."""
            for i in range(3):
                pause_point()

        def reports():
            """Doc."""
            progress(0.5, 'half')

        def steps():
            """Doc."""
            ss.step(1, 2)

        def via_helper():
            """Doc."""
            _loop()

        def _loop():
            ss.pause_point()
            reports()

        def mentions_only(step=1):
            """Doc."""
            x = pause_point
            return step

        def plain():
            """Doc."""
    ''')
    flags = {name: (e['flags']['pause_points'], e['flags']['progress'])
             for name, e in cs.items()}
    assert flags == {'pauses': (True, False), 'reports': (False, True),
                     'steps': (False, True), 'via_helper': (True, True),
                     'mentions_only': (False, False),
                     'plain': (False, False)}


def test_estimate_with_other_arguments_gives_a_warning():
    cs = commands('''
        def a(x, y=1):
            """Doc."""
        def estimate_a(x):
            return 1.0
        def b(x, y=1):
            """Doc."""
        def estimate_b(*args, **kwargs):
            return 1.0
    ''')
    assert cs['a']['flags']['estimate'] and cs['b']['flags']['estimate']
    assert cs['a']['warnings'] == ['estimate_a takes (x) but a takes (x, y)']
    assert cs['b']['warnings'] == []


def test_a_redefined_function_uses_the_later_definition():
    cs = commands('''
        def f(x):
            """First."""

        def g():
            """Doc."""

        def f(y):
            """Second."""
    ''')
    assert list(cs) == ['g', 'f']
    assert (cs['f']['summary'], cs['f']['line']) == ('Second.', 8)
    assert cs['f']['warnings'] == [
        'also defined at line 2; this later definition is the one used']


def test_hash_covers_the_function_source_only():
    base = commands('@dec\ndef f():\n    """Doc."""\n    return 1\n'
                    'def g():\n    return 1\n')
    body = commands('@dec\ndef f():\n    """Doc."""\n    return 2\n'
                    'def g():\n    return 1\n')
    decorator = commands('@other\ndef f():\n    """Doc."""\n    return 1\n'
                         'def g():\n    return 1\n')
    other = commands('@dec\ndef f():\n    """Doc."""\n    return 1\n'
                     'def g():\n    return 3\n')
    assert base['f']['hash'] != body['f']['hash']
    assert base['f']['hash'] != decorator['f']['hash']
    assert base['f']['hash'] == other['f']['hash']
    assert base['g']['hash'] != other['g']['hash']


@pytest.mark.parametrize('source, line, column, message', [
    ('def f(:\n    pass\n', 1, 7, 'invalid syntax'),
    ('x = 1\ndef f():\n    return (1,\n', 3, 12, "'(' was never closed"),
    ('x = 1\nreturn x\n', 2, 1, "'return' outside function"),
    ('def f():\n  x = 1\n    y = 2\n', 3, 4, 'unexpected indent'),
])
def test_syntax_errors_have_line_column_and_message(source, line, column,
                                                    message):
    parsed = parse_source(source, '/cmds/bad.py', 'bad.py')
    assert parsed.commands == []
    assert parsed.error == {'kind': 'syntax', 'file': 'bad.py',
                            'path': '/cmds/bad.py', 'line': line,
                            'column': column, 'message': message}
    assert parsed.compiled is None


def test_parsing_gives_the_code_of_the_module_it_compiled():
    source = 'def f():\n    """Does f."""\n    return 1 / 0\n'
    parsed = parse_source(source, '/cmds/good.py', 'good.py')
    text, code = parsed.compiled
    assert text is source and code.co_filename == '/cmds/good.py'
    namespace = {}
    exec(code, namespace)
    with pytest.raises(ZeroDivisionError) as err:
        namespace['f']()
    assert err.traceback[-1].lineno + 1 == 3


def test_parse_file_follows_the_encoding_declaration(tmp_path):
    path = tmp_path / 'latin.py'
    path.write_bytes('# -*- coding: latin-1 -*-\ndef f():\n'
                     '    """Température."""\n'.encode('latin-1'))
    parsed = parse_file(str(path), 'latin.py')
    assert parsed.commands[0]['summary'] == 'Température.'
    assert len(parsed.digest) == 64


def test_parse_file_reports_unreadable_files(tmp_path):
    path = tmp_path / 'binary.py'
    path.write_bytes(b'x = "\xff\xfe"\n')
    error = parse_file(str(path), 'binary.py').error
    assert (error['kind'], error['line']) == ('read', None)
    assert error['message'].startswith('cannot be decoded:')
    error = parse_file(str(tmp_path / 'gone.py'), 'gone.py').error
    assert error['message'].startswith('cannot be read:')


def test_line_numbers_and_hash_ignore_form_feeds_and_line_end_style():
    unix = commands('x = 1\n\x0c\ndef f():\n    """Doc."""\n')['f']
    windows = commands('x = 1\r\n\x0c\r\ndef f():\r\n    """Doc."""\r\n')['f']
    assert unix['line'] == windows['line'] == 3
    assert unix['hash'] == windows['hash']
