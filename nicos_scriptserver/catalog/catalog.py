"""The command catalog over command folders, with hot-reload bookkeeping.

`Catalog.refresh` re-parses only files whose size or modification time
changed and says what changed, so the caller emits an event only then. A
broken file never takes other commands down: its last good commands stay,
marked with `STALE_WARNING`, and the problem is listed in ``errors``.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass, field
from types import CodeType
from typing import (Any, Dict, Iterator, List, Optional, Sequence, Tuple,
                    Union)

from nicos_scriptserver.catalog.parse import ParsedFile, file_error, parse_file

STALE_WARNING = 'source file has an error; serving the last good version'

Entry = Dict[str, Any]
PathLike = Union[str, 'os.PathLike[str]']


@dataclass
class CatalogChanges:
    """What one scan, refresh or import report changed.

    It is true if the catalog as clients see it changed (and *generation*
    then went up). *changed_files* lists the files that were added or edited
    and parse: the ones to (re)import. It can be non-empty while nothing
    clients see changed, e.g. after an edit of a private helper.
    """

    generation: int
    added: List[str] = field(default_factory=list)
    changed: List[str] = field(default_factory=list)
    removed: List[str] = field(default_factory=list)
    new_errors: List[Dict[str, Any]] = field(default_factory=list)
    cleared_errors: List[Dict[str, Any]] = field(default_factory=list)
    changed_files: List[str] = field(default_factory=list)
    removed_files: List[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.added or self.changed or self.removed or
                    self.new_errors or self.cleared_errors)

    def to_dict(self) -> Dict[str, Any]:
        """The changes as JSON-ready data (for an event)."""
        return {'generation': self.generation, 'added': self.added,
                'changed': self.changed, 'removed': self.removed,
                'new_errors': self.new_errors,
                'cleared_errors': self.cleared_errors}


@dataclass
class _FileState:
    folder: int                      # index into the catalog's folders
    key: Tuple[int, int]             # (mtime_ns, size) when last parsed
    parsed: ParsedFile               # the file's current content
    good: List[Entry]                # the commands served
    # The commands served before the current content was parsed: served
    # again if importing the current content fails.
    fallback: List[Entry] = field(default_factory=list)
    import_error: Optional[Dict[str, Any]] = None


@dataclass(frozen=True)
class _Snapshot:
    generation: int
    commands: Dict[str, Entry]
    errors: List[Dict[str, Any]]
    json: str   # the same as JSON text, for replies
    by_file: Dict[str, List[Entry]]   # the commands by path of their file


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(',', ':'))


def _error_key(error: Dict[str, Any]) -> Tuple[Any, ...]:
    return (error['kind'], error['path'], error['line'], error['column'],
            error['message'])


class Catalog:
    """The commands of a list of folders, in folder order, then file name.

    If two files define the same command, the first one's is used and the
    other is reported as a conflict; likewise for two files of the same
    name in different folders (they would be the same module). Readers
    (`get`, `to_dict`, ...) see a consistent snapshot; updates are
    serialised by a lock, so a poller thread may refresh while others read.
    Returned entries are shared: treat them as read-only.
    """

    def __init__(self, folders: Sequence[PathLike]) -> None:
        self.folders = tuple(os.path.abspath(os.fspath(f)) for f in folders)
        self._files: Dict[str, _FileState] = {}
        self._folder_errors: List[Dict[str, Any]] = []
        self._lock = threading.Lock()
        # Serialising 1,000 commands takes 25 ms or more, too long for each
        # reply: the JSON text is made when the catalog changes, from
        # entries serialised once each ({id: (entry, text)}; the entry is
        # kept so that its id cannot be reused).
        self._fragments: Dict[int, Tuple[Entry, str]] = {}
        self._snapshot = self._snapshot_of(0, {}, [])

    # -- reading ---------------------------------------------------------

    @property
    def generation(self) -> int:
        """Goes up by one whenever what `to_dict` returns changes."""
        return self._snapshot.generation

    def get(self, name: str) -> Optional[Entry]:
        """The entry of command *name*, or None."""
        return self._snapshot.commands.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._snapshot.commands

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._snapshot.commands))

    def __len__(self) -> int:
        return len(self._snapshot.commands)

    @property
    def commands(self) -> List[Entry]:
        """All command entries, in folder, file and line order."""
        return list(self._snapshot.commands.values())

    @property
    def errors(self) -> List[Dict[str, Any]]:
        """Problems with folders and files (kind, file, path, line, column,
        message); kinds are folder, read, syntax, import and conflict."""
        return list(self._snapshot.errors)

    def commands_in(self, path: PathLike) -> List[Entry]:
        """The command entries served from file *path*, in catalog order."""
        return list(self._snapshot.by_file.get(
            os.path.abspath(os.fspath(path)), ()))

    def files(self) -> List[Tuple[int, str, bool]]:
        """``(folder index, path, has an error)`` of every command file."""
        with self._lock:
            return [(state.folder, path, state.parsed.error is not None
                     or state.import_error is not None)
                    for path, state in self._files.items()]

    def to_dict(self) -> Dict[str, Any]:
        """``{generation, commands, errors}``, ready for JSON."""
        snapshot = self._snapshot
        return {'generation': snapshot.generation,
                'commands': list(snapshot.commands.values()),
                'errors': list(snapshot.errors)}

    def to_json(self) -> str:
        """`to_dict` as compact JSON text (made when the catalog changed)."""
        return self._snapshot.json

    def take_code(self, path: PathLike, source: str) -> Optional[CodeType]:
        """The module code compiled when file *path* was last parsed, if
        that was from *source*; else None.

        Given out once, and not kept after: it is only needed to import
        the file, and would otherwise stay in memory with its text.
        """
        with self._lock:
            state = self._files.get(os.path.abspath(os.fspath(path)))
            if state is None or state.parsed.compiled is None:
                return None
            text, code = state.parsed.compiled
            state.parsed.compiled = None
            return code if text == source else None

    # -- updating --------------------------------------------------------

    def scan(self) -> CatalogChanges:
        """Re-read and re-parse every file (a first scan, or to be sure)."""
        with self._lock:
            return self._update(force=True)

    def refresh(self) -> CatalogChanges:
        """Re-parse files whose (mtime_ns, size) changed; notice new and
        deleted files. Cheap enough to call every second."""
        with self._lock:
            return self._update(force=False)

    def mark_import_error(self, path: PathLike, line: Optional[int],
                          message: str) -> CatalogChanges:
        """Report that importing file *path* failed (at *line*, if known).

        The file's commands revert to the version served before its
        current content, and the error is listed until the file changes or
        `clear_import_error` is called. Ignored while the file has a syntax
        error, which already explains the failure. Raises ValueError for a
        path that is not a command file of this catalog.
        """
        with self._lock:
            state = self._state(path)
            error = file_error('import', state.parsed.file, state.parsed.path,
                               line, None, message)
            if state.parsed.error is not None or state.import_error == error:
                return CatalogChanges(self._snapshot.generation)
            if state.import_error is None:
                state.good = state.fallback
            state.import_error = error
            return self._publish([], [])

    def clear_import_error(self, path: PathLike) -> CatalogChanges:
        """Report that file *path* now imports (e.g. after a file it
        imports from was fixed): its current commands are served again."""
        with self._lock:
            state = self._state(path)
            if state.import_error is None:
                # The common case, once per file imported: rebuilding the
                # catalog here made a start with 1,000 files quadratic.
                return CatalogChanges(self._snapshot.generation)
            state.import_error = None
            state.good = state.parsed.commands
            return self._publish([], [])

    # -- internals -------------------------------------------------------

    def _state(self, path: PathLike) -> _FileState:
        path = os.path.abspath(os.fspath(path))
        state = self._files.get(path)
        if state is None:
            real = os.path.realpath(path)
            state = next((s for p, s in self._files.items()
                          if os.path.realpath(p) == real), None)
        if state is None:
            raise ValueError(f'{path} is not a command file of this catalog')
        return state

    def _listing(self) -> Dict[str, Tuple[int, str, Tuple[int, int]]]:
        """{path: (folder index, file name, (mtime_ns, size))} of all files."""
        found: Dict[str, Tuple[int, str, Tuple[int, int]]] = {}
        self._folder_errors = []
        for index, folder in enumerate(self.folders):
            try:
                entries = list(os.scandir(folder))
            except OSError as err:
                self._folder_errors.append(file_error(
                    'folder', '', folder, None, None,
                    f'command folder cannot be read: {err.strerror or err}'))
                continue
            for entry in entries:
                # Editors' lock and backup files start with '.' or '#'.
                if not entry.name.endswith('.py') or \
                        entry.name.startswith(('_', '.', '#')):
                    continue
                try:
                    if not entry.is_file():
                        continue
                    stat = entry.stat()
                except OSError:   # deleted since listed
                    continue
                found.setdefault(entry.path, (
                    index, entry.name, (stat.st_mtime_ns, stat.st_size)))
        return found

    def _update(self, force: bool) -> CatalogChanges:
        folder_errors = self._folder_errors
        listing = self._listing()
        changed_files: List[str] = []
        removed_files = sorted(set(self._files) - set(listing))
        edited = False
        for path in removed_files:
            del self._files[path]
        for path, (folder, name, key) in listing.items():
            state = self._files.get(path)
            if state is not None and state.key == key and not force:
                continue
            parsed = parse_file(path, name)
            if state is None:
                state = self._files[path] = _FileState(
                    folder, key, parsed, parsed.commands if
                    parsed.error is None else [])
            elif parsed.digest is not None and \
                    parsed.digest == state.parsed.digest:
                state.key = key   # touched, not edited
                continue
            else:
                state.key, state.parsed, state.import_error = key, parsed, None
                if parsed.error is None:
                    state.fallback, state.good = state.good, parsed.commands
            edited = True
            if parsed.error is None:
                changed_files.append(path)
        if not (edited or removed_files or
                folder_errors != self._folder_errors):
            # The common case of a poll: skip rebuilding the catalog.
            return CatalogChanges(self._snapshot.generation)
        return self._publish(sorted(changed_files), removed_files)

    def _served(self, state: _FileState) -> List[Entry]:
        if state.parsed.error is None and state.import_error is None:
            return state.good
        return [dict(entry, warnings=entry['warnings'] + [STALE_WARNING])
                for entry in state.good]

    def _build(self) -> Tuple[Dict[str, Entry], List[Dict[str, Any]]]:
        commands: Dict[str, Entry] = {}
        errors = list(self._folder_errors)
        modules: Dict[str, ParsedFile] = {}
        for state in sorted(self._files.values(),
                            key=lambda s: (s.folder, s.parsed.file)):
            parsed = state.parsed
            module = parsed.file[:-3]
            if module in modules:
                errors.append(file_error(
                    'conflict', parsed.file, parsed.path, None, None,
                    f"module '{module}' is already defined by "
                    f"{modules[module].path}; this file is not used"))
                continue
            modules[module] = parsed
            errors += [e for e in (parsed.error, state.import_error) if e]
            for entry in self._served(state):
                first = commands.get(entry['name'])
                if first is None:
                    commands[entry['name']] = entry
                    continue
                errors.append(file_error(
                    'conflict', parsed.file, parsed.path, entry['line'], None,
                    f"command '{entry['name']}' is defined in both "
                    f"{first['file']} and {parsed.file}; the one in "
                    f"{first['file']} is used"))
        return commands, errors

    def _snapshot_of(self, generation: int, commands: Dict[str, Entry],
                     errors: List[Dict[str, Any]]) -> _Snapshot:
        # Only entries that are new objects are serialised: _publish keeps
        # the old object of every unchanged entry.
        fragments: Dict[int, Tuple[Entry, str]] = {}
        by_file: Dict[str, List[Entry]] = {}
        for entry in commands.values():
            known = self._fragments.get(id(entry))
            fragments[id(entry)] = known if known and known[0] is entry \
                else (entry, _dumps(entry))
            by_file.setdefault(entry['path'], []).append(entry)
        self._fragments = fragments
        text = (f'{{"generation":{generation},"commands":['
                f'{",".join(text for _, text in fragments.values())}],'
                f'"errors":{_dumps(errors)}}}')
        return _Snapshot(generation, commands, errors, text, by_file)

    def _publish(self, changed_files: List[str],
                 removed_files: List[str]) -> CatalogChanges:
        """Rebuild the snapshot and report its differences to the last."""
        old = self._snapshot
        commands, errors = self._build()
        changed = []
        for name, entry in commands.items():
            if name in old.commands:
                if old.commands[name] == entry:
                    # Keeping the object lets to_json reuse its text.
                    commands[name] = old.commands[name]
                else:
                    changed.append(name)
        old_errors = {_error_key(e): e for e in old.errors}
        new_errors = {_error_key(e): e for e in errors}
        changes = CatalogChanges(
            generation=old.generation,
            added=[n for n in commands if n not in old.commands],
            changed=changed,
            removed=[n for n in old.commands if n not in commands],
            new_errors=[e for k, e in new_errors.items()
                        if k not in old_errors],
            cleared_errors=[e for k, e in old_errors.items()
                            if k not in new_errors],
            changed_files=changed_files, removed_files=removed_files)
        if changes:
            changes.generation += 1
            self._snapshot = self._snapshot_of(changes.generation, commands,
                                               errors)
        return changes
