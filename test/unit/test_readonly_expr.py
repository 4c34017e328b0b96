"""What a guest may evaluate: what watching needs passes, every escape fails.

`WATCHING` are the expressions the stock NICOS GUI and console client, our
clients and the integration tests send while watching; `KNOWN_ESCAPES` are
sandbox escapes from public write-ups and from NICOS itself (commands that
move, session methods that create devices or write the cache), each with
the refusal a user sees.
"""

import ast
import importlib
import re
from pathlib import Path

import pytest

from nicos_scriptserver.daemon.readonly_expr import (DEVICE_PARAMETERS,
                                              DEVICE_READS, NotReadOnly,
                                              check_read_only)

SETUPS = Path(__file__).resolve().parents[2] / 'setups'

# The demo instrument's devices (setups/*.py).
DEVICES = frozenset({
    'sample_x', 'sample_theta', 'T_sample', 'det', 'timer', 'monitor',
    'events', 'frame_rate', 'beam_current', 'Exp', 'Sample', 'DEMO',
    'Commands', *(f'chopper{n}_{kind}' for n in (1, 2, 3)
                  for kind in ('speed', 'phase')),
})

WATCHING = [
    # integration tests and nicos_scriptserver.clients.daemonclient users
    'sample_x.read(0)',
    '(chopper1_speed.read(0), chopper3_phase.read(0), sample_x.read(0), '
    'sample_theta.read(0))',
    'frame_rate.read(0)', 'T_sample.read(0)', 'sample_x.status(0)[0]',
    'session.experiment.name',
    # stock GUI: devices panel, editor, log viewer, window title
    'session.getSetupInfo()', 'session.alias_config',
    'session.experiment.scriptpath', 'session.experiment.title',
    'config.nicos_root', 'config.logging_path',
    # stock console client: prompt
    'session.instrument.instrument',
    # what people type into a watch or eval box
    'sample_x.read()', 'T_sample.status()', 'sample_x.read(maxage=0)',
    'sample_x.read(None)', 'T_sample.status(0.5)[1]', 'T_sample.unit',
    'chopper1_speed.target', 'sample_x.userlimits[1]', 'T_sample.ramp',
    'not sample_x.fixed', 'round(T_sample.read(0), 2)', 'round(1.25)',
    'abs(sample_x.read() - sample_x.target) < sample_x.precision',
    "'%.3f %s' % (T_sample.read(), T_sample.unit)",
    'T_sample.fmtstr % T_sample.read()', 'det.read()[0] > 3',
    'max(sample_x.read(), 0)', 'min([1, 2])', 'len(det.read())',
    'str(T_sample.read()) + T_sample.unit',
    'T_sample.read() if T_sample.status()[0] == 200 else None',
    '{"x": sample_x.read(), "theta": sample_theta.read()}',
    'session.getSetupInfo()["sample"]["devices"]', 'det.read()[1:3]',
    'int(frame_rate.read()) // 2 % 7', 'int(frame_rate.read()) >> 1',
    'float(T_sample.read()) / 3',
    '1 + 1', "b'x' == 'x'", '{1, 2} | {3}', 'sample_x.read() in (1, 2)',
    'bool(~3 & 1 ^ 2) or beam_current.read() is None',
]


@pytest.mark.parametrize('expr', WATCHING)
def test_what_watching_needs_passes(expr):
    check_read_only(expr, DEVICES)


KNOWN_ESCAPES = [
    # walks from any object to every class, module and builtin
    ('().__class__.__base__.__subclasses__()',
     "private name '__subclasses__'"),
    ("[].__class__.__mro__[1].__subclasses__()[0].__init__.__globals__"
     "['sys']", "private name '__globals__'"),
    ("__import__('os').system('id')", "private name '__import__'"),
    ('__builtins__', "private name '__builtins__'"),
    ("getattr(sample_x, '_cache')", 'calling getattr() is not allowed'),
    ('vars(sample_x)', 'calling vars() is not allowed'),
    ('globals()', 'calling globals() is not allowed'),
    ('locals()', 'calling locals() is not allowed'),
    ("type('x', (), {})", 'calling type() is not allowed'),
    ("exec('import os')", 'calling exec() is not allowed'),
    ("eval('1')", 'calling eval() is not allowed'),
    ("compile('1', '', 'eval')", 'calling compile() is not allowed'),
    ("open('/etc/passwd').read()", 'calling open() is not allowed'),
    ('breakpoint()', 'calling breakpoint() is not allowed'),
    ("setattr(sample_x, 'speed', 0)", 'calling setattr() is not allowed'),
    # a callable handed to something that calls it
    ("sorted(['import os'], key=exec)", 'calling sorted() is not allowed'),
    ("max(['import os'], key=exec)", 'keyword argument key= of max()'),
    ("min([11], key=sample_x.move)", 'keyword argument key= of min()'),
    ("max([11], key=sample_x)", 'keyword argument key= of max()'),
    ("min([], default=exec)", 'keyword argument default= of min()'),
    ("list(map(exec, ['import os']))", 'calling list() is not allowed'),
    ("map(exec, ['import os'])", 'calling map() is not allowed'),
    ('max(len, abs)', 'len may only be called, not used as a value'),
    ('[sample_x.move]', 'sample_x.move is not allowed'),
    ('sample_x.read(sample_x.start)', 'takes at most a maxage'),
    ('sample_x.read(maxage=exec)', 'takes at most a maxage'),
    ('str(sample_x)', 'device sample_x may only be read'),
    ('[sample_x][0](11)', 'device sample_x may only be read'),
    ('sample_x.read()(11)', 'calling the result of an expression'),
    # format strings walk attributes
    ("'{0.__init__.__globals__}'.format(sample_x)",
     'format is not allowed: a format string can reach any attribute'),
    ("str.format('{0.__class__}', 1)", 'format is not allowed'),
    ("'{x.__class__}'.format_map({'x': 1})", 'format_map is not allowed'),
    ("format(T_sample.read(), '.3f')", 'calling format() is not allowed'),
    ("T_sample.read().__format__('')", "private name '__format__'"),
    ('sample_x.format(1)', 'format is not allowed'),
    ("f'{sample_x.read()}'", 'an f-string is not allowed'),
    ("f'{1!r:>{2}}'", 'an f-string is not allowed'),
    # from a device to its innards and its actions
    ('sample_x.read.__self__', "private name '__self__'"),
    ("sample_x.status.__func__.__globals__['session']",
     "private name '__globals__'"),
    ('sample_x._cache', "private name '_cache'"),
    ('sample_x._adevs', "private name '_adevs'"),
    ('sample_x._dev', "private name '_dev'"),
    ('sample_x.doStart(1)', 'sample_x.doStart() is not allowed'),
    ('sample_x.move(1)', 'sample_x.move() is not allowed'),
    ('sample_x.start(1)', 'sample_x.start() is not allowed'),
    ('sample_x.maw(1)', 'sample_x.maw() is not allowed'),
    ('sample_x.stop()', 'sample_x.stop() is not allowed'),
    ('sample_x.reset()', 'sample_x.reset() is not allowed'),
    ('sample_x.shutdown()', 'sample_x.shutdown() is not allowed'),
    ("sample_x.history('value', -1e9)", 'sample_x.history() is not allowed'),
    ('sample_x(11)', 'calling device sample_x() is not allowed'),
    ('det()', 'calling device det() is not allowed'),
    ('sample_x.read().real', "attribute 'real' is only allowed on a device"),
    ('sample_x.speed(5)', 'sample_x.speed() is not allowed'),
    # NICOS commands and session methods that act
    ('maw(sample_x, 11)', 'calling maw() is not allowed'),
    ("LogEntry('x')", 'calling LogEntry() is not allowed'),
    ("session.runsource('import os')", 'session.runsource() is not allowed'),
    ("session.getDevice('sample_x').start(1)",
     'session.getDevice() is not allowed'),
    ("session.getDevice('det').read()", 'session.getDevice() is not allowed'),
    ("session.cache.put_raw('watchdog/enable', [])",
     'session.cache.put_raw() is not allowed'),
    ("session.setUserinput(1, 'y')", 'session.setUserinput() is not allowed'),
    ('session.devices', 'session.devices is not allowed'),
    ('sorted(session.devices)', 'calling sorted() is not allowed'),
    ('session._exported_names', "private name '_exported_names'"),
    ('session.getSetupInfo', 'may only be called, not used as a value'),
    ("session.getSetupInfo('x')", 'takes no arguments'),
    ('config.__dict__', "private name '__dict__'"),
    ('session', "name 'session' is not allowed"),
    # constructs that bind, loop, unpack or never end
    ('(x := 1)', 'an assignment expression (:=) is not allowed'),
    ('[x for x in (1, 2)]', 'a list comprehension is not allowed'),
    ('list(d for d in session.devices)', 'calling list() is not allowed'),
    ('max(d for d in (1, 2))', 'a generator expression is not allowed'),
    ('{x: 1 for x in (1, 2)}', 'a dict comprehension is not allowed'),
    ('(lambda: 1)()', 'lambda is not allowed'),
    ('lambda: 1', 'lambda is not allowed'),
    ("max(*['ab'])", '* unpacking is not allowed'),
    ("[*map(exec, ['1'])]", '* unpacking is not allowed'),
    ("dict(**{'a': 1})", 'calling dict() is not allowed'),
    ("max(**{'key': exec})", '** unpacking is not allowed'),
    ("{**{'a': exec}}", '** unpacking is not allowed'),
    ('await sample_x', 'await is not allowed'),
    ('(yield)', 'yield is not allowed'),
    ('9 ** 9 ** 9', 'the operator ** is not allowed'),
    ('1 << 10000000000', 'the operator << is not allowed'),
    ('round(5, -100000000)', 'round() takes a number of digits'),
    ('round(5, 10**8)', 'the operator ** is not allowed'),
]


@pytest.mark.parametrize('expr, reason', KNOWN_ESCAPES)
def test_known_escapes_are_refused_saying_why(expr, reason):
    with pytest.raises(NotReadOnly, match=re.escape(reason)):
        check_read_only(expr, DEVICES)


def test_there_are_many_known_escapes():
    assert len({expr for expr, _ in KNOWN_ESCAPES}) >= 25


@pytest.mark.parametrize('expr, reason', [
    ('1 +', 'not a valid expression: invalid syntax'),
    ('x = 1', 'not a valid expression'),
    ('1\x00', 'not a valid expression'),
    ('+'.join(['1'] * 100000), 'nested too deeply'),
    ('-' * 100000 + '1', 'nested too deeply'),
])
def test_what_is_no_expression_is_refused(expr, reason):
    with pytest.raises(NotReadOnly, match=re.escape(reason)):
        check_read_only(expr, DEVICES)


def test_only_names_of_this_session_are_devices():
    check_read_only('new_motor.read()', DEVICES | {'new_motor'})
    with pytest.raises(NotReadOnly, match="name 'new_motor' is not allowed"):
        check_read_only('new_motor.read()', DEVICES)


def test_the_session_devices_dict_is_a_container_of_names():
    check_read_only('sample_x.unit', {'sample_x': object()})


def test_a_device_named_like_a_read_function_is_not_called():
    with pytest.raises(NotReadOnly, match=re.escape('calling device len()')):
        check_read_only('len(1)', DEVICES | {'len'})


def _demo_device_classes():
    paths = set()
    for setup in SETUPS.glob('*.py'):
        for node in ast.walk(ast.parse(setup.read_text())):
            if (isinstance(node, ast.Call) and
                    getattr(node.func, 'id', None) == 'device'):
                paths.add(node.args[0].value)
    classes = []
    for path in sorted(paths):
        module, _, name = path.rpartition('.')
        classes.append(getattr(importlib.import_module(module), name))
    return classes


def test_admitted_device_attributes_are_parameters_and_read_methods():
    # A NICOS upgrade (or a device class) that turns one of them into a
    # method, or drops a read method, must be noticed here.
    classes = _demo_device_classes()
    assert len(classes) >= 8
    for cls in classes:
        for name in DEVICE_PARAMETERS:
            if hasattr(cls, name):
                assert name in cls.parameters, (cls, name)
        if 'unit' in cls.parameters:  # a Readable
            for name in DEVICE_READS:
                assert callable(getattr(cls, name)), (cls, name)
