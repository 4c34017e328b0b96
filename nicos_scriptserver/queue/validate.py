"""Checks of the values clients give to queue operations.

Each check returns the value in the form the queue keeps (JSON-normalized:
tuples become lists, so that a job reads back from disk exactly as it was
submitted) or raises `InvalidValue` with a message naming the job.
"""

from __future__ import annotations

import json
from typing import Any, Dict, List, Mapping, Optional

from nicos_scriptserver.queue.errors import InvalidValue
from nicos_scriptserver.queue.model import JobKind, json_number

#: Fields a job spec given to ``submit`` may have.
SPEC_FIELDS = ('kind', 'name', 'source', 'calls', 'held', 'hold_reason')
#: Most copies ``repeat`` makes at once (a typo like 1000000 would
#: otherwise flood the queue).
MAX_REPEAT = 1000
# Job ids are SQLite INTEGERs (signed 64-bit): a larger one cannot even be
# looked up (sqlite3 raises OverflowError), so it is refused here.
_JOB_IDS = range(-2**63, 2**63)


def normalized(value: Any, what: str) -> Any:
    """*value* as it reads back from JSON; refuses what JSON cannot carry."""
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as err:
        raise InvalidValue(f'{what} cannot be sent to clients: {err}') from None


def as_job_id(value: Any) -> int:
    """A job id as a client may give it (an int, or its text)."""
    if not isinstance(value, bool) and not (isinstance(value, float)
                                            and not value.is_integer()):
        try:
            job_id = int(value)
        except (TypeError, ValueError, OverflowError):
            pass
        else:
            if job_id in _JOB_IDS:
                return job_id
    raise InvalidValue(f'{value!r} is not a job id')


def spec_fields(spec: Any, label: str) -> Dict[str, Any]:
    """The job fields given by the submitted *spec* (a dict)."""
    if not isinstance(spec, Mapping):
        raise InvalidValue(f'{label} must be a dict, not '
                           f'{type(spec).__name__}')
    unknown = sorted(str(key) for key in spec if key not in SPEC_FIELDS)
    if unknown:
        raise InvalidValue(f'{label} has unknown fields {", ".join(unknown)}; '
                           f'known are {", ".join(SPEC_FIELDS)}')
    if 'kind' not in spec:
        raise InvalidValue(f'{label} has no kind; give one of '
                           f'{", ".join(k.value for k in JobKind)}')
    kind = job_kind(spec['kind'], label)
    held = spec.get('held', False)
    if not isinstance(held, bool):
        raise InvalidValue(f'{label}: held must be true or false')
    return {
        'kind': kind,
        'name': name(spec.get('name', ''), label),
        'source': source(spec.get('source'), label),
        'calls': calls(spec.get('calls'), kind, label),
        'held': held,
        'hold_reason': text(spec.get('hold_reason', ''), 'hold reason', label),
    }


def job_kind(value: Any, label: str) -> JobKind:
    """The kind named by *value*."""
    try:
        return JobKind(value)
    except ValueError:
        raise InvalidValue(f'{label}: unknown kind {value!r}; give one of '
                           f'{", ".join(k.value for k in JobKind)}') from None


def text(value: Any, what: str, label: str) -> str:
    """*value*, which must be a string (*what* names it in a refusal)."""
    if not isinstance(value, str):
        raise InvalidValue(f'{label}: the {what} must be text, not '
                           f'{type(value).__name__}')
    return value


def name(value: Any, label: str) -> str:
    """A job's name (its short title; may be empty)."""
    return text(value, 'name', label)


def source(value: Any, label: str) -> str:
    """A job's script: text that is not blank."""
    if value is None:
        raise InvalidValue(f'{label} has no script (source)')
    if not text(value, 'script', label).strip():
        raise InvalidValue(f'{label} has an empty script')
    return value


def calls(value: Any, kind: JobKind, label: str
          ) -> Optional[List[Dict[str, Any]]]:
    """The command calls of a generated job (None for other kinds)."""
    if kind is not JobKind.GENERATED:
        if value is not None:
            raise InvalidValue(f'{label}: only generated jobs have command '
                               f'calls, this one is {kind.value}')
        return None
    if not isinstance(value, (list, tuple)) or not value:
        raise InvalidValue(f'{label}: a generated job needs a non-empty list '
                           'of command calls')
    for number, call in enumerate(value, 1):
        where = f'{label}, call {number}'
        if not isinstance(call, Mapping) or set(call) - {'command', 'args'}:
            raise InvalidValue(f'{where}: a call is a dict with "command" '
                               'and "args"')
        command = call.get('command')
        if not isinstance(command, str) or not command:
            raise InvalidValue(f'{where}: "command" must be a command name')
        args = call.get('args', {})
        if not isinstance(args, Mapping) or \
                not all(isinstance(key, str) for key in args):
            raise InvalidValue(f'{where}: "args" must map argument names '
                               'to values')
    return normalized([{'command': call['command'],
                        'args': dict(call.get('args', {}))} for call in value],
                      f'{label}: the command calls')


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
