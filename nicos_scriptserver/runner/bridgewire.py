"""The frames of the bridge between a bridged job's child and the daemon.

A frame is a 4-byte big-endian length and that many bytes of UTF-8 JSON
holding one object. Nothing else crosses the channel: a frame that is too
long, not JSON, or not an object is a `WireError`, never evaluated.

The messages (docs/PROTOCOL.md, "The bridge"):

* daemon to child, first: ``{"welcome": {"commands": [...], "devices":
  [...], "isolated": bool}}``;
* child to daemon: ``{"id": n, "call": name, "args": [...], "kwargs": {...},
  "line": n}``, or with ``"device": name, "method": name`` instead of
  ``"call"`` for a device method;
* daemon to child: ``{"id": n, "result": value}`` or ``{"id": n, "error":
  {"type", "module", "message"}}``, and, at any time, ``{"pause": bool}``.

Devices travel as ``{"$device": name}`` (`device_ref`). Pure stdlib: the
child imports this module and nothing of NICOS.
"""

import json
import struct
from typing import Any, Dict, List, Optional

#: Longest frame accepted, in bytes of JSON: far above any sane call, and
#: small enough that a hostile child cannot make the daemon hold much.
MAX_FRAME = 1 << 20
#: What a device offers a bridged job, besides reading its parameters.
DEVICE_METHODS = ('read', 'status', 'start', 'move', 'maw', 'wait', 'stop',
                  'reset', 'isAllowed', 'format')
#: The key of a device reference.
DEVICE_KEY = '$device'

_HEADER = struct.Struct('>I')


class WireError(ValueError):
    """A frame that breaks the rules: too long, not JSON, not an object."""


def encode(message: Dict[str, Any]) -> bytes:
    """*message* as one frame (raises WireError if it is too long)."""
    data = json.dumps(message, separators=(',', ':'),
                      allow_nan=True).encode('utf-8')
    if len(data) > MAX_FRAME:
        raise WireError(f'frame of {len(data)} bytes is longer than '
                        f'{MAX_FRAME}')
    return _HEADER.pack(len(data)) + data


def decode(data: bytes) -> Dict[str, Any]:
    """The message in the body *data* of one frame."""
    try:
        message = json.loads(data.decode('utf-8'))
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        raise WireError(f'not a JSON frame: {err}') from None
    if not isinstance(message, dict):
        raise WireError(f'a frame must hold a JSON object, not '
                        f'{type(message).__name__}')
    return message


class FrameReader:
    """Turns the bytes of a stream into messages.

    After a `WireError` the stream is out of step for good: the reader
    stays broken and the caller must close the channel.
    """

    def __init__(self, limit: int = MAX_FRAME):
        self.limit = limit
        self._buffer = bytearray()
        self._broken: Optional[WireError] = None

    def feed(self, data: bytes) -> List[Dict[str, Any]]:
        """The messages completed by *data* (raises WireError)."""
        if self._broken:
            raise self._broken
        self._buffer += data
        messages = []
        while len(self._buffer) >= _HEADER.size:
            size, = _HEADER.unpack_from(self._buffer)
            if size > self.limit:
                self._broken = WireError(
                    f'frame of {size} bytes is longer than {self.limit}')
                self._buffer.clear()
                raise self._broken
            end = _HEADER.size + size
            if len(self._buffer) < end:
                break
            body = bytes(self._buffer[_HEADER.size:end])
            del self._buffer[:end]
            try:
                messages.append(decode(body))
            except WireError as err:
                self._broken = err
                self._buffer.clear()
                raise
        return messages


def device_ref(name: str) -> Dict[str, str]:
    """How a device is named in a frame."""
    return {DEVICE_KEY: name}


def ref_name(value: Any) -> Optional[str]:
    """The device name if *value* is a device reference, else None."""
    if isinstance(value, dict) and len(value) == 1 and \
            isinstance(value.get(DEVICE_KEY), str):
        return value[DEVICE_KEY]
    return None
