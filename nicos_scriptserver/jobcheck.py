"""Checks a job's script before it is queued (pure, no NICOS import).

Size limit and syntax (with line and column) for every job; generated jobs
arrive as command calls, are checked against the command catalog and get
their script text rendered from the calls.
"""

from typing import Any, Dict, Mapping, Optional

from nicos_scriptserver.catalog import (ScriptSyntaxError, check_syntax,
                                        render_script, validate_calls)
from nicos_scriptserver.catalog.validate import CommandLookup
from nicos_scriptserver.queue import InvalidValue

# A job's script is at most this large (documented in docs/PROTOCOL.md).
MAX_SOURCE_BYTES = 512 * 1024


def check_source(source: Any, what: str = 'script') -> str:
    """Return *source* if it is text within the size limit that compiles."""
    if not isinstance(source, str):
        raise InvalidValue(f'{what} must be text, not {type(source).__name__}')
    if len(source.encode('utf-8', 'surrogatepass')) > MAX_SOURCE_BYTES:
        raise InvalidValue(f'{what} is larger than the limit of '
                           f'{MAX_SOURCE_BYTES // 1024} KiB')
    try:
        check_syntax(source)
    except ScriptSyntaxError as err:
        raise InvalidValue(f'{what} has a {err}') from None
    return source


def _script_for(calls: Any, catalog: Optional[CommandLookup]) -> str:
    if not isinstance(calls, list) or not calls:
        raise InvalidValue('calls must be a non-empty list of '
                           '{"command": name, "args": {name: value}}')
    if catalog is not None:
        validate_calls(catalog, calls)
    return render_script(calls)


def prepared_spec(spec: Mapping[str, Any],
                  catalog: Optional[CommandLookup] = None) -> Dict[str, Any]:
    """A submitted job spec, checked, with the script rendered from calls."""
    if not isinstance(spec, Mapping):
        raise InvalidValue(f'a job must be a dict, not {type(spec).__name__}')
    spec = dict(spec)
    spec.setdefault('kind', 'aware')
    if spec.get('calls') is not None:
        spec['source'] = _script_for(spec['calls'], catalog)
    spec['source'] = check_source(spec.get('source'))
    return spec


def prepared_edits(edits: Mapping[str, Any],
                   catalog: Optional[CommandLookup] = None) -> Dict[str, Any]:
    """Edits of a waiting job, checked like a submission."""
    edits = dict(edits)
    if edits.get('calls') is not None:
        edits['source'] = _script_for(edits['calls'], catalog)
    if 'source' in edits:
        edits['source'] = check_source(edits['source'])
    return edits
