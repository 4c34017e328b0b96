"""Decide whether a guest's expression only watches (free of NICOS imports).

Guest logins may evaluate expressions to watch the instrument (``eval``,
and ``watch`` expressions, which NICOS evaluates over and over). But
NICOS's ``eval`` runs any Python, and device access checks look at the
running script's user, not at the caller. So a guest's expression may only
be made of what watching needs, and anything not listed here is refused:

* a device of the session, only as ``dev.read()`` or ``dev.status()``
  (with at most a number for ``maxage``) or as ``dev.<parameter>`` for the
  parameters in `DEVICE_PARAMETERS`. A device is never a value on its own:
  a moveable device is callable, and ``dev(5)`` moves it;
* the functions in `READ_FUNCTIONS`, only where they are called: a function
  passed as a value (``sorted(..., key=exec)``) could be called by anything;
* the session and config values that the stock GUI and console client read
  while watching (`SESSION_VALUES`, `SESSION_CALLS`), as whole paths;
* literals, tuples, lists, sets, dicts, arithmetic, comparisons,
  ``and``/``or``/``not``, ``x if c else y``, indexing and slicing.

Never: other names or attributes, names with underscores, keyword arguments
(but ``maxage=``), ``*``/``**`` unpacking, lambdas, comprehensions, ``:=``,
f-strings, and anything named ``format``/``format_map``: a format string
can walk to any attribute (``'{0.__globals__}'.format(f)``). ``**`` and
``<<`` are refused too: one line of them keeps the daemon busy for hours.
"""

import ast
from typing import Container, Optional

#: Builtins a guest may call (never pass around): conversions and the
#: arithmetic one does on read values. None of them takes a function to call
#: once keyword arguments (``key=``, ``default=``) are refused.
READ_FUNCTIONS = frozenset({
    'abs', 'bool', 'float', 'int', 'len', 'max', 'min', 'round', 'str',
})

#: Device methods a guest may call: the two that only read.
DEVICE_READS = frozenset({'read', 'status'})

#: Device attributes a guest may read: parameters of NICOS's base device
#: classes (Readable, Moveable, HasLimits, HasOffset, HasPrecision) and the
#: motors' speed and ramp. Parameters are properties that return the cached
#: value (or read it from the hardware), never methods; every other
#: parameter stays readable for guests through ``getcachekeys``.
DEVICE_PARAMETERS = frozenset({
    'abslimits', 'description', 'fixed', 'fmtstr', 'offset', 'precision',
    'ramp', 'speed', 'target', 'unit', 'userlimits', 'warnlimits',
})

#: Whole paths of values the stock NICOS clients read while watching.
SESSION_VALUES = frozenset({
    'session.alias_config',           # devices panel: an alias's targets
    'session.experiment.name',        # live data panel: the detectors' key
    'session.experiment.title',       # window title
    'session.experiment.scriptpath',  # console client, editor: scripts' folder
    'session.instrument.instrument',  # console client: its prompt
    'config.nicos_root',              # log viewer: where the logs are
    'config.logging_path',
})

#: Session methods the stock GUI calls while watching, without arguments.
SESSION_CALLS = frozenset({
    'session.getSetupInfo',  # devices panel: which setup each device is in
})

_SESSION_ROOTS = frozenset(path.split('.')[0]
                           for path in SESSION_VALUES | SESSION_CALLS)

_FORMAT_NAMES = frozenset({'format', 'format_map'})

_BINARY_OPERATORS = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv,
                     ast.Mod, ast.BitAnd, ast.BitOr, ast.BitXor, ast.RShift)
_REFUSED_OPERATORS = {ast.Pow: '**', ast.LShift: '<<', ast.MatMult: '@'}

# Largest digits for round(): round(5, -10**8) takes seconds of one core.
_MAX_ROUND_DIGITS = 15

# How users know the constructs they typed.
_DESCRIPTIONS = {
    ast.Lambda: 'lambda', ast.ListComp: 'a list comprehension',
    ast.SetComp: 'a set comprehension', ast.DictComp: 'a dict comprehension',
    ast.GeneratorExp: 'a generator expression',
    ast.NamedExpr: 'an assignment expression (:=)',
    ast.JoinedStr: 'an f-string', ast.FormattedValue: 'an f-string',
    ast.Starred: '* unpacking', ast.Await: 'await', ast.Yield: 'yield',
    ast.YieldFrom: 'yield',
}


class NotReadOnly(ValueError):
    """The expression could do more than watch (or cannot be parsed)."""


def check_read_only(expr: str, devices: Container[str]) -> None:
    """Raise `NotReadOnly` naming the first construct that is not allowed.

    *devices* are the names of the session's devices (``session.devices``
    will do); only these names are devices.
    """
    try:
        tree = ast.parse(expr, mode='eval')
    except SyntaxError as err:
        raise NotReadOnly(f'not a valid expression: {err.msg}') from None
    except ValueError as err:  # null bytes
        raise NotReadOnly(f'not a valid expression: {err}') from None
    except (RecursionError, MemoryError):  # MemoryError: the parser's stack
        raise NotReadOnly('the expression is nested too deeply') from None
    try:
        _Checker(devices).value(tree.body)
    except RecursionError:
        raise NotReadOnly('the expression is nested too deeply') from None


def _dotted(node: ast.expr) -> Optional[str]:
    """``a.b.c`` for an attribute chain on a name, else None."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return '.'.join(reversed(parts))


def _refuse_private(name: str) -> None:
    if name.startswith('_'):
        raise NotReadOnly(f'private name {name!r} is not allowed')


def _is_maxage(node: ast.expr) -> bool:
    """A number of seconds or None, as a literal."""
    if not isinstance(node, ast.Constant):
        return False
    value = node.value
    return value is None or (isinstance(value, (int, float)) and
                             not isinstance(value, bool))


class _Checker:
    """Walks an expression in source order; raises at the first refusal."""

    def __init__(self, devices: Container[str]) -> None:
        self.devices = devices

    def value(self, node: ast.expr) -> None:
        """Check *node*, which is evaluated for its value."""
        if isinstance(node, ast.Constant):
            return
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            children = node.elts
        elif isinstance(node, ast.Dict):
            if None in node.keys:
                raise NotReadOnly('** unpacking is not allowed')
            children = [*node.keys, *node.values]
        elif isinstance(node, ast.BinOp):
            self._operator(node.op)
            children = [node.left, node.right]
        elif isinstance(node, ast.UnaryOp):
            children = [node.operand]
        elif isinstance(node, ast.BoolOp):
            children = node.values
        elif isinstance(node, ast.Compare):
            children = [node.left, *node.comparators]
        elif isinstance(node, ast.IfExp):
            children = [node.test, node.body, node.orelse]
        elif isinstance(node, ast.Subscript):
            children = [node.value, node.slice]
        elif isinstance(node, ast.Slice):
            children = [part for part in (node.lower, node.upper, node.step)
                        if part is not None]
        elif isinstance(node, ast.Name):
            self._name(node.id)
            return
        elif isinstance(node, ast.Attribute):
            self._attribute(node, called=False)
            return
        elif isinstance(node, ast.Call):
            self._call(node)
            return
        else:
            what = _DESCRIPTIONS.get(type(node), type(node).__name__)
            raise NotReadOnly(f'{what} is not allowed')
        for child in children:
            self.value(child)

    @staticmethod
    def _operator(op: ast.operator) -> None:
        if not isinstance(op, _BINARY_OPERATORS):
            symbol = _REFUSED_OPERATORS.get(type(op), type(op).__name__)
            raise NotReadOnly(f'the operator {symbol} is not allowed')

    def _name(self, name: str) -> None:
        _refuse_private(name)
        if name in READ_FUNCTIONS:
            raise NotReadOnly(f'{name} may only be called, not used as a '
                              'value')
        if name in self.devices:
            raise NotReadOnly(
                f'device {name} may only be read: {name}.read(), '
                f'{name}.status() or {name}.<parameter>')
        raise NotReadOnly(f'name {name!r} is not allowed (only devices and '
                          f'{", ".join(sorted(READ_FUNCTIONS))})')

    def _attribute(self, node: ast.Attribute, called: bool) -> None:
        attr = node.attr
        _refuse_private(attr)
        if attr in _FORMAT_NAMES:
            raise NotReadOnly(f'{attr} is not allowed: a format string can '
                              'reach any attribute')
        path = _dotted(node)
        if path is not None and path.split('.')[0] in _SESSION_ROOTS:
            self._session_path(path, called)
        elif (isinstance(node.value, ast.Name) and
              node.value.id in self.devices):
            self._device_attribute(node.value.id, attr, called)
        else:
            self.value(node.value)  # a refusal inside comes first
            raise NotReadOnly(f'attribute {attr!r} is only allowed on a '
                              'device')

    @staticmethod
    def _session_path(path: str, called: bool) -> None:
        for part in path.split('.'):
            _refuse_private(part)
        if path in (SESSION_CALLS if called else SESSION_VALUES):
            return
        if path in SESSION_CALLS:
            raise NotReadOnly(f'{path} may only be called, not used as a '
                              'value')
        allowed = sorted(SESSION_VALUES | {f'{call}()'
                                           for call in SESSION_CALLS})
        what = f'{path}()' if called else path
        raise NotReadOnly(f'{what} is not allowed (of the session only '
                          f'{", ".join(allowed)})')

    @staticmethod
    def _device_attribute(device: str, attr: str, called: bool) -> None:
        if attr in (DEVICE_READS if called else DEVICE_PARAMETERS):
            return
        if attr in DEVICE_READS:
            raise NotReadOnly(f'{device}.{attr} may only be called, not '
                              'used as a value')
        what = f'{device}.{attr}()' if called else f'{device}.{attr}'
        raise NotReadOnly(
            f'{what} is not allowed: guests read devices through read(), '
            f'status() and {", ".join(sorted(DEVICE_PARAMETERS))}')

    def _call(self, node: ast.Call) -> None:
        func = node.func
        if isinstance(func, ast.Name):
            self._call_name(func.id, node)
        elif isinstance(func, ast.Attribute):
            self._attribute(func, called=True)
            if isinstance(func.value, ast.Name) and \
               func.value.id in self.devices:
                self._maxage_only(node, f'{func.value.id}.{func.attr}')
            elif node.args or node.keywords:  # a call of SESSION_CALLS
                raise NotReadOnly(f'{_dotted(func)}() takes no arguments')
        else:
            self.value(func)  # a refusal inside comes first
            raise NotReadOnly('calling the result of an expression is not '
                              'allowed')

    def _call_name(self, name: str, node: ast.Call) -> None:
        _refuse_private(name)
        if name in self.devices:
            raise NotReadOnly(f'calling device {name}() is not allowed (it '
                              f'moves the device); use {name}.read()')
        if name not in READ_FUNCTIONS:
            raise NotReadOnly(f'calling {name}() is not allowed (only '
                              f'{", ".join(sorted(READ_FUNCTIONS))})')
        for arg in node.args:
            self.value(arg)
        for keyword in node.keywords:
            self._refuse_keyword(keyword, name)
        if name == 'round' and len(node.args) > 1:
            digits = node.args[1]
            if not (isinstance(digits, ast.Constant) and
                    type(digits.value) is int and
                    0 <= digits.value <= _MAX_ROUND_DIGITS):
                raise NotReadOnly('round() takes a number of digits from 0 '
                                  f'to {_MAX_ROUND_DIGITS}')

    @staticmethod
    def _refuse_keyword(keyword: ast.keyword, func: str) -> None:
        if keyword.arg is None:
            raise NotReadOnly('** unpacking is not allowed')
        raise NotReadOnly(f'the keyword argument {keyword.arg}= of {func}() '
                          'is not allowed')

    def _maxage_only(self, node: ast.Call, func: str) -> None:
        """``dev.read()``/``dev.status()``: at most a number for maxage."""
        for keyword in node.keywords:
            if keyword.arg != 'maxage':
                self._refuse_keyword(keyword, func)
        arguments = [*node.args, *(keyword.value for keyword in node.keywords)]
        if len(arguments) > 1 or not all(map(_is_maxage, arguments)):
            raise NotReadOnly(f'{func}() takes at most a maxage in seconds '
                              '(a number)')
