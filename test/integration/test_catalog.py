"""The command catalog in a real daemon: listing, hot reload, validation."""

import os
import textwrap
import time

import pytest

from nicos_scriptserver.clients.daemonclient import ServerError
from nicos_scriptserver.instance.config import REPO

pytestmark = pytest.mark.integration


@pytest.fixture(scope='module')
def extra(tmp_path_factory):
    """A second command folder the tests write into while the daemon runs."""
    return tmp_path_factory.mktemp('commands')


@pytest.fixture(scope='module')
def server_args(extra):
    return {'command_folders': [REPO / 'commands', extra]}


def write(folder, name, text):
    """Write a command file so that its change is always noticed."""
    path = folder / name
    path.write_text(textwrap.dedent(text))
    # Same size and same second could hide an edit from the mtime check.
    stamp = time.time_ns() + 10_000_000
    os.utime(path, ns=(stamp, stamp))
    return path


def catalog_event(predicate):
    return lambda name, data: name == 'ss_catalog' and predicate(data)


def run(client, source, timeout=30):
    """Run *source* as a job; return its final state and its own output."""
    job, = client.call('ss_submit', {'source': source})
    _, done = client.wait_for(lambda n, d: n == 'ss_job' and d['id'] == job['id']
                              and d['state'] in ('done', 'failed', 'aborted'),
                              timeout)
    return done, [d[3] for n, d in client.events
                  if n == 'message' and d[5] == str(job['id'])]


def add_command(client, folder, filename, name, text):
    """Write a new command file and wait until the catalog lists *name*."""
    mark = len(client.events)
    write(folder, filename, text)
    client.wait_for(catalog_event(lambda d: name in d['added']), 5, mark)


def test_catalog_lists_the_instrument_commands_typed_and_documented(client):
    catalog = client.catalog()
    commands = {entry['name']: entry for entry in catalog['commands']}
    assert {'set_ei', 'get_ei', 'set_temperature', 'move_sample', 'measure',
            'scan_temperature'} <= set(commands)
    set_ei = commands['set_ei']
    assert set_ei['summary'] == ('Positions the choppers to allow the specified '
                                 'incident energy through.')
    energy = set_ei['params'][0]
    assert (energy['name'], energy['type'], energy['unit'], energy['min'],
            energy['max'], energy['required']) == ('energy', 'float', 'meV', 0.5, 100, True)
    assert commands['measure']['flags'] == {'pause_points': True, 'progress': True,
                                            'estimate': True}
    assert catalog['errors'] == []


def test_new_command_file_appears_and_runs_without_restart(client, extra):
    add_command(client, extra, 'greet.py', 'greet', '''
        def greet(who: str = 'world'):
            """Says hello.

            Args:
                who: whom to greet.
            """
            print(f'hello {who}')
        ''')
    entry = next(e for e in client.catalog()['commands'] if e['name'] == 'greet')
    assert entry['params'][0]['default'] == 'world'
    done, messages = run(client, "greet('neutrons')")
    assert done['state'] == 'done'
    assert 'hello neutrons\n' in messages


def test_broken_file_is_reported_and_its_last_version_stays(client, extra):
    add_command(client, extra, 'tool.py', 'tool_version', '''
        def tool_version():
            """Prints the version."""
            print('tool v1')
        ''')
    assert 'tool v1\n' in run(client, 'tool_version()')[1]
    mark = len(client.events)
    write(extra, 'tool.py', '''
        def tool_version(:
            print('tool v2')
        ''')
    _, event = client.wait_for(catalog_event(lambda d: d['new_errors']), 5, mark)
    error = event['new_errors'][0]
    assert (error['file'], error['kind'], error['line']) == ('tool.py', 'syntax', 2)
    catalog = client.catalog()
    entry = next(e for e in catalog['commands'] if e['name'] == 'tool_version')
    assert any('last good version' in w for w in entry['warnings'])
    # The old version still runs, and so does everything else.
    done, messages = run(client, 'tool_version()\nprint(get_ei() >= 0)')
    assert done['state'] == 'done'
    assert 'tool v1\n' in messages and 'True\n' in messages

    mark = len(client.events)
    write(extra, 'tool.py', '''
        def tool_version():
            """Prints the version."""
            print('tool v3')
        ''')
    client.wait_for(catalog_event(lambda d: d['cleared_errors']), 5, mark)
    assert client.catalog()['errors'] == []
    done, messages = run(client, 'tool_version()')
    assert 'tool v3\n' in messages


def test_import_error_keeps_the_previous_commands(client, extra):
    add_command(client, extra, 'probe.py', 'probe', '''
        def probe():
            """Probes."""
            print('probe v1')
        ''')
    assert 'probe v1\n' in run(client, 'probe()')[1]
    mark = len(client.events)
    write(extra, 'probe.py', '''
        import module_that_does_not_exist

        def probe():
            """Probes."""
            print('probe v2')
        ''')
    _, event = client.wait_for(catalog_event(
        lambda d: any(e['kind'] == 'import' for e in d['new_errors'])), 5, mark)
    error = next(e for e in event['new_errors'] if e['kind'] == 'import')
    assert 'module_that_does_not_exist' in error['message'] and error['line'] == 2
    done, messages = run(client, 'probe()')
    assert done['state'] == 'done' and 'probe v1\n' in messages
    mark = len(client.events)
    (extra / 'probe.py').unlink()
    client.wait_for(catalog_event(lambda d: 'probe' in d['removed']), 5, mark)
    # Its dry run already finds the command missing: the job is held back.
    job, = client.call('ss_submit', {'source': 'probe()'})
    _, held = client.wait_for(lambda n, d: n == 'ss_job' and
                              d['id'] == job['id'] and d['held'], 30)
    assert "NameError: name 'probe' is not defined (line 1)" in held['hold_reason']
    mark = len(client.events)
    client.call('ss_confirm', job['id'])
    _, done = client.wait_for(lambda n, d: n == 'ss_job' and d['id'] == job['id']
                              and d['state'] in ('done', 'failed'), 30, mark)
    assert done['state'] == 'failed' and done['error']['type'] == 'NameError'


def test_a_command_file_is_compiled_once_to_parse_and_import_it(client, extra):
    # Importing reuses the code that parsing compiled: compiling again was
    # a third of what a daemon start with 1,000 command files spent on them.
    path = extra / 'once.py'
    done, _ = run(client, textwrap.dedent(f'''
        import sys, types
        audit = types.ModuleType('compile_audit')
        audit.compiled = []
        sys.modules[audit.__name__] = audit
        # Compiling text (ast.parse, compile) names the file; compiling a
        # syntax tree does not.
        sys.addaudithook(lambda event, args: event == 'compile' and
                         args[1] == {str(path)!r} and audit.compiled.append(1))
        '''))
    assert done['state'] == 'done'
    # Complete when it appears, so that it is parsed exactly once.
    staged = extra / 'once.tmp'
    staged.write_text(textwrap.dedent('''
        def compiled_once():
            """Prints how often this file was compiled."""
            import sys
            audit = sys.modules.get('compile_audit')   # not in dry runs
            print(f'compiled {audit and len(audit.compiled)}')
        '''))
    mark = len(client.events)
    os.replace(staged, path)
    client.wait_for(catalog_event(lambda d: 'compiled_once' in d['added']), 5, mark)
    done, messages = run(client, 'compiled_once()')
    assert done['state'] == 'done' and 'compiled 1\n' in messages, messages


def test_running_job_keeps_the_version_it_started_with(client, extra):
    add_command(client, extra, 'phase.py', 'which_phase', '''
        def which_phase():
            """Prints the version."""
            print('phase old')
        ''')
    mark = len(client.events)
    job, = client.call('ss_submit', {'source': 'which_phase()\n'
                                     'for i in range(20):\n'
                                     '    pause_point()\n'
                                     '    sleep(0.05)\n'
                                     'which_phase()\n'})
    # Pause between the two calls, change the file, resume.
    client.wait_for(lambda n, d: n == 'message' and d[3] == 'phase old\n', 10, mark)
    client.call('ss_pause')
    client.wait_for(lambda n, d: n == 'ss_job' and d['id'] == job['id']
                    and d['state'] == 'paused')
    mark = len(client.events)
    write(extra, 'phase.py', '''
        def which_phase():
            """Prints the version."""
            print('phase new')
        ''')
    client.wait_for(catalog_event(lambda d: 'which_phase' in d['changed']), 5, mark)
    client.call('ss_resume')
    client.wait_for(lambda n, d: n == 'ss_job' and d['id'] == job['id']
                    and d['state'] == 'done')
    messages = [d[3] for n, d in client.events
                if n == 'message' and d[5] == str(job['id'])]
    assert messages.count('phase old\n') == 2 and 'phase new\n' not in messages
    _, messages = run(client, 'which_phase()')
    assert 'phase new\n' in messages


@pytest.mark.parametrize('calls, message', [
    ([{'command': 'set_eii', 'args': {'energy': 5}}],
     "call 1 (set_eii): unknown command 'set_eii'"),
    ([{'command': 'set_ei', 'args': {'energy': 150}}],
     "call 1 (set_ei): argument 'energy' = 150 is above its maximum 100 meV"),
    ([{'command': 'set_ei', 'args': {}}],
     "call 1 (set_ei): missing required argument 'energy'"),
    ([{'command': 'move_sample', 'args': {'x': 1, 'theta': 'up'}}],
     "call 1 (move_sample): argument 'theta'"),
    ([{'command': 'set_ei', 'args': {'energy': 5, 'speed': 3}}],
     "call 1 (set_ei): unknown argument 'speed'"),
])
def test_generated_calls_are_validated_against_the_catalog(client, calls, message):
    before = client.queue()
    with pytest.raises(ServerError) as err:
        client.call('ss_submit', {'kind': 'generated', 'calls': calls})
    assert message in str(err.value)
    assert client.queue() == before


def test_console_commands_print_and_return_the_catalog(client):
    mark = len(client.events)
    client.call('exec', "ListInstrumentCommands('energy')")
    _, message = client.wait_for(lambda n, d: n == 'message' and 'set_ei(' in d[3],
                                 10, mark)
    assert ('set_ei(energy: float [meV, 0.5..100], '
            'wait_for_choppers: bool = True)') in message[3]
    assert 'Positions the choppers' in message[3]
    catalog = client.eval_value('InstrumentCommands()')
    assert 'set_ei' in [entry['name'] for entry in catalog['commands']]


def test_a_removed_command_holds_back_waiting_jobs_until_it_is_restored(client, extra):
    source = '''
        def beam_check(level: int = 1):
            """Checks the beam.

            Args:
                level (1..3): how thoroughly.
            """
            print('beam ok', level)
        '''
    add_command(client, extra, 'beam.py', 'beam_check', source)
    client.call('ss_hold')
    job, = client.call('ss_submit', {'kind': 'generated', 'calls': [
        {'command': 'beam_check', 'args': {'level': 2}}]})
    aware, = client.call('ss_submit', {'source': 'beam_check(1)\n'})
    client.wait_for(lambda n, d: n == 'ss_job' and d['id'] == aware['id'] and
                    (d['estimate'] or {}).get('state') == 'ok', 30)
    mark = len(client.events)
    (extra / 'beam.py').unlink()
    _, held = client.wait_for(lambda n, d: n == 'ss_job' and d['id'] == job['id']
                              and d['held'], 10, mark)
    assert held['held_by_catalog'] and held['hold_reason'] == (
        "commands changed: call 1 (beam_check): unknown command 'beam_check'")
    assert held['version'] == job['version']
    row, = [r for r in client.queue()['waiting'] if r['id'] == job['id']]
    assert row['held'] and row['hold_reason'] == held['hold_reason']
    # The aware job calling it gets a fresh dry run, which finds it gone.
    _, redone = client.wait_for(lambda n, d: n == 'ss_job' and
                                d['id'] == aware['id'] and d['held'], 30, mark)
    assert 'NameError' in redone['hold_reason']

    mark = len(client.events)
    write(extra, 'beam.py', source)
    _, ready = client.wait_for(lambda n, d: n == 'ss_job' and
                               d['id'] == job['id'] and not d['held'], 10, mark)
    assert not ready['held_by_catalog'] and ready['hold_reason'] == ''
    client.call('ss_release')
    _, done = client.wait_for(lambda n, d: n == 'ss_job' and d['id'] == job['id']
                              and d['state'] in ('done', 'failed'), 30, mark)
    assert done['state'] == 'done'
