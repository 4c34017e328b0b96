"""The child of a bridged job: runs its script with the instrument as globals.

Started as ``python -u -m nicos_scriptserver.runner.bridgechild FD SCRIPT``
with FD one end of a socket pair whose other end the daemon serves
(`nicos_scriptserver.daemon.bridgerun`). The daemon's first frame names
the commands and devices; each becomes a global of the script: a command
is a function, a device an object with the usual methods and its
parameters as attributes. Every call is one request over the channel,
run by the daemon as the job's owner; its result comes back as plain data
and its error is raised here with the daemon's type name and message.

An isolated job also gets ``pause_point``, ``progress`` and ``step``. The
daemon pushes whether a pause is wanted; `pause_point` only asks the
daemon (which then pauses the job) when it is, so that it costs a few
microseconds otherwise. Pure stdlib: nothing of NICOS is imported here.
"""

import builtins
import os
import runpy
import socket
import sys
from typing import Any, Callable, Dict, List, Optional

from nicos_scriptserver.runner.bridgewire import (DEVICE_METHODS,
                                                  FrameReader, device_ref,
                                                  encode, ref_name)


class BridgeClosed(RuntimeError):
    """The daemon closed the channel (the job is being ended)."""


class BridgedError(Exception):
    """An error raised in the daemon by a call; its class is named after
    the daemon's (see `remote_error`)."""


_ERROR_CLASSES: Dict[tuple, type] = {}


def remote_error(error: Dict[str, Any]) -> BaseException:
    """The exception to raise for the daemon's *error* description: the
    built-in exception of that name, else a `BridgedError` subclass with
    the daemon's class name and module (tracebacks show both)."""
    name, module = str(error.get('type', 'Error')), str(error.get('module', ''))
    message = str(error.get('message', ''))
    found = getattr(builtins, name, None)
    if module == 'builtins' and isinstance(found, type) and \
            issubclass(found, Exception):
        return found(message)
    cls = _ERROR_CLASSES.get((module, name))
    if cls is None:
        cls = type(name, (BridgedError,), {'__module__': module or __name__})
        _ERROR_CLASSES[(module, name)] = cls
    return cls(message)


class Channel:
    """The child's end of the bridge: one call at a time, in order."""

    def __init__(self, sock: socket.socket, script_path: str):
        self.sock = sock
        self.script_path = script_path
        self.reader = FrameReader()
        self.inbox: List[Dict[str, Any]] = []
        self.pause_wanted = False
        self.devices: Dict[str, 'Device'] = {}
        self._next_id = 0

    def receive(self) -> Dict[str, Any]:
        """The next message from the daemon (blocks)."""
        while not self.inbox:
            data = self.sock.recv(65536)
            if not data:
                raise BridgeClosed('the daemon closed the bridge')
            self.inbox.extend(self.reader.feed(data))
        return self.inbox.pop(0)

    def poll(self) -> None:
        """Take in what the daemon pushed, without waiting."""
        try:
            data = self.sock.recv(65536, socket.MSG_DONTWAIT)
        except BlockingIOError:
            return
        if not data:
            raise BridgeClosed('the daemon closed the bridge')
        for message in self.reader.feed(data):
            self._dispatch(message)

    def _dispatch(self, message: Dict[str, Any]) -> bool:
        """Handle a pushed message; False if it is a reply."""
        if 'pause' in message and 'id' not in message:
            self.pause_wanted = bool(message['pause'])
            return True
        return False

    def call(self, request: Dict[str, Any]) -> Any:
        """Send *request*, wait for its reply; its result or its error."""
        self._next_id += 1
        request['id'] = self._next_id
        request['line'] = self._script_line()
        try:
            self.sock.sendall(encode(request))
        except OSError as err:   # the daemon hung up
            raise BridgeClosed(f'the daemon closed the bridge ({err})') from None
        while True:
            reply = self.receive()
            if self._dispatch(reply):
                continue
            if reply.get('id') in (self._next_id, None):
                break
        if 'error' in reply:
            raise remote_error(reply['error'])
        return self.from_wire(reply.get('result'))

    def _script_line(self) -> Optional[int]:
        frame = sys._getframe(2)
        while frame is not None:
            if frame.f_code.co_filename == self.script_path:
                return frame.f_lineno
            frame = frame.f_back
        return None

    def device(self, name: str) -> 'Device':
        if name not in self.devices:
            self.devices[name] = Device(self, name)
        return self.devices[name]

    def to_wire(self, value: Any) -> Any:
        """*value* as plain data, devices as references."""
        if isinstance(value, Device):
            return device_ref(value._name)
        if isinstance(value, (list, tuple)):
            return [self.to_wire(item) for item in value]
        if isinstance(value, dict):
            return {str(key): self.to_wire(item) for key, item in value.items()}
        return value

    def from_wire(self, value: Any) -> Any:
        name = ref_name(value)
        if name is not None:
            return self.device(name)
        if isinstance(value, list):
            return [self.from_wire(item) for item in value]
        if isinstance(value, dict):
            return {key: self.from_wire(item) for key, item in value.items()}
        return value


class Device:
    """A device of the instrument: its methods and parameters run in the
    daemon. Compares and hashes by name; ``str()`` is its name."""

    __slots__ = ('_channel', '_name')

    def __init__(self, channel: Channel, name: str):
        object.__setattr__(self, '_channel', channel)
        object.__setattr__(self, '_name', name)

    def __getattr__(self, name: str) -> Any:
        if name.startswith('_'):
            raise AttributeError(name)
        channel = object.__getattribute__(self, '_channel')
        device = object.__getattribute__(self, '_name')
        if name in DEVICE_METHODS:
            def method(*args, **kwargs):
                return channel.call({'device': device, 'method': name,
                                     'args': channel.to_wire(args),
                                     'kwargs': channel.to_wire(kwargs)})
            method.__name__ = name
            return method
        return channel.call({'device': device, 'method': 'parameter',
                             'args': [name], 'kwargs': {}})

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f'{self._name}: parameters cannot be set from a '
                             'bridged job; use the instrument\'s commands')

    def __repr__(self) -> str:
        return f'<device {self._name}>'

    def __str__(self) -> str:
        return self._name

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, Device) and other._name == self._name

    def __hash__(self) -> int:
        return hash(self._name)


def command(channel: Channel, name: str) -> Callable[..., Any]:
    """The function standing for the daemon's command *name*."""
    def call(*args, **kwargs):
        return channel.call({'call': name, 'args': channel.to_wire(args),
                             'kwargs': channel.to_wire(kwargs)})
    call.__name__ = call.__qualname__ = name
    call.__doc__ = f'{name}(...): runs in the daemon as the job\'s owner.'
    return call


def pause_point_of(channel: Channel) -> Callable[[], None]:
    """``pause_point()`` of an isolated job: asks the daemon only when the
    daemon said a pause is wanted."""
    def pause_point():
        channel.poll()
        if channel.pause_wanted:
            channel.call({'call': 'pause_point', 'args': [], 'kwargs': {}})
    return pause_point


def script_globals(channel: Channel, welcome: Dict[str, Any]) -> Dict[str, Any]:
    """The script's globals: devices, then commands (which win a clash,
    as in the daemon's namespace)."""
    names: Dict[str, Any] = {name: channel.device(name)
                             for name in welcome.get('devices', ())}
    for name in welcome.get('commands', ()):
        names[name] = command(channel, name)
    if welcome.get('isolated'):
        names['pause_point'] = pause_point_of(channel)
    return names


def main(argv: List[str]) -> None:
    fd, script_path = int(argv[1]), argv[2]
    # The script's own subprocesses get no way to the daemon.
    os.set_inheritable(fd, False)
    channel = Channel(socket.socket(fileno=fd), script_path)
    welcome = channel.receive()['welcome']
    # As for ``python SCRIPT``: the script's directory first on the path.
    sys.argv = [script_path]
    sys.path[0] = os.path.dirname(script_path)
    runpy.run_path(script_path, init_globals=script_globals(channel, welcome),
                   run_name='__main__')


if __name__ == '__main__':
    main(sys.argv)
