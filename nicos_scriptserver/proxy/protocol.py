"""The NICOS daemon protocol as the proxy speaks it to IBEX-like clients.

Sans-I/O: frames in, checked requests and reply frames out; no sockets,
no ZeroMQ, no NICOS. The client side is NICOS's ZeroMQ transport with the
JSON serializer, as the IBEX GUI uses it (ISISComputingGroup/ibex_gui,
plugin ``uk.ac.stfc.isis.ibex.nicos``):

* a request is exactly three frames ``[command, b"", json-args]``, where
  ``json-args`` is a JSON list of arguments;
* a reply is exactly three frames ``[b"ok" | b"error", b"", payload]``: JSON
  after ``ok``, plain UTF-8 text after ``error`` (as NICOS sends it);
* the banner announces ``protocol_version`` 23, ``serializer`` "json" and
  ``rsakey`` as a JSON object: the GUI (``ReceiveBannerMessage``) checks
  the version for equality with 23 (NICOS 3.12.2 says 24) and reads the
  key into a ``Map<String, String>`` (NICOS's JSON serializer sends its
  bytes key as a ``{"__pickle__": ...}`` object).

What a client sends never reaches the daemon as it came: arguments must be
plain JSON (NICOS's JsonSerializer would unpickle any object with a
``__pickle__`` key), of a documented size, for a command the client's
level allows.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, List, Sequence

from nicos_scriptserver.wire.commandtable import HANDSHAKE, VIEWER, WRITER, \
    proxy_commands

#: Largest request accepted (all three frames); a script is at most 512 KiB.
MAX_REQUEST_BYTES = 1024 * 1024
#: What the IBEX GUI accepts (it compares for equality).
PROTOCOL_VERSION = 23
# JSON nested deeper than this is refused (no argument needs more).
MAX_DEPTH = 32

#: Answered by the proxy itself, before and without a daemon link.
HANDSHAKE_COMMANDS = frozenset({'getbanner'}) | proxy_commands(HANDSHAKE)
#: Commands a logged-in viewer may send: they only read (`commandtable`).
VIEWER_COMMANDS = HANDSHAKE_COMMANDS | proxy_commands(VIEWER)
#: ... and a writer (token holder) also these. No ``exec``/``eval``:
#: arbitrary code goes through the queue, where it is checked and recorded.
WRITER_COMMANDS = HANDSHAKE_COMMANDS | proxy_commands(WRITER)
ALLOWED = {VIEWER: VIEWER_COMMANDS, WRITER: WRITER_COMMANDS}


class ProtocolError(ValueError):
    """A request that cannot be taken; the text goes back to the client."""


@dataclass(frozen=True)
class Request:
    """A checked request: a command name and plain-JSON arguments."""

    command: str
    args: List[Any]


def parse_request(frames: Sequence[bytes]) -> Request:
    """Check the frames of one request; raises `ProtocolError`."""
    if len(frames) != 3:
        raise ProtocolError(f'a request has 3 frames [command, "", arguments],'
                            f' not {len(frames)}')
    size = sum(len(frame) for frame in frames)
    if size > MAX_REQUEST_BYTES:
        raise ProtocolError(f'request of {size} bytes is larger than the limit '
                            f'of {MAX_REQUEST_BYTES} bytes')
    name, empty, payload = frames
    if empty:
        raise ProtocolError('the second frame of a request must be empty')
    try:
        command = name.decode('ascii')
    except UnicodeDecodeError:
        raise ProtocolError('the command name is not ASCII text') from None
    if not command.isidentifier():
        raise ProtocolError(f'{command[:40]!r} is not a command name')
    # No arguments (every status poll) need no JSON decoder.
    args = decode_args(payload) if payload and payload != b'[]' else []
    return Request(command, args)


def decode_args(payload: bytes) -> List[Any]:
    """The argument list of a request, plain JSON only."""
    try:
        args = _DECODER.decode(payload.decode('utf-8'))
    except (UnicodeDecodeError, ValueError) as err:
        raise ProtocolError(f'arguments are not valid JSON: {err}') from None
    except RecursionError:
        # json.loads recurses per level: ~1000 brackets (2 KB) would
        # otherwise escape the proxy's request loop.
        raise ProtocolError(f'arguments are nested deeper than {MAX_DEPTH}') \
            from None
    if not isinstance(args, list):
        raise ProtocolError('arguments must be a JSON list')
    check_plain(args)
    return args


def _no_constant(name: str):
    raise ValueError(f'{name} is not allowed')


def _finite(text: str) -> float:
    # 1e999 would come back as inf: the NaN/Infinity refusal by other means.
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f'{text[:40]} is not a finite number')
    return value


# One decoder for all requests (json.loads with options builds a new one
# each time).
_DECODER = json.JSONDecoder(parse_constant=_no_constant, parse_float=_finite)


def check_plain(value: Any, depth: int = 0) -> None:
    """Refuse what NICOS's JSON serializer would turn into objects."""
    if depth > MAX_DEPTH:
        raise ProtocolError(f'arguments are nested deeper than {MAX_DEPTH}')
    if isinstance(value, dict):
        for key, item in value.items():
            if key == '__pickle__':
                raise ProtocolError('"__pickle__" objects are not accepted')
            check_plain(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            check_plain(item, depth + 1)


def check_allowed(command: str, role: str) -> None:
    """Refuse *command* for a client of *role* (viewer or writer)."""
    if command not in ALLOWED[role]:
        if command in WRITER_COMMANDS:
            raise ProtocolError(f'{command}: read-only logins can only watch')
        raise ProtocolError(f'{command} is not a command this proxy passes on')


def banner(rsakey_base64: str, daemon_banner: dict) -> dict:
    """The banner an IBEX-like client gets (see the module docstring)."""
    return {
        'daemon_version': str(daemon_banner.get('daemon_version', '')),
        'custom_version': str(daemon_banner.get('custom_version', '')),
        'nicos_root': '',
        'custom_path': '',
        'pw_hashing': 'rsa,plain',
        'rsakey': {'pkcs1_base64': rsakey_base64},
        'protocol_version': PROTOCOL_VERSION,
        'serializer': 'json',
    }


def to_json(value: Any) -> Any:
    """A daemon reply as plain JSON data, as NICOS's JsonSerializer would
    send it but without pickles: tuples and sets become lists, bytes text;
    anything else is refused."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_json(item) for item in value]
    if isinstance(value, dict):
        return {str(key): to_json(item) for key, item in value.items()}
    if isinstance(value, bytes):
        return value.decode('utf-8', 'replace')
    raise ProtocolError(f'the daemon replied with a {type(value).__name__}, '
                        'which cannot be sent as JSON')


def _plain(value: Any) -> Any:
    if isinstance(value, (set, frozenset)):
        return list(value)
    if isinstance(value, bytes):
        return value.decode('utf-8', 'replace')
    raise TypeError(type(value).__name__)


def encode_json(value: Any) -> bytes:
    """*value* as JSON text (`to_json`'s rules). Replies are encoded by the
    C encoder directly; only those it refuses (non-finite floats, odd dict
    keys) take the slow way through `to_json`."""
    try:
        text = json.dumps(value, default=_plain, allow_nan=False,
                          separators=(',', ':'))
    except (TypeError, ValueError):
        text = json.dumps(to_json(value), allow_nan=False, separators=(',', ':'))
    return text.encode('utf-8')


def ok_reply(payload: Any) -> List[bytes]:
    """The frames of a successful reply."""
    return [b'ok', b'', encode_json(payload)]


def error_reply(text: str) -> List[bytes]:
    """The frames of an error reply (plain text, as NICOS sends it)."""
    return [b'error', b'', text.encode('utf-8', 'replace')]
