"""What a bridged job's child may ask the daemon to run, and running it.

A request names a command or a device method (`runner.bridgewire` has
the frames). Only names on the allowlists run: the catalog's commands,
the NICOS commands of `STANDARD_COMMANDS`, and for isolated jobs
`JOB_COMMANDS`; on a device only `DEVICE_METHODS` and its declared,
public parameters. Arguments are plain data with devices referenced by
name; results go back as plain data. Calls run in NICOS's script thread
for the job's request, so NICOS checks every device access and level
against the job's user (who last changed it), never the daemon's.
"""

import numbers
from typing import Any, Callable, Dict, List, Optional

from nicos import session
import nicos.commands.standard as standard
from nicos.core import Device

from nicos_scriptserver.daemon import jobapi
from nicos_scriptserver.daemon.catalogdev import find_command_catalog
from nicos_scriptserver.runner.bridgewire import (DEVICE_METHODS,
                                                  device_ref, ref_name)

#: NICOS's commands that users write in scripts, all from
#: nicos.commands.standard (what a console offers, less what changes the
#: session: setups, modes, experiments, scripts and eval-like helpers).
STANDARD_COMMANDS = frozenset({
    'move', 'maw', 'wait', 'read', 'status', 'stop', 'reset', 'count',
    'sleep', 'printinfo', 'printwarning', 'printerror', 'scan', 'cscan',
    'timescan', 'limits', 'info', 'fix', 'release', 'adjust',
})
#: The job API, for isolated (aware) jobs only: black-box jobs cannot
#: pause or report progress.
JOB_COMMANDS = ('pause_point', 'progress', 'step')
PARAMETER = 'parameter'


class RefusedCall(Exception):
    """A request the bridge does not run (unknown name, bad arguments)."""


def describe(err: BaseException) -> Dict[str, str]:
    """An exception as the child re-raises it."""
    return {'type': type(err).__name__, 'module': type(err).__module__,
            'message': str(err)}


def to_plain(value: Any) -> Any:
    """A result as JSON-ready data: devices become references, numbers of
    other types (numpy) plain numbers, anything else its text."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, Device):
        return device_ref(value.name)
    if isinstance(value, (list, tuple)):
        return [to_plain(item) for item in value]
    if isinstance(value, dict):
        return {str(key): to_plain(item) for key, item in value.items()}
    if hasattr(value, 'tolist'):   # numpy arrays
        return to_plain(value.tolist())
    return str(value)


def _device(name: Any) -> Device:
    device = session.devices.get(name) if isinstance(name, str) else None
    if device is None:
        raise RefusedCall(f'no device {name!r} in the instrument')
    return device


def _resolve(value: Any) -> Any:
    """An argument from the child: device references become devices."""
    name = ref_name(value)
    if name is not None:
        return _device(name)
    if isinstance(value, list):
        return [_resolve(item) for item in value]
    if isinstance(value, dict):
        return {key: _resolve(item) for key, item in value.items()}
    return value


class BridgeCalls:
    """The calls one bridged job may make; *isolated* adds `JOB_COMMANDS`,
    *pause_point* is what the job's ``pause_point()`` runs."""

    def __init__(self, isolated: bool, pause_point: Callable[[], None]):
        self.isolated = isolated
        self._job = {'pause_point': pause_point, 'progress': jobapi.progress,
                     'step': jobapi.step} if isolated else {}

    def catalog_commands(self) -> List[str]:
        device = find_command_catalog()
        return [entry['name'] for entry in device.catalog.commands] \
            if device else []

    def welcome(self) -> Dict[str, Any]:
        """What the child's script finds as globals."""
        commands = set(STANDARD_COMMANDS) | set(self.catalog_commands()) \
            | set(self._job)
        return {'commands': sorted(commands),
                'devices': sorted(name for name in session.devices
                                  if not name.startswith('_')),
                'isolated': self.isolated}

    def _command(self, name: Any) -> Callable[..., Any]:
        if name in self._job:
            return self._job[name]
        if name in JOB_COMMANDS:
            raise RefusedCall(f'{name}() is for isolated aware jobs; a '
                              'black-box job cannot pause or report progress')
        if name in STANDARD_COMMANDS:
            return getattr(standard, name)
        catalog = find_command_catalog()
        function = catalog.command(name) \
            if catalog and isinstance(name, str) else None
        if function is not None:
            return function
        raise RefusedCall(f'{name!r} is not a command a job may call')

    def _method(self, device: Device, name: Any,
                args: List[Any]) -> Callable[..., Any]:
        if name in DEVICE_METHODS:
            return getattr(device, name)
        if name == PARAMETER:
            param = args[0] if len(args) == 1 else None
            if not isinstance(param, str) or param.startswith('_') or \
                    param not in device.parameters:
                raise RefusedCall(f'{device.name} has no parameter {param!r}')
            return lambda _name: getattr(device, param)
        raise RefusedCall(f'{name!r} is not a device method a job may call')

    def target(self, request: Dict[str, Any]) -> Callable[[], Any]:
        """What *request* asks to run, checked (raises RefusedCall)."""
        args, kwargs = request.get('args', []), request.get('kwargs', {})
        if not isinstance(args, list) or not isinstance(kwargs, dict):
            raise RefusedCall('args must be a list and kwargs an object')
        args, kwargs = _resolve(args), _resolve(kwargs)
        if 'device' in request:
            function = self._method(_device(request['device']),
                                    request.get('method'), args)
        elif 'call' in request:
            function = self._command(request['call'])
        else:
            raise RefusedCall('a request names a "call" or a "device"')
        return lambda: function(*args, **kwargs)

    def run(self, request: Dict[str, Any]) -> Optional[Any]:
        """Run *request* in this thread; its result as plain data."""
        return to_plain(self.target(request)())
