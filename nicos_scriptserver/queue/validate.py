"""Checks of the values queue operations take besides job specs (see
`app.spec` for those): texts, reports, progress, counts.

Each check returns the value in the form the queue keeps (JSON-normalized:
tuples become lists, so that a job reads back from disk exactly as it was
given) or raises `InvalidValue` with a message naming the job.
"""

from __future__ import annotations

import json
from typing import Any, Dict, Mapping, Optional

from nicos_scriptserver.queue.errors import InvalidValue
from nicos_scriptserver.queue.model import json_number

#: Most copies ``repeat`` makes at once (a typo like 1000000 would
#: otherwise flood the queue).
MAX_REPEAT = 1000


def normalized(value: Any, what: str) -> Any:
    """*value* as it reads back from JSON; refuses what JSON cannot carry."""
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as err:
        raise InvalidValue(f'{what} cannot be sent to clients: {err}') from None


def text(value: Any, what: str, label: str) -> str:
    """*value*, which must be a string (*what* names it in a refusal)."""
    if not isinstance(value, str):
        raise InvalidValue(f'{label}: the {what} must be text, not '
                           f'{type(value).__name__}')
    return value


def error_report(value: Any, label: str) -> Optional[Dict[str, Any]]:
    """An error report ``{type, message, traceback, line}`` (or None)."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise InvalidValue(f'{label}: the error report must be a dict')
    line = value.get('line')
    if line is not None and (not isinstance(line, int) or isinstance(line, bool)):
        raise InvalidValue(f'{label}: the error line must be a line number')
    return normalized({'type': str(value.get('type', '')),
                       'message': str(value.get('message', '')),
                       'traceback': str(value.get('traceback', '')),
                       'line': line}, f'{label}: the error report')


def fraction(value: Any, label: str) -> Optional[float]:
    """A progress fraction: None (unknown) or a number from 0 to 1."""
    if value is None:
        return None
    if not json_number(value) or not 0 <= value <= 1:
        raise InvalidValue(f'{label}: progress must be a number from 0 to 1, '
                           f'not {value!r}')
    return float(value)


def repeat_count(value: Any, label: str) -> int:
    """How many copies to make: 1 to `MAX_REPEAT`."""
    if isinstance(value, bool) or not isinstance(value, int) or \
            not 1 <= value <= MAX_REPEAT:
        raise InvalidValue(f'cannot repeat {label} {value!r} times: give a '
                           f'number from 1 to {MAX_REPEAT}')
    return value
