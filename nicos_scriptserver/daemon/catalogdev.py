"""NICOS device serving the instrument's commands, reloaded when files change."""

import functools
import importlib.util
import shutil
import sys
import threading
import traceback
import types
from pathlib import Path
from typing import Callable, Dict, List, Optional, Set, Tuple

from nicos import session
from nicos.commands import usercommandWrapper
from nicos.core import SIMULATION, Device, Param, floatrange, listof

from nicos_scriptserver.catalog import Catalog, CatalogChanges
from nicos_scriptserver.catalog.parse import ESTIMATE_PREFIX
from nicos_scriptserver.daemon.jobapi import in_progress_scope
from nicos_scriptserver.runner.scratch import scratch_dir

# Command files are importable as modules of this package, so one command
# file can use another's commands (``from scriptserver_commands.sample
# import set_temperature``).
PACKAGE = 'scriptserver_commands'


def _module_name(path: str) -> str:
    return f'{PACKAGE}.{Path(path).stem}'


def find_command_catalog() -> Optional['CommandCatalog']:
    """The session's command catalog device, if its setup is loaded."""
    for device in list(session.devices.values()):
        if isinstance(device, CommandCatalog):
            return device
    return None


class SessionCommands:
    """The session's command catalog as the application asks for it (its
    `app.ports.Commands`): the device, if its setup is loaded."""

    def lookup(self) -> Optional[Catalog]:
        """The catalog now; None if it is not loaded."""
        device = find_command_catalog()
        return device.catalog if device else None

    def between_jobs(self) -> None:
        """No job runs: let changed command files take effect."""
        device = find_command_catalog()
        if device is not None:
            device.apply_changes()


class CommandCatalog(Device):
    """The instrument's commands, discovered from files in command folders.

    Every public function of a ``*.py`` file in the folders is a command
    (see docs/COMMANDS.md): it is callable in the session under its name
    and described in the catalog that clients read (``ss_catalog``).
    Changed, added and removed files are noticed within `pollinterval`;
    clients get the new catalog at once, and the session switches to the
    new code only between jobs, so a running job keeps the version it
    started with. A file that does not parse or import is reported in the
    catalog and its previous commands stay available.
    """

    parameters = {
        'folders': Param('Folders with command files, searched in order',
                         type=listof(str), mandatory=True),
        'pollinterval': Param('How often the folders are checked for changes',
                              type=floatrange(0.05, 60), default=0.25, unit='s'),
    }

    def doInit(self, mode):
        self._catalog = Catalog(self.folders)
        self._exported: Dict[str, Set[str]] = {}
        # What was exported under each name: the session's namespace is
        # writable by any aware job, this is not.
        self._functions: Dict[str, Callable] = {}
        self._pending = self._catalog.scan()
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._loaded: Dict[str, str] = {}   # path -> text of the version run
        self._snapshot_lock = threading.Lock()
        self._snapshots: List[Tuple[int, List[str]]] = []
        self._snapshot_root = None
        if mode != SIMULATION:
            self._snapshot_root = scratch_dir('dry-run-commands-')
        package = types.ModuleType(PACKAGE)
        package.__path__ = list(self._catalog.folders)
        sys.modules[PACKAGE] = package
        self.apply_changes()
        if mode != SIMULATION and getattr(session, 'daemon_device', None):
            self._watcher = threading.Thread(target=self._watch, daemon=True,
                                             name='command catalog watcher')
            self._watcher.start()

    def doShutdown(self):
        self._stopped.set()
        if self._snapshot_root:
            shutil.rmtree(self._snapshot_root, ignore_errors=True)

    @property
    def catalog(self) -> Catalog:
        """The catalog: entries, errors and a generation counter."""
        return self._catalog

    def _emit(self, changes: CatalogChanges) -> None:
        daemon = getattr(session, 'daemon_device', None)
        if changes and daemon is not None:
            daemon.emit_event('ss_catalog', changes.to_dict())

    def _refresh(self) -> CatalogChanges:
        """Look for changed files; announce changes, queue files to load."""
        changes = self._catalog.refresh()
        self._emit(changes)
        if changes.changed_files or changes.removed_files:
            with self._lock:
                self._pending = _merged(self._pending, changes)
        return changes

    def _watch(self) -> None:
        while not self._stopped.wait(self.pollinterval):
            try:
                changes = self._refresh()
                if changes or changes.changed_files or changes.removed_files:
                    session.daemon_device.commands_changed(changes)
            except Exception:
                self.log.exception('checking the command folders failed')

    def apply_changes(self) -> None:
        """Import changed command files and update the session's commands.

        Called when no job runs (setup loading, between jobs), so a job
        always runs with the commands it started with.
        """
        while True:   # loading may notice further changes (see _load)
            with self._lock:
                pending, self._pending = self._pending, None
            if pending is None:
                return
            for path in pending.removed_files:
                self._loaded.pop(path, None)
                self._unexport(path)
                sys.modules.pop(_module_name(path), None)
            for path in pending.changed_files:
                self._load(path)

    def dry_run_folders(self) -> List[str]:
        """Folders holding the command files as a job starting now runs them.

        A dry run runs in another process, which reads command files from
        folders. A file with an error is given in the version this session
        runs (its last good one); the others as they are on disk (the
        session imports them before the next job). Made once per catalog
        generation.
        """
        with self._snapshot_lock:
            generation = self._catalog.generation
            if self._snapshots and self._snapshots[-1][0] == generation:
                return self._snapshots[-1][1]
            root = Path(self._snapshot_root) / f'generation-{generation}'
            folders = [root / str(index)
                       for index in range(len(self._catalog.folders))]
            for folder in folders:
                folder.mkdir(parents=True, exist_ok=True)
            for index, path, broken in self._catalog.files():
                text = self._loaded.get(path) if broken else _read(path)
                if text is not None:
                    (folders[index] / Path(path).name).write_text(text)
            self._snapshots.append((generation, [str(f) for f in folders]))
            # A dry run that started from the one before may still import.
            while len(self._snapshots) > 2:
                shutil.rmtree(Path(self._snapshot_root) /
                              f'generation-{self._snapshots.pop(0)[0]}',
                              ignore_errors=True)
            return self._snapshots[-1][1]

    def _load(self, path: str) -> None:
        name = _module_name(path)
        try:
            text = _read(path)
            spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(spec)
            previous = sys.modules.get(name)
            sys.modules[name] = module
            try:
                if text is None:
                    raise OSError(f'{path} cannot be read')
                # From the text kept for dry runs, not the file again: both
                # must run the same version. The catalog compiled it when
                # parsing, unless the file changed since.
                code = self._catalog.take_code(path, text)
                exec(code or compile(text, path, 'exec'), module.__dict__)
            except BaseException:
                if previous is not None:
                    sys.modules[name] = previous
                else:
                    del sys.modules[name]
                raise
        except Exception as err:
            self.log.warning('command file %s does not import, keeping its '
                             'previous commands: %s', path, err)
            # The file may have changed since it was parsed (an editor
            # still writing it): a fresh look reports a syntax error as such.
            self._refresh()
            self._emit(self._catalog.mark_import_error(
                path, _error_line(err, path), f'{type(err).__name__}: {err}'))
            return
        self._emit(self._catalog.clear_import_error(path))
        self._loaded[path] = text
        self._unexport(path)
        names = set()
        for entry in self._catalog.commands_in(path):
            if callable(getattr(module, entry['name'], None)):
                function = getattr(module, entry['name'])
                function.is_usercommand = True
                estimate = getattr(module, ESTIMATE_PREFIX + entry['name'], None)
                if session.mode == SIMULATION:
                    if callable(estimate):
                        function = timed_by_estimate(function, estimate)
                else:
                    function = in_progress_scope(function)
                    # Also for the other commands of its file, which call
                    # it through the module (and files imported after it).
                    setattr(module, entry['name'], function)
                self._functions[entry['name']] = usercommandWrapper(function)
                session.export(entry['name'], self._functions[entry['name']])
                names.add(entry['name'])
        self._exported[path] = names

    def _unexport(self, path: str) -> None:
        for name in self._exported.pop(path, ()):
            self._functions.pop(name, None)
            session.unexport(name, warn=False)

    def command(self, name: str) -> Optional[Callable]:
        """The function of the loaded command *name*, if there is one."""
        return self._functions.get(name)


def timed_by_estimate(function, estimate):
    """In a dry run, let the command's estimate function give its duration.

    The command still runs (simulated), so device limits are checked; then
    the simulated clock is set to where the estimate says the command
    ends, and the figure is sent to the daemon, which reports its source.
    """
    @functools.wraps(function)
    def timed(*args, **kwargs):
        started = session.clock.time
        result = function(*args, **kwargs)
        seconds = float(estimate(*args, **kwargs))
        session.clock.time = started + seconds
        sender = getattr(session, 'log_sender', None)
        if sender is not None:
            sender.add_result({'estimate_function': function.__name__,
                               'seconds': seconds})
        return result
    return timed


def _merged(first: Optional[CatalogChanges],
            second: CatalogChanges) -> CatalogChanges:
    """Pending file changes of two refreshes, as one."""
    if first is None:
        return second
    changed = [p for p in first.changed_files if p not in second.removed_files]
    changed += [p for p in second.changed_files if p not in changed]
    removed = [p for p in first.removed_files if p not in second.changed_files]
    removed += [p for p in second.removed_files if p not in removed]
    return CatalogChanges(second.generation, changed_files=changed,
                          removed_files=removed)


def _read(path: str) -> Optional[str]:
    try:
        with open(path, encoding='utf-8') as file:
            return file.read()
    except (OSError, UnicodeDecodeError):
        return None


def _error_line(err: Exception, path: str) -> Optional[int]:
    if isinstance(err, SyntaxError) and err.filename == path:
        return err.lineno
    lines = [frame.lineno for frame in traceback.extract_tb(err.__traceback__)
             if frame.filename == path]
    return lines[-1] if lines else None
