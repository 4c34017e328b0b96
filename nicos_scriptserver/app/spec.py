"""Job specs, edits and job ids as clients send them, checked once.

Every way into the queue (the ``ss_*`` commands, the stock ``queue`` and
``start``, the console's commands) hands its client's data to these
functions, which turn it into the typed values the queue takes
(`JobSpec`; edits as checked keyword values) or refuse it with what was
wrong: fields and their types, a script that is empty, too large or does
not compile (with its line and column), command calls of the wrong shape
or that do not fit the command catalog (`ValidationError`). The script of
a generated job is rendered from its calls. Values come out as they read
back from JSON (tuples become lists), so a job reads back from disk
exactly as it was submitted.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence

from nicos_scriptserver.catalog import (ScriptSyntaxError, check_syntax,
                                        render_script, validate_calls)
from nicos_scriptserver.catalog.readback import NotCalls, read_calls
from nicos_scriptserver.catalog.validate import CommandLookup
from nicos_scriptserver.queue import InvalidValue, JobKind, JobSpec
from nicos_scriptserver.queue.naming import job_name
from nicos_scriptserver.queue.validate import normalized, text

#: Fields a job spec may have.
SPEC_FIELDS = ('kind', 'name', 'source', 'calls', 'held', 'hold_reason',
               'isolated')
#: Fields an edit may change.
EDIT_FIELDS = ('name', 'source', 'calls')
#: A job's script is at most this large (documented in docs/PROTOCOL.md).
MAX_SOURCE_BYTES = 512 * 1024
# Job ids are SQLite INTEGERs (signed 64-bit): a larger one cannot even be
# looked up (sqlite3 raises OverflowError), so it is refused here.
_JOB_IDS = range(-2**63, 2**63)


def parse_specs(data: Any, catalog: Optional[CommandLookup] = None,
                default_kind: Optional[JobKind] = None,
                isolated: bool = False) -> List[JobSpec]:
    """One job spec (a dict) or a batch (a list of them), checked.

    *default_kind* is the kind of a spec that names none (None: it must
    name one). Generated calls are checked against *catalog*, if given.
    *isolated* is whether an aware job that does not say runs isolated.
    """
    batch = data if isinstance(data, (list, tuple)) else [data]
    if not batch:
        raise InvalidValue('nothing to submit: the batch is empty')
    labels = ([f'job {number} of the batch'
               for number in range(1, len(batch) + 1)] if len(batch) > 1
              else ['the job'])
    return [parse_spec(spec, catalog, label, default_kind, isolated)
            for spec, label in zip(batch, labels)]


def parse_spec(data: Any, catalog: Optional[CommandLookup] = None,
               label: str = 'the job',
               default_kind: Optional[JobKind] = None,
               isolated: bool = False) -> JobSpec:
    """One job spec, checked; *label* names it in a refusal, *isolated*
    is the default of an aware job."""
    data = _fields(data, SPEC_FIELDS, f'{label} must be a dict, not {{type}}',
                   f'{label} has unknown fields {{fields}}; known are '
                   f'{", ".join(SPEC_FIELDS)}')
    if 'kind' in data:
        kind = _kind(data['kind'], label)
    elif default_kind is not None:
        kind = default_kind
    else:
        raise InvalidValue(f'{label} has no kind; give one of '
                           f'{", ".join(k.value for k in JobKind)}')
    held = data.get('held', False)
    if not isinstance(held, bool):
        raise InvalidValue(f'{label}: held must be true or false')
    name = text(data.get('name', ''), 'name', label)
    isolated = _isolated(data.get('isolated'), kind, isolated, label)
    calls = data.get('calls')
    if kind is JobKind.GENERATED:
        calls = _calls(calls, catalog, label)
        source = _rendered(calls, label)
    elif calls is not None:
        raise InvalidValue(f'{label}: only generated jobs have command '
                           f'calls, this one is {kind.value}')
    else:
        source = _source(data.get('source'), label)
    # Unnamed, a job is named after what it runs, for every client.
    return JobSpec(kind=kind, name=name or job_name(source, calls),
                   source=_compiling(source, _script_of(label)), calls=calls,
                   held=held, hold_reason=text(data.get('hold_reason', ''),
                                               'hold reason', label),
                   isolated=isolated)


def parse_edits(data: Any, catalog: Optional[CommandLookup] = None,
                label: str = 'the job', when: str = 'in an edit'
                ) -> Dict[str, Any]:
    """The changes of an edit of *label* (of its name, script or calls),
    checked: the keyword values the queue's ``edit`` and ``requeue`` take.
    New calls come with their script; *when* says in a refusal of other
    fields when they were to change."""
    data = _fields(data, EDIT_FIELDS,
                   f'the changes to {label} must be a dict, not {{type}}',
                   f'cannot change {{fields}} {when}; only name, source and '
                   'calls')
    edits = {}
    if data.get('name') is not None:
        edits['name'] = text(data['name'], 'name', label)
    if data.get('calls') is not None:
        edits['calls'] = _calls(data['calls'], catalog, label)
        edits['source'] = _rendered(edits['calls'], label)
    elif data.get('source') is not None:
        edits['source'] = _source(data['source'], label)
    if 'source' in edits:
        edits['source'] = _compiling(edits['source'], 'script')
    return edits


def read_back(edits: Dict[str, Any], catalog: Optional[CommandLookup],
              label: str = 'the job') -> Dict[str, Any]:
    """The checked *edits* (`parse_edits`) of a generated job, made true
    to it: a new script alone is read back into command calls (checked
    against *catalog*, refused as calls are), or, if it is no longer only
    calls of catalog commands with literal arguments, the job becomes an
    aware one (``kind``, and ``why`` in words)."""
    if 'source' not in edits or 'calls' in edits:
        return edits
    try:
        if catalog is None:
            raise NotCalls('the command catalog is not loaded')
        calls = read_calls(edits['source'], catalog)
    except NotCalls as err:
        return dict(edits, kind=JobKind.AWARE,
                    why=f'its script is no longer only command calls ({err})')
    return dict(edits, **parse_edits({'calls': calls}, catalog, label))


def parse_job_id(value: Any) -> int:
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


def parse_version(value: Any) -> Optional[int]:
    """The version of a job a client saw (a whole number), or None when it
    gives none (stock clients)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidValue(f'{value!r} is not a job version: give the '
                           '"version" of the job as you saw it, or null')
    return value


def _fields(data: Any, known: Sequence[str], not_dict: str, unknown: str
            ) -> Mapping[str, Any]:
    """*data*, a dict of *known* fields; *not_dict* ({type}) and *unknown*
    ({fields}) word the refusals."""
    if not isinstance(data, Mapping):
        raise InvalidValue(not_dict.format(type=type(data).__name__))
    extra = sorted(str(key) for key in data if key not in known)
    if extra:
        raise InvalidValue(unknown.format(fields=', '.join(extra)))
    return data


def _kind(value: Any, label: str) -> JobKind:
    try:
        return JobKind(value)
    except ValueError:
        raise InvalidValue(f'{label}: unknown kind {value!r}; give one of '
                           f'{", ".join(k.value for k in JobKind)}') from None


def _isolated(value: Any, kind: JobKind, default: bool, label: str) -> bool:
    """Whether the job runs isolated: only aware jobs may (black-box jobs
    always run in their own process, generated ones in the daemon)."""
    if value is None:
        return default and kind is JobKind.AWARE
    if not isinstance(value, bool):
        raise InvalidValue(f'{label}: isolated must be true or false')
    if value and kind is not JobKind.AWARE:
        raise InvalidValue(f'{label}: only aware jobs can run isolated, '
                           f'this one is {kind.value}')
    return value


def _source(value: Any, label: str) -> str:
    """A script given as text: not blank."""
    if value is None:
        raise InvalidValue(f'{label} has no script (source)')
    if not text(value, 'script', label).strip():
        raise InvalidValue(f'{label} has an empty script')
    return value


def _script_of(label: str) -> str:
    # A single job's script is "script", as clients have always read it.
    return 'script' if label == 'the job' else f'the script of {label}'


def _compiling(source: str, what: str) -> str:
    """*source* if it is within the size limit and compiles."""
    if len(source.encode('utf-8', 'surrogatepass')) > MAX_SOURCE_BYTES:
        raise InvalidValue(f'{what} is larger than the limit of '
                           f'{MAX_SOURCE_BYTES // 1024} KiB')
    try:
        check_syntax(source)
    except ScriptSyntaxError as err:
        raise InvalidValue(f'{what} has a {err}') from None
    return source


def _calls(value: Any, catalog: Optional[CommandLookup], label: str
           ) -> List[Dict[str, Any]]:
    """The command calls of a generated job, in the shape the queue keeps
    and fitting *catalog* (if given)."""
    if not isinstance(value, (list, tuple)) or not value:
        raise InvalidValue(f'{label}: a generated job needs a non-empty list '
                           'of command calls')
    for number, call in enumerate(value, 1):
        where = f'{label}, call {number}'
        if not isinstance(call, Mapping) or \
                set(call) - {'command', 'args', 'posargs'}:
            raise InvalidValue(f'{where}: a call is a dict with "command", '
                               '"args" and, for positional-only arguments '
                               'and *args, "posargs"')
        command = call.get('command')
        if not isinstance(command, str) or not command:
            raise InvalidValue(f'{where}: "command" must be a command name')
        args = call.get('args', {})
        if not isinstance(args, Mapping) or \
                not all(isinstance(key, str) for key in args):
            raise InvalidValue(f'{where}: "args" must map argument names '
                               'to values')
        if not isinstance(call.get('posargs', []), (list, tuple)):
            raise InvalidValue(f'{where}: "posargs" must be a list of values')
    calls = normalized([_call_shape(call) for call in value],
                       f'{label}: the command calls')
    if catalog is not None:
        validate_calls(catalog, calls)
    return calls


def _rendered(calls: List[Dict[str, Any]], label: str) -> str:
    """The script of *calls*; a name or value no script can hold (only
    possible without a catalog, which knows no such command) is refused
    as a bad value."""
    try:
        return render_script(calls)
    except ValueError as err:
        raise InvalidValue(f'{label}: {err}') from None


def _call_shape(call: Mapping[str, Any]) -> Dict[str, Any]:
    """A call as the queue keeps it: "posargs" only when there are some,
    so calls without them read back exactly as they always did."""
    shaped = {'command': call['command'], 'args': dict(call.get('args', {}))}
    if call.get('posargs'):
        shaped['posargs'] = list(call['posargs'])
    return shaped
