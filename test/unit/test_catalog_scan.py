"""The catalog over command folders: scanning, hot reload, broken files."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from nicos_scriptserver.catalog import STALE_WARNING, Catalog, validate_calls

GOOD = '''
def {name}(x: float):
    """Does {name}.

    Args:
        x [mm] (0..10): where.
    """
'''


class Folder:
    """A command folder whose writes are always seen as changes.

    Two writes within the file system's clock resolution can leave the
    modification time as it was; a test sets it explicitly instead.
    """

    def __init__(self, path: Path):
        self.path = path
        path.mkdir(exist_ok=True)
        self._clock = 1_000_000_000_000_000_000

    def write(self, name, text):
        path = self.path / name
        path.write_text(textwrap.dedent(text))
        self._clock += 1_000_000
        os.utime(path, ns=(self._clock, self._clock))
        return path

    def commands(self, name, *commands):
        return self.write(name, ''.join(GOOD.format(name=c) for c in commands))


@pytest.fixture
def folder(tmp_path):
    return Folder(tmp_path / 'commands')


def names(catalog):
    return [entry['name'] for entry in catalog.commands]


def test_scan_finds_commands_in_folder_then_file_order(folder):
    folder.commands('b.py', 'beta', 'alpha')
    folder.commands('a.py', 'gamma')
    folder.commands('_helpers.py', 'helper')
    folder.commands('.#a.py', 'lock')
    folder.write('notes.txt', 'def nope(): pass\n')
    (folder.path / 'sub.py').mkdir()
    catalog = Catalog([folder.path])
    changes = catalog.scan()
    assert names(catalog) == ['gamma', 'beta', 'alpha']
    assert changes.added == ['gamma', 'beta', 'alpha']
    assert changes.changed_files == [str(folder.path / 'a.py'),
                                     str(folder.path / 'b.py')]
    assert changes and changes.generation == catalog.generation == 1
    entry = catalog.get('beta')
    assert (entry['file'], entry['path']) == ('b.py',
                                              str(folder.path / 'b.py'))
    assert 'beta' in catalog and 'helper' not in catalog
    assert len(catalog) == 3 and sorted(catalog) == ['alpha', 'beta', 'gamma']
    assert catalog.get('helper') is None and catalog.errors == []


def test_to_dict_and_to_json(folder):
    folder.commands('a.py', 'one', 'two')
    catalog = Catalog([str(folder.path)])
    catalog.scan()
    data = catalog.to_dict()
    assert list(data) == ['generation', 'commands', 'errors']
    assert data['generation'] == 1 and data['errors'] == []
    assert [c['name'] for c in data['commands']] == ['one', 'two']
    assert json.loads(catalog.to_json()) == json.loads(json.dumps(data))
    assert catalog.to_json() is catalog.to_json()   # made once
    folder.commands('a.py', 'one', 'three')
    catalog.refresh()
    assert json.loads(catalog.to_json()) == catalog.to_dict()


def test_refresh_without_changes_reports_nothing(folder):
    folder.commands('a.py', 'one')
    catalog = Catalog([folder.path])
    catalog.scan()
    changes = catalog.refresh()
    assert not changes and changes.generation == 1
    assert changes.to_dict() == {
        'generation': 1, 'added': [], 'changed': [], 'removed': [],
        'new_errors': [], 'cleared_errors': []}
    assert not catalog.scan()   # a full re-read finds nothing new either


def test_refresh_reports_added_changed_and_removed_commands(folder):
    a = folder.commands('a.py', 'one', 'two')
    catalog = Catalog([folder.path])
    catalog.scan()
    before = catalog.get('one')
    folder.write('a.py', GOOD.format(name='one') + '\n\n' +
                 GOOD.format(name='three'))
    b = folder.commands('b.py', 'four')
    changes = catalog.refresh()
    assert (changes.added, changes.changed, changes.removed) == (
        ['three', 'four'], [], ['two'])
    assert changes.changed_files == [str(a), str(b)]
    assert changes.generation == catalog.generation == 2
    assert catalog.get('one') is before   # same source: the same entry

    folder.write('a.py', GOOD.format(name='one').replace('where', 'there')
                 + GOOD.format(name='three'))
    changes = catalog.refresh()
    assert (changes.added, changes.changed, changes.removed) == (
        [], ['one', 'three'], [])   # 'three' moved up: its line changed
    assert catalog.get('one')['params'][0]['description'] == 'there.'

    b.unlink()
    changes = catalog.refresh()
    assert (changes.removed, changes.removed_files) == (['four'], [str(b)])
    assert names(catalog) == ['one', 'three'] and catalog.generation == 4


def test_a_touched_file_is_not_a_change(folder):
    path = folder.commands('a.py', 'one')
    catalog = Catalog([folder.path])
    catalog.scan()
    os.utime(path, ns=(5, 5))
    changes = catalog.refresh()
    assert not changes and changes.changed_files == []


def test_a_changed_helper_needs_a_reimport_but_is_no_catalog_change(folder):
    path = folder.write('a.py', GOOD.format(name='one') +
                        'def _helper():\n    return 1\n')
    catalog = Catalog([folder.path])
    catalog.scan()
    folder.write('a.py', path.read_text().replace('return 1', 'return 2'))
    changes = catalog.refresh()
    assert not changes and changes.changed_files == [str(path)]


def test_a_syntax_error_is_reported_while_other_files_serve(folder):
    folder.commands('good.py', 'fine')
    folder.write('bad.py', 'def broken(:\n    pass\n')
    catalog = Catalog([folder.path])
    changes = catalog.scan()
    assert names(catalog) == ['fine']
    error = {'kind': 'syntax', 'file': 'bad.py',
             'path': str(folder.path / 'bad.py'), 'line': 1, 'column': 12,
             'message': 'invalid syntax'}
    assert catalog.errors == [error] and changes.new_errors == [error]
    assert changes.changed_files == [str(folder.path / 'good.py')]
    assert catalog.to_dict()['errors'] == [error]


def test_the_last_good_version_is_served_until_the_file_is_fixed(folder):
    folder.commands('a.py', 'one', 'two')
    folder.commands('b.py', 'other')
    catalog = Catalog([folder.path])
    catalog.scan()
    good = catalog.get('one')

    folder.write('a.py', GOOD.format(name='one') + 'def two(:\n')
    changes = catalog.refresh()
    assert changes.changed == ['one', 'two'] and changes.changed_files == []
    assert [e['message'] for e in changes.new_errors] == ['invalid syntax']
    stale = catalog.get('one')
    assert stale['warnings'] == [STALE_WARNING]
    assert {**stale, 'warnings': []} == good
    assert catalog.get('other')['warnings'] == []

    folder.write('a.py', 'def two(:\n')   # still broken, differently
    changes = catalog.refresh()
    assert (changes.added, changes.changed, changes.removed) == ([], [], [])
    assert [e['line'] for e in changes.new_errors] == [1]
    assert [e['line'] for e in changes.cleared_errors] == [8]

    folder.commands('a.py', 'one')
    changes = catalog.refresh()
    assert (changes.changed, changes.removed) == (['one'], ['two'])
    assert [e['kind'] for e in changes.cleared_errors] == ['syntax']
    assert catalog.get('one') == good and catalog.errors == []


def test_a_file_broken_from_the_start_serves_nothing(folder):
    folder.write('a.py', 'def one(:\n')
    catalog = Catalog([folder.path])
    catalog.scan()
    assert names(catalog) == [] and len(catalog.errors) == 1
    folder.commands('a.py', 'one')
    changes = catalog.refresh()
    assert changes.added == ['one'] and len(changes.cleared_errors) == 1


def test_deleting_a_broken_file_removes_its_commands_and_error(folder):
    folder.commands('a.py', 'one')
    catalog = Catalog([folder.path])
    catalog.scan()
    path = folder.write('a.py', 'def one(:\n')
    catalog.refresh()
    path.unlink()
    changes = catalog.refresh()
    assert changes.removed == ['one'] and len(changes.cleared_errors) == 1
    assert catalog.commands == [] and catalog.errors == []


def test_an_import_error_reverts_to_the_version_before(folder):
    path = folder.commands('a.py', 'one')
    catalog = Catalog([folder.path])
    catalog.scan()
    first = catalog.get('one')
    folder.commands('a.py', 'one', 'two')
    catalog.refresh()

    changes = catalog.mark_import_error(path, 3, "NameError: name 'x' is "
                                        "not defined")
    assert (changes.removed, changes.changed) == (['two'], ['one'])
    assert catalog.get('one') == {**first, 'warnings': [STALE_WARNING]}
    assert catalog.errors == [{
        'kind': 'import', 'file': 'a.py', 'path': str(path), 'line': 3,
        'column': None, 'message': "NameError: name 'x' is not defined"}]
    assert not catalog.mark_import_error(str(path), 3, "NameError: name 'x' "
                                         "is not defined")

    changes = catalog.clear_import_error(path)
    assert changes.added == ['two'] and len(changes.cleared_errors) == 1
    assert catalog.get('one') == first and catalog.errors == []
    assert not catalog.clear_import_error(path)


def test_reporting_no_change_of_import_errors_does_not_rebuild(folder,
                                                               monkeypatch):
    # The daemon clears the import error of every file it imports: at a
    # start with 1,000 files, a rebuild each time took seconds.
    paths = [folder.commands(f'f{i}.py', f'c{i}') for i in range(5)]
    catalog = Catalog([folder.path])
    catalog.scan()
    catalog.mark_import_error(paths[0], 1, 'ImportError: nope')
    builds = []
    build = catalog._build
    monkeypatch.setattr(catalog, '_build', lambda: builds.append(1) or build())
    assert not catalog.mark_import_error(paths[0], 1, 'ImportError: nope')
    for path in paths[1:]:
        assert not catalog.clear_import_error(path)
    assert builds == []
    assert catalog.clear_import_error(paths[0]).added == ['c0']
    assert builds == [1] and catalog.errors == []


def test_the_code_compiled_when_parsing_is_given_out_once(folder):
    # The daemon imports a file from the code its parse compiled, instead
    # of compiling it again (a third of a start with 1,000 files).
    path = folder.commands('a.py', 'one')
    text = path.read_text()
    catalog = Catalog([folder.path])
    catalog.scan()
    code = catalog.take_code(path, text)
    namespace = {}
    exec(code, namespace)
    assert callable(namespace['one']) and code.co_filename == str(path)
    assert catalog.take_code(path, text) is None
    folder.commands('a.py', 'one', 'two')
    catalog.refresh()
    # Changed since it was parsed: the caller compiles what it read.
    assert catalog.take_code(path, text) is None
    assert catalog.take_code(folder.path / 'b.py', text) is None


def test_the_commands_of_one_file(folder):
    a = folder.commands('a.py', 'one', 'two')
    b = folder.commands('b.py', 'three', 'one')
    catalog = Catalog([folder.path])
    catalog.scan()
    assert [e['name'] for e in catalog.commands_in(a)] == ['one', 'two']
    # The conflicting 'one' of b.py is not served.
    assert [e['name'] for e in catalog.commands_in(str(b))] == ['three']
    assert catalog.commands_in(folder.path / 'c.py') == []
    folder.commands('b.py', 'four')
    catalog.refresh()
    assert [e['name'] for e in catalog.commands_in(b)] == ['four']


def test_an_edit_clears_an_import_error(folder):
    path = folder.commands('a.py', 'one')
    catalog = Catalog([folder.path])
    catalog.scan()
    changes = catalog.mark_import_error(path, None, 'ImportError: nope')
    assert changes.removed == ['one']   # it never imported: nothing to serve
    folder.commands('a.py', 'one', 'two')
    changes = catalog.refresh()
    assert changes.added == ['one', 'two'] and catalog.errors == []
    assert changes.changed_files == [str(path)]


def test_import_errors_of_broken_or_unknown_files(folder):
    path = folder.write('a.py', 'def one(:\n')
    catalog = Catalog([folder.path])
    catalog.scan()
    assert not catalog.mark_import_error(path, 1, 'SyntaxError')
    assert [e['kind'] for e in catalog.errors] == ['syntax']
    with pytest.raises(ValueError, match='is not a command file'):
        catalog.mark_import_error(folder.path / 'b.py', 1, 'x')


def test_a_duplicate_command_is_a_conflict_and_the_first_wins(folder):
    folder.commands('a.py', 'same', 'only_a')
    b = folder.commands('b.py', 'same')
    catalog = Catalog([folder.path])
    catalog.scan()
    assert catalog.get('same')['file'] == 'a.py'
    assert catalog.errors == [{
        'kind': 'conflict', 'file': 'b.py', 'path': str(b), 'line': 2,
        'column': None, 'message': "command 'same' is defined in both a.py "
        "and b.py; the one in a.py is used"}]
    (folder.path / 'a.py').unlink()
    changes = catalog.refresh()
    assert changes.changed == ['same'] and catalog.errors == []
    assert catalog.get('same')['file'] == 'b.py'


def test_folders_in_order_and_one_module_name_per_catalog(tmp_path):
    first, second = Folder(tmp_path / 'z_first'), Folder(tmp_path / 'a_2nd')
    first.commands('x.py', 'from_first')
    shadowed = second.commands('x.py', 'from_second')
    second.commands('a.py', 'also_second')
    catalog = Catalog([first.path, second.path])
    catalog.scan()
    assert names(catalog) == ['from_first', 'also_second']
    assert catalog.errors == [{
        'kind': 'conflict', 'file': 'x.py', 'path': str(shadowed),
        'line': None, 'column': None,
        'message': f"module 'x' is already defined by {first.path / 'x.py'}"
                   f"; this file is not used"}]


def test_a_missing_folder_is_an_error_until_it_appears(tmp_path):
    path = tmp_path / 'later'
    catalog = Catalog([path])
    changes = catalog.scan()
    assert [(e['kind'], e['path']) for e in changes.new_errors] == [
        ('folder', str(path))]
    assert catalog.errors[0]['message'].startswith(
        'command folder cannot be read: ')
    assert not catalog.refresh()
    Folder(path).commands('a.py', 'one')
    changes = catalog.refresh()
    assert changes.added == ['one'] and len(changes.cleared_errors) == 1


def test_validation_against_a_catalog(folder):
    folder.commands('a.py', 'move_to')
    catalog = Catalog([folder.path])
    catalog.scan()
    validate_calls(catalog, [{'command': 'move_to', 'args': {'x': 5}}])
    with pytest.raises(ValueError) as info:
        validate_calls(catalog, [{'command': 'move_too', 'args': {'x': 50}}])
    assert str(info.value) == ("call 1 (move_too): unknown command "
                               "'move_too' (did you mean 'move_to'?)")


def test_the_catalog_needs_no_nicos_or_other_frameworks():
    code = ('import sys, nicos_scriptserver.catalog; '
            'print(sorted({m.split(".")[0] for m in sys.modules} & '
            '{"nicos", "zmq", "epics", "PyQt5", "numpy"}))')
    result = subprocess.run([sys.executable, '-c', code], capture_output=True,
                            text=True, check=True)
    assert result.stdout == '[]\n'
