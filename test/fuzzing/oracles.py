"""Oracles of the fuzz tests: an accepted refusal versus a finding.

Every function takes one input as an outsider could give it and returns
quietly if the code under test either accepted it (and the result keeps
its invariants) or refused it with the documented error type. Anything
else escapes: an unexpected exception as itself, a broken invariant as
``AssertionError``. Pure: no NICOS, libzmq or EPICS import, so the
hypothesis properties (test/unit/test_fuzz_inputs.py) and the atheris
targets (`fuzzing.atheris_targets`) share them.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import json
from typing import Any, List, Optional, Sequence

from nicos_scriptserver.catalog import Catalog, ValidationError
from nicos_scriptserver.catalog.parse import ParsedFile, parse_file, parse_source
from nicos_scriptserver.app.spec import (parse_edits, parse_job_id,
                                         parse_spec)
from nicos_scriptserver.instance.config import REPO
from nicos_scriptserver.proxy.protocol import (ProtocolError, Request,
                                               check_allowed, encode_json,
                                               parse_request)
from nicos_scriptserver.proxy.zmtp import (FRAME_COST, GREETING_SIZE,
                                           MAX_COMMAND_BYTES, ServerConnection,
                                           State, ZmtpError)
from nicos_scriptserver.queue import JobKind, QueueError
from nicos_scriptserver.queue.validate import normalized

#: What a job check may refuse with (`InvalidValue` is a `QueueError`).
JOB_REFUSALS = (QueueError, ValidationError)


@functools.lru_cache(maxsize=None)
def repo_catalog() -> Catalog:
    """The catalog of the repo's commands/ (scanned once per process)."""
    catalog = Catalog([REPO / 'commands'])
    catalog.scan()
    return catalog


# -- proxy ----------------------------------------------------------------

def check_request(frames: Sequence[bytes]) -> Optional[Request]:
    """Frames of a client request: parsed, or refused with `ProtocolError`.

    An accepted request names an identifier and carries plain JSON (no
    NaN/Infinity, no ``__pickle__`` objects) that the proxy's encoder
    writes back to the same value. Returns the request, None if refused.
    """
    try:
        request = parse_request(frames)
    except ProtocolError:
        return None
    assert request.command.isidentifier(), request.command
    json.dumps(request.args, allow_nan=False)
    assert json.loads(encode_json(request.args)) == request.args
    for role in ('viewer', 'writer'):
        try:
            check_allowed(request.command, role)
        except ProtocolError:
            pass
    return request


def check_zmtp_stream(chunks: Sequence[bytes], limit: int) -> List[List[bytes]]:
    """Bytes a client sends the proxy's ZMTP server, in the pieces that
    reads return: its messages, or a refusal with `ZmtpError`, after which
    nothing is held. Whatever comes, a message is within *limit*, and the
    server holds no more than one message (or command) and a frame header."""
    conn = ServerConnection(limit)
    bound = max(limit, MAX_COMMAND_BYTES, GREETING_SIZE) + 9
    messages = []
    try:
        for chunk in chunks:
            conn.receive(chunk)
            while (message := conn.next_message()) is not None:
                assert sum(len(f) + FRAME_COST for f in message) <= limit
                messages.append(message)
            assert conn.buffered <= bound, conn.buffered
    except ZmtpError:
        assert conn.state is State.CLOSED and conn.buffered == 0
    return messages


# -- command files ----------------------------------------------------------

def check_parsed_file(parsed: ParsedFile, file: str) -> None:
    """A parsed command file: an error entry and no commands, or commands
    that are plain JSON with identifier names."""
    if parsed.error is not None:
        assert parsed.error['file'] == file and parsed.error['message'], \
            parsed.error
        assert not parsed.commands
    for entry in parsed.commands:
        json.dumps(entry, allow_nan=False)
        assert entry['name'].isidentifier(), entry['name']


def check_command_source(source: str, file: str = 'fuzz.py') -> ParsedFile:
    """Command-file text through `parse_source` (which never raises)."""
    parsed = parse_source(source, f'/commands/{file}', file)
    check_parsed_file(parsed, file)
    return parsed


def check_command_file(path: str, file: str) -> ParsedFile:
    """A command file's bytes on disk through `parse_file` (decoding
    included; never raises)."""
    parsed = parse_file(path, file)
    check_parsed_file(parsed, file)
    return parsed


# -- jobs -------------------------------------------------------------------

def _check_rendered(source: str, calls: Any) -> None:
    """The script rendered from *calls* evaluates back to their values
    (`render_script`'s promise): one ``command(...)`` line per call."""
    statements = ast.parse(source).body
    assert len(statements) == len(calls), (source, calls)
    for statement, call in zip(statements, calls):
        node = statement.value
        assert isinstance(node, ast.Call) and node.func.id == call['command']
        assert [ast.literal_eval(a) for a in node.args] == \
            list(call.get('posargs', []))
        assert {k.arg: ast.literal_eval(k.value) for k in node.keywords} == \
            dict(call.get('args', {}))


def check_job_spec(spec: Any, catalog: Optional[Catalog] = None) -> None:
    """A submitted job spec (kind aware if it names none, as the daemon
    takes it): checked (its script compiles, and rendered calls read back
    as kept) or refused with a `JOB_REFUSALS` type."""
    try:
        parsed = parse_spec(spec, catalog, default_kind=JobKind.AWARE)
    except JOB_REFUSALS:
        return
    compile(parsed.source, '<job>', 'exec')
    if parsed.calls is not None:
        _check_rendered(parsed.source, parsed.calls)


def check_job_edits(edits: Any, catalog: Optional[Catalog] = None) -> None:
    """Edits of a waiting job: checked like a submission, or refused."""
    try:
        parsed = parse_edits(edits, catalog)
    except JOB_REFUSALS:
        return
    if 'source' in parsed:
        compile(parsed['source'], '<job>', 'exec')


def check_queue_fields(spec: Any) -> None:
    """A spec as the queue keeps it (naming its kind, no catalog): its
    fields JSON-normalized (they read back from disk as submitted), or
    `InvalidValue`."""
    try:
        parsed = parse_spec(spec, label='job')
    except QueueError:
        return
    plain = dict(dataclasses.asdict(parsed), kind=parsed.kind.value)
    assert normalized(plain, 'job') == plain, plain


def check_job_id(value: Any) -> None:
    """A job id as a client gives it: an int (not a bool), or refused."""
    try:
        job_id = parse_job_id(value)
    except QueueError:
        return
    assert type(job_id) is int and not isinstance(value, bool), value


# -- daemon commands ---------------------------------------------------------

def check_command_reply(command: str, kind: str, payload: Any) -> None:
    """One reply of a new daemon command: ``ok`` with plain-JSON data, or
    ``error`` with a text naming the command (as a client shows it)."""
    if kind == 'error':
        assert isinstance(payload, str) and payload.startswith(f'{command}: '), \
            (command, payload)
    else:
        assert kind == 'ok', kind
        json.dumps(payload, allow_nan=False)

