"""NICOS device that makes the instrument's command files callable."""

import importlib
import sys
import types
from pathlib import Path

from nicos import session
from nicos.commands import usercommandWrapper
from nicos.core import Device, Param, listof

# Command files are importable as modules of this package, so one command
# file can use another's commands (``from scriptserver_commands.sample
# import set_temperature``).
PACKAGE = 'scriptserver_commands'


class CommandCatalog(Device):
    """The instrument's commands, loaded from the configured command folders.

    Every public top-level function of a ``*.py`` file in a folder (files
    starting with ``_`` are skipped) becomes a user command of the session
    under its own name, callable from the console, scripts and jobs.
    """

    parameters = {
        'folders': Param('Folders with command files', type=listof(str),
                         mandatory=True),
    }

    def doInit(self, mode):
        package = types.ModuleType(PACKAGE)
        package.__path__ = list(self.folders)
        sys.modules[PACKAGE] = package
        for folder in self.folders:
            for path in sorted(Path(folder).glob('*.py')):
                if not path.name.startswith('_'):
                    self._export(importlib.import_module(f'{PACKAGE}.{path.stem}'))

    def _export(self, module: types.ModuleType) -> None:
        for name, obj in vars(module).items():
            if (callable(obj) and not name.startswith(('_', 'estimate_'))
                    and getattr(obj, '__module__', None) == module.__name__):
                obj.is_usercommand = True
                session.export(name, usercommandWrapper(obj))
