"""Checks a job's script before it is queued (pure, no NICOS import).

Size limit and syntax (with line and column) for every job; generated jobs
arrive as command calls and get their script text rendered here.
"""

from typing import Any, Callable, Dict, List, Mapping, Optional

from nicos_scriptserver.queue import InvalidValue

# A job's script is at most this large (documented in docs/PROTOCOL.md).
MAX_SOURCE_BYTES = 512 * 1024

Calls = List[Dict[str, Any]]
CallsChecker = Callable[[Calls], None]


def check_source(source: Any, what: str = 'script') -> str:
    """Return *source* if it is text within the size limit that compiles."""
    if not isinstance(source, str):
        raise InvalidValue(f'{what} must be text, not {type(source).__name__}')
    if len(source.encode('utf-8', 'surrogatepass')) > MAX_SOURCE_BYTES:
        raise InvalidValue(f'{what} is larger than the limit of '
                           f'{MAX_SOURCE_BYTES // 1024} KiB')
    try:
        compile(source, '<script>', 'exec', dont_inherit=True)
    except SyntaxError as err:
        raise InvalidValue(f'{what} has a syntax error at line {err.lineno}, '
                           f'column {err.offset}: {err.msg}') from None
    except ValueError as err:   # NUL bytes and the like
        raise InvalidValue(f'{what} cannot be compiled: {err}') from None
    return source


def render_calls(calls: Calls) -> str:
    """Script text for command calls: one ``command(arg=value)`` per line."""
    lines = []
    for call in calls:
        args = ', '.join(f'{name}={value!r}'
                         for name, value in call.get('args', {}).items())
        lines.append(f"{call['command']}({args})")
    return '\n'.join(lines) + '\n'


def _checked_calls(calls: Any, check_calls: Optional[CallsChecker]) -> Calls:
    if not isinstance(calls, list) or not calls or not all(
            isinstance(c, dict) and isinstance(c.get('command'), str)
            and c['command'].isidentifier()
            and isinstance(c.get('args', {}), dict) for c in calls):
        raise InvalidValue('calls must be a non-empty list of '
                           '{"command": name, "args": {name: value}}')
    if check_calls is not None:
        check_calls(calls)
    return calls


def prepared_spec(spec: Mapping[str, Any],
                  check_calls: Optional[CallsChecker] = None) -> Dict[str, Any]:
    """A submitted job spec, checked, with the script rendered from calls."""
    if not isinstance(spec, Mapping):
        raise InvalidValue(f'a job must be a dict, not {type(spec).__name__}')
    spec = dict(spec)
    spec.setdefault('kind', 'aware')
    if spec.get('calls') is not None:
        spec['source'] = render_calls(_checked_calls(spec['calls'], check_calls))
    spec['source'] = check_source(spec.get('source'))
    return spec


def prepared_edits(edits: Mapping[str, Any],
                   check_calls: Optional[CallsChecker] = None) -> Dict[str, Any]:
    """Edits of a waiting job, checked like a submission."""
    edits = dict(edits)
    if edits.get('calls') is not None:
        edits['source'] = render_calls(_checked_calls(edits['calls'], check_calls))
    if 'source' in edits:
        edits['source'] = check_source(edits['source'])
    return edits
