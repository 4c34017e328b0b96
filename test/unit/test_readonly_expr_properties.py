"""Properties of the guest expression check, on generated expressions.

Expressions are built from a grammar of pieces: watching pieces (device
reads and parameters, the admitted session values, literals) joined by the
admitted operators, calls and displays, and escape pieces (callables used
as values, underscores, attribute walks, format, unknown names, lambdas,
comprehensions, unpacking, ...). The invariants:

* an expression is refused exactly when it contains an escape piece;
* the allowlists are exact: a random or real attribute, method, function
  or session path passes only if it is listed;
* the semantic oracle: an expression that passes, evaluated against fake
  devices, a fake session and fake builtins that record every use outside
  the read API, records nothing (no ``exec``, ``open``, setter, ``start``,
  ``move``, ``maw``, device call, ...).
"""

import ast
import builtins
import keyword
import string
import warnings

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from nicos.core import Moveable

from nicos_scriptserver.daemon.readonly_expr import (DEVICE_PARAMETERS,
                                              DEVICE_READS, READ_FUNCTIONS,
                                              SESSION_CALLS, SESSION_VALUES,
                                              NotReadOnly, check_read_only)
from test_readonly_expr import DEVICES, KNOWN_ESCAPES

EXAMPLES = settings(max_examples=1500, deadline=None)

# -- the grammar --------------------------------------------------------------

device_names = st.sampled_from(sorted(DEVICES))


def _device_piece(name, kind, param):
    return {
        'read': f'{name}.read()', 'read0': f'{name}.read(0)',
        'maxage': f'{name}.read(maxage=1.5)', 'status': f'{name}.status()',
        'status0': f'{name}.status(0)[0]', 'param': f'{name}.{param}',
    }[kind]


device_pieces = st.builds(
    _device_piece, device_names,
    st.sampled_from(['read', 'read0', 'maxage', 'status', 'status0',
                     'param']),
    st.sampled_from(sorted(DEVICE_PARAMETERS)))

# Small values only: the oracle evaluates what passes, and ``*`` repeats.
literals = st.one_of(
    st.integers(0, 3).map(str), st.sampled_from(['0.5', '1e3', '-2.0']),
    st.text('ab', max_size=3).map(repr), st.sampled_from(['None', 'True',
                                                          "b'x'", "'%s'"]))

session_pieces = st.sampled_from(
    sorted(SESSION_VALUES) + [f'{call}()' for call in sorted(SESSION_CALLS)])

safe_leaves = st.one_of(device_pieces, literals, session_pieces)

# Each piece is refused in any place a value can stand.
ESCAPE_PIECES = [
    # callables used as values
    'exec', 'eval', 'open', 'len', 'max', 'str', 'sample_x', 'det',
    'sample_x.read', 'T_sample.status', 'sample_x.start', 'sample_x.move',
    'session.getSetupInfo', 'max([1], key=exec)', 'min([1], key=len)',
    'min([1], default=exec)', 'sample_x.read(exec)', 'sample_x.read(len)',
    # underscores and dunders
    'sample_x._cache', 'sample_x.__class__', '().__class__', '_',
    'sample_x.read().__class__', '(1).__add__(2)', '__builtins__',
    'session._exported_names', '__import__("os")',
    # attribute chains off devices, to non-listed session parts
    'sample_x.read().real', "'x'.upper()", 'session.devices',
    'session.experiment', 'session.experiment.proposalpath',
    'config.__dict__', 'T_sample.unit.upper()', 'sample_x.target.real',
    'session.getSetupInfo().get("x")',
    # format
    "'{}'.format(1)", "'{x}'.format_map({'x': 1})", "format(1, 'x')",
    'sample_x.format(1)', "f'{1}'", "f'{sample_x.read()!r:>3}'",
    # unknown names and acting calls
    'x', 'os', 'session', 'config', 'globals()', 'vars()', 'getattr',
    'maw(sample_x, 1)', 'sample_x.move(1)', 'sample_x.start(1)',
    'sample_x.maw(1)', 'sample_x.stop()', 'sample_x.reset()',
    'sample_x.doStart(1)', 'sample_x(1)', 'sorted([1])',
    "session.getDevice('sample_x')", 'sample_x.history()',
    # binding, looping, unpacking, unbounded work
    'lambda: 1', '(lambda: 1)()', '[i for i in (1,)]', '(i for i in (1,))',
    '{i for i in (1,)}', '{i: 1 for i in (1,)}', '(y := 1)', 'max(*[1, 2])',
    'max(**{})', '{**{}}', '[*(1,)]', '2 ** 3', '1 << 2',
    'round(1, 99)', 'round(1, -1)',
    *(expr for expr, _ in KNOWN_ESCAPES),
]
escape_leaves = st.sampled_from(ESCAPE_PIECES)

BINARY = ['+', '-', '*', '/', '//', '%', '&', '|', '^', '>>', '<', '<=',
          '==', '!=', '>', '>=', 'in', 'not in', 'is', 'is not', 'and', 'or']
# How watching pieces are joined; each {} is a smaller expression.
TEMPLATES = [
    *(f'({{}} {op} {{}})' for op in BINARY),
    *(f'({op}{{}})' for op in ('-', '+', 'not ', '~')),
    '({} if {} else {})', '({},)', '[{}, {}]', '{{{}: {}}}', '{{{}, {}}}',
    '{}[{}]', '{}[{}:{}]', 'max({}, {})', 'round({}, 2)',
    *(f'{func}({{}})' for func in sorted(READ_FUNCTIONS)),
]


def _holes(template):
    return sum(field is not None
               for _, field, _, _ in string.Formatter().parse(template))


def _joined(template):
    """Fill *template* with (text, escaped) pairs; escaped if any part is."""
    def combine(parts):
        return (template.format(*(text for text, _ in parts)),
                any(escaped for _, escaped in parts))
    return combine


def _extend(children):
    return st.sampled_from(TEMPLATES).flatmap(
        lambda template: st.tuples(*[children] * _holes(template)).map(
            _joined(template)))


def expressions(leaves):
    """(text, escaped) pairs of expressions made of *leaves*."""
    return st.recursive(leaves, _extend, max_leaves=6)


safe = expressions(safe_leaves.map(lambda text: (text, False)))
# Each leaf is an escape piece or a watching piece, half and half.
mixed = expressions(st.booleans().flatmap(
    lambda escape: escape_leaves.map(lambda text: (f'({text})', True))
    if escape else safe_leaves.map(lambda text: (text, False))))


def _verdict(expr):
    try:
        check_read_only(expr, DEVICES)
    except NotReadOnly as err:
        return str(err)
    return None


@EXAMPLES
@given(safe)
def test_watching_pieces_pass_however_they_are_combined(case):
    expr, _ = case
    assert _verdict(expr) is None, expr


@EXAMPLES
@given(mixed)
def test_an_expression_is_refused_exactly_when_it_holds_an_escape(case):
    expr, escaped = case
    ast.parse(expr, mode='eval')  # the grammar makes valid Python
    verdict = _verdict(expr)
    event('with an escape piece' if escaped else 'watching pieces only')
    if escaped:
        assert verdict is not None, expr
        assert not verdict.startswith('not a valid expression'), verdict
    else:
        assert verdict is None, (expr, verdict)


@pytest.mark.parametrize('piece', ESCAPE_PIECES)
def test_every_escape_piece_is_refused_alone(piece):
    assert _verdict(piece) is not None


# -- the allowlists are exact -------------------------------------------------

# Real names an attacker would try: every builtin, every attribute of a
# moveable device and of a string, plus random identifiers.
REAL_NAMES = sorted(set(dir(builtins)) | set(dir(Moveable)) | set(dir(str)) |
                    {'session', 'config', 'experiment', 'cache', 'devices'})
names = st.one_of(
    st.sampled_from([name for name in REAL_NAMES
                     if not keyword.iskeyword(name)]),
    st.from_regex(r'[A-Za-z_][A-Za-z0-9_]{0,12}', fullmatch=True).filter(
        lambda name: not keyword.iskeyword(name)))
# The parts of the listed paths, so that near misses come up often.
session_parts = st.sampled_from(sorted(
    {part for path in SESSION_VALUES | SESSION_CALLS
     for part in path.split('.')[1:]}))


@EXAMPLES
@given(device_names, names)
def test_a_device_attribute_passes_only_if_it_is_a_listed_parameter(dev,
                                                                    name):
    assert (_verdict(f'{dev}.{name}') is None) == (name in DEVICE_PARAMETERS)


@EXAMPLES
@given(device_names, names)
def test_a_device_method_passes_only_if_it_only_reads(dev, name):
    passes = _verdict(f'{dev}.{name}(0)') is None
    assert passes == (name in DEVICE_READS)


@EXAMPLES
@given(names)
def test_a_function_passes_only_if_it_is_listed_and_called(name):
    assert (_verdict(f'{name}(1)') is None) == (name in READ_FUNCTIONS)
    assert _verdict(f'{name}') is not None
    assert _verdict(f'max([1], key={name})') is not None
    assert _verdict(f'[{name}]') is not None


@EXAMPLES
@given(st.lists(st.one_of(names, session_parts), min_size=1, max_size=3),
       st.sampled_from(['session', 'config']), st.booleans())
def test_a_session_path_passes_only_if_it_is_listed(parts, root, called):
    path = '.'.join([root, *parts])
    listed = SESSION_CALLS if called else SESSION_VALUES
    expr = f'{path}()' if called else path
    assert (_verdict(expr) is None) == (path in listed)


# -- the semantic oracle ------------------------------------------------------

PARAMETER_VALUES = {
    'abslimits': (-10.0, 10.0), 'description': 'a motor', 'fixed': '',
    'fmtstr': '%.3f', 'offset': 0.0, 'precision': 0.1, 'ramp': 1.0,
    'speed': 2.0, 'target': 1.0, 'unit': 'mm', 'userlimits': (-5.0, 5.0),
    'warnlimits': None,
}
SESSION_DATA = {
    'session.alias_config': {'a': [('sample_x', 100)]},
    'session.experiment.name': 'Exp', 'session.experiment.title': 'demo',
    'session.experiment.scriptpath': '/s', 'session.instrument.instrument':
    'DEMO', 'config.nicos_root': '/n', 'config.logging_path': 'log',
    'session.getSetupInfo': lambda: {'sample': {'devices': ['sample_x']}},
}


class Recorder:
    """Stands for anything outside the read API: any use is written down."""

    def __init__(self, what, log):
        self._what = what
        self._log = log

    def __call__(self, *args, **kwargs):
        self._log.append(f'called {self._what}')

    def __getattr__(self, name):
        self._log.append(f'{self._what}.{name}')
        return Recorder(f'{self._what}.{name}', self._log)


class FakeDevice:
    """Its read API returns plain values; anything else is recorded."""

    def __init__(self, name, log):
        self.fake = (name, log)  # read back past __getattribute__

    def __getattribute__(self, attr):
        name, log = object.__getattribute__(self, 'fake')
        if attr == 'read':
            return lambda maxage=None: 0.5
        if attr == 'status':
            return lambda maxage=None: (0, 'idle')
        if attr in PARAMETER_VALUES:
            return PARAMETER_VALUES[attr]
        log.append(f'{name}.{attr}')
        return Recorder(f'{name}.{attr}', log)

    def __call__(self, *args, **kwargs):
        name, log = object.__getattribute__(self, 'fake')
        log.append(f'called {name}')


class FakePath:
    """``session``/``config``: the listed paths give data, others record."""

    def __init__(self, path, log):
        self.fake = (path, log)  # read back past __getattribute__

    def __getattribute__(self, attr):
        own, log = object.__getattribute__(self, 'fake')
        path = f'{own}.{attr}'
        if path in SESSION_DATA:
            return SESSION_DATA[path]
        if any(known.startswith(path + '.') for known in SESSION_DATA):
            return FakePath(path, log)
        log.append(path)
        return Recorder(path, log)

    def __call__(self, *args, **kwargs):
        own, log = object.__getattribute__(self, 'fake')
        log.append(f'called {own}')


def _namespace(log):
    fake_builtins = {name: Recorder(name, log) for name in dir(builtins)}
    fake_builtins.update({name: getattr(builtins, name)
                          for name in READ_FUNCTIONS})
    namespace = {name: FakeDevice(name, log) for name in DEVICES}
    namespace.update(__builtins__=fake_builtins,
                     session=FakePath('session', log),
                     config=FakePath('config', log))
    return namespace


def _evaluate(expr):
    """What evaluating *expr* did outside the read API, and its error."""
    log = []
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', SyntaxWarning)  # `1 is 2`
        try:
            eval(expr, _namespace(log))  # pylint: disable=eval-used
        except Exception as err:  # pylint: disable=broad-except
            return log, err  # a TypeError or ZeroDivisionError is harmless
    return log, None


@EXAMPLES
@given(st.one_of(safe, mixed))
def test_what_passes_uses_nothing_but_the_read_api(case):
    expr, _ = case
    if _verdict(expr) is None:
        log, error = _evaluate(expr)
        event(f'passed, evaluation raised {type(error).__name__}' if error
              else 'passed, evaluated to a value')
        assert log == [], expr
    else:
        event('refused')


@pytest.mark.parametrize('expr, use', [
    ("min(['import os'], key=eval)", 'called eval'),
    ("max(['import os'], key=exec)", 'called exec'),
    ('min([11], key=sample_x.move)', 'sample_x.move'),
    ('max([11], key=sample_x)', 'called sample_x'),
    ("max(['/etc/passwd'], **{'key': open})", 'called open'),
    ("session.getDevice('det').read()", 'session.getDevice'),
    ('sample_x.read(sample_x.start)', 'sample_x.start'),
    ("'{0.start}'.format(sample_x)", 'sample_x.start'),
])
def test_the_oracle_sees_what_the_old_check_let_through(expr, use):
    # These passed the old check; the oracle must notice them.
    assert use in _evaluate(expr)[0]
    assert _verdict(expr) is not None
