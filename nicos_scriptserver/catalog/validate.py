"""Checks generated jobs against the catalog and turns them into scripts.

A generated job is a list of calls ``{"command": name, "args": {param:
value}}``; a call may also give ``"posargs": [value, ...]``, needed for
positional-only and ``*args`` parameters. Calls and items of lists are
numbered from 1 in messages, like the lines of the rendered script.
"""

from __future__ import annotations

import difflib
import keyword
import math
import re
from typing import (Any, Callable, Iterable, Iterator, List, Mapping,
                    Optional, Protocol, Sequence, Union)

# Longest shown form of a value in a message; longer ones are cut.
_MAX_SHOWN = 40
# A message lists at most this many problems (all are on the exception).
_MAX_LISTED = 10
_PHRASES = {'float': 'a number', 'int': 'a whole number', 'str': 'text',
            'bool': 'True or False', 'list': 'a list'}
# Characters compile() refuses without a position (see check_syntax).
_NOT_COMPILABLE = re.compile('[\0\ud800-\udfff]')
_PLAIN = ('only numbers, text, True/False, None and lists and dicts of '
          'them can be given')


class CommandLookup(Protocol):
    """What validation needs of a catalog: entries by name, and the names.

    A `Catalog` and a plain ``{name: entry}`` dict both qualify.
    """

    def get(self, name: str) -> Optional[Mapping[str, Any]]: ...

    def __iter__(self) -> Iterator[str]: ...


class ValidationError(ValueError):
    """Generated calls that do not fit the commands; *problems* lists all.

    The message is the problems, one a line, starting with the first.
    """

    def __init__(self, problems: List[str]) -> None:
        self.problems = problems
        shown = problems[:_MAX_LISTED]
        if len(problems) > _MAX_LISTED:
            shown.append(f'... and {len(problems) - _MAX_LISTED} more')
        super().__init__('\n'.join(shown))


class ScriptSyntaxError(ValueError):
    """Script text that does not compile; *line* and *column* count from 1."""

    def __init__(self, message: str, line: Optional[int],
                 column: Optional[int], source_line: str = '') -> None:
        self.message = message
        self.line = line
        self.column = column
        self.source_line = source_line
        where = f' at line {line}, column {column}' if line else ''
        super().__init__(f'syntax error{where}: {message}')


def show(value: Any) -> str:
    """*value* as a message shows it: its repr, cut if long."""
    text = repr(value)
    return text if len(text) <= _MAX_SHOWN else text[:_MAX_SHOWN - 3] + '...'


def plain_problem(value: Any) -> Optional[str]:
    """Why *value* cannot be written into a script, or None if it can."""
    if value is None or isinstance(value, (bool, int, str)):
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else 'is not a finite number'
    if isinstance(value, list):
        return next(filter(None, map(plain_problem, value)), None)
    if isinstance(value, dict):
        if not all(isinstance(key, str) for key in value):
            return 'has keys that are not text'
        return next(filter(None, map(plain_problem, value.values())), None)
    return f'cannot be given: {_PLAIN}'


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _type_problem(kind: str, value: Any) -> Optional[str]:
    if kind == 'any':
        return plain_problem(value)
    ok = {'float': _is_number(value),
          'int': isinstance(value, int) and not isinstance(value, bool),
          'str': isinstance(value, str),
          'bool': isinstance(value, bool),
          'list': isinstance(value, list)}.get(kind, True)
    if not ok:
        return f'is not {_PHRASES[kind]}'
    if isinstance(value, float) and not math.isfinite(value):
        return 'is not a finite number'
    return plain_problem(value) if kind == 'list' else None


def _same(a: Any, b: Any) -> bool:
    # True == 1 in Python, but a choice of 1 does not admit True.
    return a == b and isinstance(a, bool) == isinstance(b, bool)


def _limit_problem(param: Mapping[str, Any], value: Any) -> Optional[str]:
    unit = f" {param['unit']}" if param.get('unit') else ''
    low, high = param.get('min'), param.get('max')
    if low is not None:
        if param.get('min_inclusive', True) and value < low:
            return f'is below its minimum {low!r}{unit}'
        if not param.get('min_inclusive', True) and value <= low:
            return f'must be above {low!r}{unit}'
    if high is not None:
        if param.get('max_inclusive', True) and value > high:
            return f'is above its maximum {high!r}{unit}'
        if not param.get('max_inclusive', True) and value >= high:
            return f'must be below {high!r}{unit}'
    return None


def _scalar_problem(param: Mapping[str, Any], kind: str,
                    value: Any) -> Optional[str]:
    problem = _type_problem(kind, value)
    if problem:
        return problem
    choices = param.get('choices')
    if choices and not any(_same(value, choice) for choice in choices):
        return f"is not one of {', '.join(map(repr, choices))}"
    return _limit_problem(param, value) if _is_number(value) else None


def value_problem(param: Mapping[str, Any], value: Any) -> Optional[str]:
    """What is wrong with *value* for *param*, or None if it fits.

    The text follows the value's name: ``= 150 is above its maximum 100
    meV`` or, for an item of a list, ``item 2 = 'x' is not a number``.
    """
    if value is None and (param.get('nullable') or param['type'] == 'any'):
        return None
    problem = _scalar_problem(param, param['type'], value) if (
        param['type'] != 'list') else _type_problem('list', value)
    if problem:
        return f'= {show(value)} {problem}'
    if param['type'] == 'list':
        for number, item in enumerate(value, 1):
            problem = _scalar_problem(param, param.get('item_type') or 'any',
                                      item)
            if problem:
                return f'item {number} = {show(item)} {problem}'
    return None


def _suggestion(name: str, names: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(names), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ''


def _call_problems(entry: Mapping[str, Any],
                   call: Mapping[str, Any]) -> List[str]:
    params: Sequence[Mapping[str, Any]] = entry['params']
    by_name = {p['name']: p for p in params}
    positional = [p for p in params
                  if p['kind'] in ('positional_only', 'positional')]
    var_pos = next((p for p in params if p['kind'] == 'var_positional'), None)
    var_kw = next((p for p in params if p['kind'] == 'var_keyword'), None)
    posargs, args = call.get('posargs', []), call.get('args', {})
    if not isinstance(posargs, list):
        return ['"posargs" must be a list of values']
    if not isinstance(args, dict):
        return ['"args" must be a dict of argument name to value']
    problems: List[str] = []
    given = set()
    for index, value in enumerate(posargs):
        if index < len(positional):
            given.add(positional[index]['name'])
            problem = value_problem(positional[index], value)
            what = f"argument '{positional[index]['name']}'"
        elif var_pos is not None:
            problem = value_problem(var_pos, value)
            what = f'positional argument {index + 1}'
        else:
            problems.append(f'takes at most {len(positional)} positional '
                            f'arguments, {len(posargs)} given')
            break
        if problem:
            problems.append(f'{what} {problem}')
    for name, value in args.items():
        param = by_name.get(name)
        if param is not None and param['kind'] == 'positional_only' and \
                var_kw is None:
            problems.append(f"argument '{name}' is positional-only; give it "
                            f'in "posargs"')
            given.add(name)   # not also "missing"
            continue
        if param is None or param['kind'] not in ('positional', 'keyword'):
            # Only **kwargs takes names that cannot be passed by name, as
            # in Python (the name of *args or of a positional-only one).
            if var_kw is None or _name_problem(name):
                names = [p['name'] for p in params
                         if p['kind'] in ('positional', 'keyword')]
                hint = _suggestion(str(name), names) or (
                    f" ({entry['name']} takes "
                    f"{', '.join(names) or 'no arguments by name'})")
                problems.append(f'unknown argument {show(name)}{hint}')
                continue
            param = var_kw
        elif name in given:
            problems.append(f"argument '{name}' is given both by position "
                            f'and by name')
            continue
        given.add(name)
        problem = value_problem(param, value)
        if problem:
            problems.append(f"argument '{name}' {problem}")
    problems += [f"missing required argument '{p['name']}'" for p in params
                 if p['required'] and p['name'] not in given]
    return problems


def validate_calls(catalog: CommandLookup,
                   calls: Sequence[Mapping[str, Any]]) -> None:
    """Raise `ValidationError` unless every call fits its command.

    Checks: the command exists, required arguments are given, no unknown
    ones, each value has the parameter's type (True is not a number; a
    whole number is a valid float), is within its limits and one of its
    choices.
    """
    problems: List[str] = []
    for number, call in enumerate(calls, 1):
        command = call.get('command') if isinstance(call, Mapping) else None
        if not isinstance(command, str):
            problems.append(f'call {number}: not a command call; give '
                            f'{{"command": name, "args": {{name: value}}}}')
            continue
        entry = catalog.get(command)
        if entry is None:
            problems.append(f"call {number} ({command}): unknown command "
                            f"'{command}'{_suggestion(command, catalog)}")
            continue
        problems += [f'call {number} ({command}): {problem}'
                     for problem in _call_problems(entry, call)]
    if problems:
        raise ValidationError(problems)


def _name_problem(name: Any) -> Optional[str]:
    if isinstance(name, str) and name.isidentifier() and \
            not keyword.iskeyword(name):
        return None
    return f'{show(name)} is not a valid name'


ValueFormat = Callable[[Union[str, int], Any], str]


def _arguments(call: Mapping[str, Any], form: ValueFormat) -> str:
    """The argument list of *call*; *form* gets a name or position index."""
    parts = [form(index, value)
             for index, value in enumerate(call.get('posargs', []))]
    parts += [f'{name}={form(name, value)}'
              for name, value in call.get('args', {}).items()]
    return ', '.join(parts)


def render_script(calls: Sequence[Mapping[str, Any]]) -> str:
    """NICOS script text for *calls*, one ``command(...)`` per line.

    Values are written as Python literals (their repr), so the script's
    syntax tree evaluates back to exactly the given values. Raises
    ValueError for names or values a script cannot hold.
    """
    lines = []
    for call in calls:
        if not isinstance(call, Mapping):
            raise ValueError(f'{show(call)} is not a command call')
        command = call.get('command')
        problem = _name_problem(command)
        if problem:
            raise ValueError(f'command {problem}')
        if not isinstance(call.get('posargs', []), list) or \
                not isinstance(call.get('args', {}), dict):
            raise ValueError(f'call of {command}: "posargs" must be a list '
                             f'and "args" a dict')

        def literal(key: Union[str, int], value: Any) -> str:
            problem = plain_problem(value) or (
                isinstance(key, str) and _name_problem(key))
            if problem:
                what = f'argument {key!r}' if isinstance(key, str) else \
                    f'positional argument {key + 1}'
                raise ValueError(f'{what} of {command}: {show(value)} '
                                 f'{problem}')
            return repr(value)

        lines.append(f'{command}({_arguments(call, literal)})')
    return ''.join(line + '\n' for line in lines)


def describe_calls(calls: Sequence[Mapping[str, Any]],
                   catalog: Optional[CommandLookup] = None) -> List[str]:
    """One line per call for display, with units when *catalog* knows them.

    ``set_ei(energy=12.5 meV, wait_for_choppers=True)``
    """
    lines = []
    for call in calls:
        entry = catalog.get(call.get('command', '')) if catalog else None
        params = list((entry or {}).get('params', ()))
        by_name = {p['name']: p for p in params}
        positional = [p for p in params
                      if p['kind'] in ('positional_only', 'positional')]

        def shown(key: Union[str, int], value: Any) -> str:
            if isinstance(key, str):
                param = by_name.get(key)
            else:
                param = positional[key] if key < len(positional) else None
            unit = (param or {}).get('unit')
            return f'{show(value)} {unit}' if unit and _is_number(value) \
                else show(value)

        lines.append(f"{call.get('command')}({_arguments(call, shown)})")
    return lines


def check_syntax(text: str, filename: str = '<script>') -> None:
    """Raise `ScriptSyntaxError` (line, column, message) if *text* fails.

    Compiling (not only parsing) also catches ``return`` outside a function
    and the like, which would otherwise fail only when the job starts.
    """
    # Only the line ends Python knows: str.splitlines also splits at form
    # feeds and the like, which would shift the line numbers.
    lines = re.split(r'\r\n|\r|\n', text)
    # Python reports a NUL without a position (and not always as a
    # SyntaxError), and a lone surrogate (JSON's "\ud800" decodes to one)
    # as a UnicodeEncodeError, so find them here.
    bad = _NOT_COMPILABLE.search(text)
    if bad:
        before = text[:bad.start()]
        line = before.count('\n') + 1
        what = 'a NUL character' if bad.group() == '\0' else \
            f'a lone surrogate {bad.group()!r}, which is not text'
        raise ScriptSyntaxError(f'the script contains {what}', line,
                                len(before) - before.rfind('\n'),
                                lines[line - 1])
    try:
        compile(text, filename, 'exec', dont_inherit=True)
    except SyntaxError as err:
        line = err.lineno
        source_line = lines[line - 1] if line and line <= len(lines) else ''
        raise ScriptSyntaxError(err.msg, line, err.offset,
                                source_line) from None
