"""The command-line client against a real daemon and proxy, as a subprocess."""

import json
import os
import sqlite3
import subprocess
import sys
import threading
from contextlib import closing

import pytest

from nicos_scriptserver.clients.daemonclient import ServerError
from nicos_scriptserver.queue import (Change, Job, JobKind, JobState,
                                      QueueStore)
from nicos_scriptserver.supervisor.processes import free_port
from waiting import wait_until

pytestmark = pytest.mark.integration

LONG_JOB = 'for i in range(600):\n    pause_point()\n    sleep(0.05)\n'


@pytest.fixture(scope='module')
def server_args():
    return {'proxy': True}


def run(args, env=None, stdin=None):
    """Run the CLI with *args*; the completed process (text output)."""
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(('EPICS_CA_', 'NICOS_SCRIPTSERVER_'))}
    return subprocess.run([sys.executable, '-m', 'nicos_scriptserver.clients.cli',
                           *args], env=dict(base, **(env or {})), input=stdin,
                          capture_output=True, text=True, timeout=60)


def cli(server, *args, env=None, stdin=None):
    """Run the CLI through the test server's proxy."""
    instance = server.instance
    return run(['--proxy', f'{instance.host}:{instance.proxy_port}',
                '--pv-port', str(instance.pv_port), *args], env, stdin)


def ok(result):
    assert result.returncode == 0, result.stderr
    assert result.stderr == ''
    return result.stdout


def waiting(client):
    return [(job['id'], job['state']) for job in client.queue()['waiting']]


def submit(client, name, source='pass'):
    job, = client.call('ss_submit', {'name': name, 'source': source})
    return job['id']


def start_long_job(client):
    """Submit a job that runs until aborted; its id once it runs."""
    job_id = submit(client, 'long', LONG_JOB)
    wait_until(lambda: client.call('ss_job', job_id)['state'] == 'running')
    return job_id


def test_submit_a_file_and_see_it_in_queue_and_status(server, client,
                                                      tmp_path):
    client.call('ss_hold')
    first = submit(client, 'first')
    script = tmp_path / 'scan.py'
    script.write_text('pause_point()\n')
    out = ok(cli(server, 'submit', str(script), '--name', 'my scan',
                 '--position', 'top', '--isolated'))
    assert out.startswith('queued job ')
    new = int(out.split()[2])
    assert client.call('ss_job', new)['isolated'] is True
    assert waiting(client) == [(new, 'queued'), (first, 'queued')]
    assert client.call('ss_job', new)['source'] == 'pause_point()\n'

    table = ok(cli(server, 'queue')).splitlines()
    assert table[0].split()[:3] == ['pos', 'id', 'kind']
    assert table[2].split()[:5] == ['0', str(new), 'aware', 'my', 'scan']

    status = ok(cli(server, 'status'))
    assert 'none running' in status
    assert ['queue', 'held:', 'yes', '(held', 'by', 'user)'] in [
        line.split() for line in status.splitlines()]
    assert ['waiting:', '2', '(2', 'to', 'run)'] in [
        line.split() for line in status.splitlines()]

    data = json.loads(ok(cli(server, '--json', 'queue')))
    assert [row[0] for row in data['queue']['waiting']] == [new, first]


def test_submit_a_command_call_as_a_generated_job(server, client):
    client.call('ss_hold')
    out = ok(cli(server, 'submit', '--call', 'set_ei', 'energy=25',
                 'wait_for_choppers=False'))
    job = client.call('ss_job', int(out.split()[2]))
    assert job['kind'] == 'generated'
    assert job['calls'] == [{'command': 'set_ei', 'args': {
        'energy': 25, 'wait_for_choppers': False}}]

    refused = cli(server, 'submit', '--call', 'set_ei', 'energy=250')
    assert refused.returncode == 1
    assert 'above its maximum 100 meV' in refused.stderr
    assert 'Traceback' not in refused.stderr
    assert len(client.queue()['waiting']) == 1


def test_move_skip_unskip_repeat_remove(server, client):
    client.call('ss_hold')
    a, b, c = (submit(client, name) for name in 'abc')
    assert 'moved job' in ok(cli(server, 'move', str(c), 'top'))
    ok(cli(server, 'move', str(a), '2'))
    assert [i for i, _ in waiting(client)] == [c, b, a]

    ok(cli(server, 'skip', str(b)))
    assert (b, 'skipped') in waiting(client)
    ok(cli(server, 'unskip', str(b)))
    assert (b, 'queued') in waiting(client)

    out = ok(cli(server, 'repeat', str(c), '--times', '2'))
    ids = [i for i, _ in waiting(client)]
    assert len(ids) == 5 and ids[0] == c and ids[3:] == [b, a]
    assert out == f'repeated job {c} as {ids[1]}, {ids[2]}\n'

    ok(cli(server, 'remove', str(a)))
    assert a not in [i for i, _ in waiting(client)]


def test_edit_runs_the_editor_and_sends_the_change(server, client, tmp_path):
    client.call('ss_hold')
    job_id = submit(client, 'edit me', 'x = 1\n')
    editor = tmp_path / 'editor.sh'
    editor.write_text('#!/bin/sh\nsed -i "s/x = 1/x = 2/" "$1"\n')
    editor.chmod(0o755)
    assert ok(cli(server, 'edit', str(job_id), env={'EDITOR': str(editor)})
              ).startswith(f'edited job {job_id}')
    assert client.call('ss_job', job_id)['source'] == 'x = 2\n'

    assert ok(cli(server, 'edit', str(job_id), env={'EDITOR': 'true'})) == \
        f'job {job_id} unchanged\n'


def test_edit_refuses_when_someone_changed_the_job_while_the_editor_was_open(
        server, client, tmp_path):
    client.call('ss_hold')
    job_id = submit(client, 'edit me', 'x = 1\n')
    opened, go = tmp_path / 'opened', tmp_path / 'go'
    editor = tmp_path / 'editor.sh'
    editor.write_text(f'#!/bin/sh\nsed -i "s/x = 1/x = 2/" "$1"\ntouch {opened}\n'
                      f'while [ ! -e {go} ]; do sleep 0.05; done\n')
    editor.chmod(0o755)
    result = []
    thread = threading.Thread(target=lambda: result.append(
        cli(server, 'edit', str(job_id), env={'EDITOR': str(editor)})))
    thread.start()
    try:
        wait_until(opened.exists, timeout=30)
        client.call('ss_edit', job_id, {'source': 'x = 3\n'})
    finally:
        go.touch()
        thread.join(60)
    refused, = result
    assert refused.returncode == 1
    assert f'job {job_id} was changed after you saw it (version 1): user ' \
        'edited its script (now version 2); nothing was changed' in refused.stderr
    assert client.call('ss_job', job_id)['source'] == 'x = 3\n'


def test_audit_shows_who_changed_a_job(server, client):
    client.call('ss_hold')
    job_id = submit(client, 'audited')
    ok(cli(server, 'skip', str(job_id)))
    table = ok(cli(server, 'audit', '--job', str(job_id)))
    header, _, skipped, submitted = table.splitlines()[:4]
    assert header.split()[:6] == ['when', 'who', 'client', 'action', 'jobs', 'why']
    assert 'user' in skipped and 'skip' in skipped and 'ss_skip from' in skipped
    assert f'job {job_id}: skipped it' in skipped
    assert 'submit' in submitted
    entries = json.loads(ok(cli(server, '--json', 'audit', '--job', str(job_id),
                                '--limit', '1')))
    assert [e['action'] for e in entries] == ['skip']


def test_pause_resume_watch_and_abort_the_current_job(server, client):
    job_id = start_long_job(client)
    ok(cli(server, 'pause'))
    wait_until(lambda: client.call('ss_job', job_id)['state'] == 'paused')
    assert ['state:', 'paused', 'for'] in [
        line.split()[:3] for line in ok(cli(server, 'status')).splitlines()]

    ok(cli(server, 'resume'))
    wait_until(lambda: client.call('ss_job', job_id)['state'] == 'running')
    frame = ok(cli(server, 'watch', '--once')).splitlines()
    assert frame[0] == f'job {job_id} long  [running]'
    assert frame[1].startswith('[') and 'elapsed' in frame[2]
    assert 'queue ends' in frame[-1]
    frames = ok(cli(server, '--json', 'watch', '--count', '2')).splitlines()
    assert [json.loads(f)['queue']['current']['id'] for f in frames] == \
        [job_id, job_id]

    waiting = submit(client, 'waiting', 'print(1)')
    assert 'held' in ok(cli(server, 'abort'))
    wait_until(lambda: client.call('ss_job', job_id)['state'] == 'aborted')
    assert client.queue()['held']
    assert f'protects job {waiting}' in ok(cli(server, 'status'))
    ok(cli(server, 'release'))
    assert not client.queue()['held']
    ok(cli(server, 'hold'))
    assert client.queue()['held']


def test_history_shows_outcomes_and_the_failing_line(server, client):
    job_id = submit(client, 'broken', 'x = 1\ny = x / 0\n')
    # Its dry run fails too, which holds the job back until confirmed.
    wait_until(lambda: client.call('ss_job', job_id)['held'])
    assert '(held back)' in ok(cli(server, 'queue'))
    ok(cli(server, 'confirm', str(job_id)))
    wait_until(lambda: client.call('ss_job', job_id)['state'] == 'failed')
    lines = ok(cli(server, 'history', '--limit', '1')).splitlines()
    assert len(lines) == 3
    assert lines[2].split()[:4] == [str(job_id), 'broken', 'user', 'failed']
    assert 'line 2: ZeroDivisionError' in lines[2]


def test_history_filters_by_owner_state_and_time_and_pages(server, client):
    admin = server.client('admin')
    mine = [submit(client, 'mine'), submit(client, 'mine too')]
    theirs = submit(admin, 'theirs')
    for job_id in (*mine, theirs):
        wait_until(lambda: client.call('ss_job', job_id)['state'] == 'done')
    # Straight to the daemon, as any client calls it.
    by_admin = client.call('ss_history', 50, None, 'admin')
    assert by_admin and {job['owner'] for job in by_admin} == {'admin'}
    assert by_admin[0]['id'] == theirs
    assert [job['id'] for job in client.call(
        'ss_history', 2, None, 'user', ['done'])] == mine[::-1]
    assert [job['id'] for job in client.call(
        'ss_history', 1, mine[1], 'user', 'done')] == [mine[0]]
    finished_at = client.call('ss_job', theirs)['finished_at']
    assert client.call('ss_history', 50, None, None, None,
                       finished_at + 1) == []
    with pytest.raises(ServerError, match='the history state must be'):
        client.call('ss_history', 5, None, None, 'queued')
    # And from the command line.
    lines = ok(cli(server, 'history', '--owner', 'user', '--state', 'done',
                   '--limit', '1', '--before', str(mine[1]))).splitlines()
    assert [line.split()[0] for line in lines[2:]] == [str(mine[0])]
    shown = ok(cli(server, 'history', '--owner', 'admin', '--since',
                   '2000-01-01')).splitlines()
    assert shown[2].split()[0] == str(theirs)
    assert str(mine[0]) not in [line.split()[0] for line in shown[2:]]
    assert len(ok(cli(server, 'history', '--until',
                      '2000-01-01')).splitlines()) <= 2
    refused = cli(server, 'history', '--state', 'queued')
    assert refused.returncode == 2 and 'invalid choice' in refused.stderr


def test_commands_lists_the_catalog(server, client):
    out = ok(cli(server, 'commands'))
    assert 'set_ei(energy: float [meV] (0.5..100), wait_for_choppers: bool ' \
           '= True)\n    Positions the choppers' in out
    catalog = json.loads(ok(cli(server, '--json', 'commands')))
    assert 'set_ei' in [entry['name'] for entry in catalog['commands']]


def test_refused_requests_and_bad_usage(server, client):
    unknown = cli(server, 'skip', '999999')
    assert unknown.returncode == 1
    assert unknown.stderr == ('nicos-scriptserver: ss_skip: no job 999999 in '
                              'the queue\n')
    for usage in (['move', '1'], ['skip', 'x'], ['frobnicate'],
                  ['submit', 'a.py', 'b.py'], ['move', '1', 'sideways']):
        result = cli(server, *usage)
        assert result.returncode == 2, usage
        assert 'Traceback' not in result.stderr
    assert run(['--proxy', 'localhost', 'status']).returncode == 2


def test_nothing_listening_is_reported_with_the_address(server):
    port = free_port()
    result = run(['--proxy', f'127.0.0.1:{port}', 'status'])
    assert result.returncode == 3
    assert f'cannot connect to the proxy at 127.0.0.1:{port}' in result.stderr


def test_wrong_or_unreadable_token_fails_the_login(server):
    wrong = cli(server, '--token-file', '-', 'status', stdin='nonsense\n')
    assert wrong.returncode == 4
    assert 'login at the proxy' in wrong.stderr
    assert 'Invalid username or password' in wrong.stderr

    unreadable = cli(server, '--pv-prefix', 'NOPE:', 'status')
    assert unreadable.returncode == 4
    assert unreadable.stderr == (
        'nicos-scriptserver: cannot read NOPE:TOKEN: not connected / no read '
        'access; is the server running? are you allowed to read it?\n')


def test_token_from_the_environment(server, client):
    pvs = json.loads(ok(cli(server, '--json', 'status')))  # PV login works
    assert 'queue' in pvs
    wrong = cli(server, 'status', env={'NICOS_SCRIPTSERVER_TOKEN': 'bad'})
    assert wrong.returncode == 4


def test_straight_to_the_daemon_with_a_password(server, client, tmp_path):
    client.call('ss_hold')
    script = tmp_path / 'direct.py'
    script.write_text('pass\n')
    address = f'{server.instance.host}:{server.instance.daemon_port}'
    password = {'NICOS_SCRIPTSERVER_PASSWORD': server.passwords['user']}
    out = ok(run(['--daemon', address, '--user', 'user', 'submit',
                  str(script)], env=password))
    job = client.call('ss_job', int(out.split()[2]))
    assert (job['name'], job['owner']) == ('direct.py', 'user')

    wrong = run(['--daemon', address, '--user', 'user', 'status'],
                env={'NICOS_SCRIPTSERVER_PASSWORD': 'wrong'})
    assert wrong.returncode == 4 and 'login at the daemon' in wrong.stderr


def test_a_reader_that_goes_away_ends_the_output_quietly(server, client):
    # `nicos-scriptserver queue | head -1`: the reader has gone before the
    # table is written, as a pager or head does once it has enough.
    instance = server.instance
    proc = subprocess.Popen(
        [sys.executable, '-m', 'nicos_scriptserver.clients.cli', '--proxy',
         f'{instance.host}:{instance.proxy_port}', '--pv-port',
         str(instance.pv_port), 'queue'],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proc.stdout.close()
    stderr = proc.stderr.read()
    assert proc.wait(timeout=60) == 141
    assert stderr == ''


def test_no_password_and_no_terminal_is_one_line_not_a_traceback(server):
    address = f'{server.instance.host}:{server.instance.daemon_port}'
    # A new session has no controlling terminal: as from cron or a pipe.
    result = subprocess.run(
        [sys.executable, '-m', 'nicos_scriptserver.clients.cli', '--daemon',
         address, '--user', 'user', 'status'],
        env={k: v for k, v in os.environ.items()
             if not k.startswith('NICOS_SCRIPTSERVER_')},
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60,
        start_new_session=True)
    assert result.returncode == 2
    assert result.stderr == (
        'nicos-scriptserver: password for user: not given and no terminal to '
        'ask on; give it with $NICOS_SCRIPTSERVER_PASSWORD\n')


def test_edit_of_the_current_job_is_refused_before_the_editor_opens(
        server, client, tmp_path):
    job_id = start_long_job(client)
    opened = tmp_path / 'opened'
    editor = tmp_path / 'editor.sh'
    editor.write_text(f'#!/bin/sh\ntouch {opened}\n')
    editor.chmod(0o755)
    result = cli(server, 'edit', str(job_id), env={'EDITOR': str(editor)})
    assert result.returncode == 1
    assert 'the current job cannot be edited' in result.stderr
    assert not opened.exists()


def test_requeue_duplicate_show_and_clear(server, client):
    failed = submit(client, 'broken', 'x = 1\ny = x / 0\n')
    wait_until(lambda: client.call('ss_job', failed)['held'])
    shown = ok(cli(server, 'show', str(failed)))
    assert 'held back: dry run:' in shown and 'ZeroDivisionError' in shown
    client.call('ss_confirm', failed)
    wait_until(lambda: client.call('ss_job', failed)['state'] == 'failed')
    shown = ok(cli(server, 'show', str(failed)))
    assert 'error:' in shown and 'line 2: ZeroDivisionError' in shown
    assert 'took:' in shown and shown.rstrip().endswith('y = x / 0')

    client.call('ss_hold')
    out = ok(cli(server, 'requeue', str(failed)))
    again = int(out.split()[-1])
    assert out == f're-queued job {failed} as job {again}\n'
    assert client.call('ss_job', again)['requeued_from'] == failed
    # Dry-run again like a new submission, so held back again.
    wait_until(lambda: client.call('ss_job', again)['held'])
    assert client.call('ss_job', again)['hold_reason'].startswith('dry run:')
    out = ok(cli(server, 'duplicate', str(again)))
    copy = int(out.split()[-1])
    assert [i for i, _ in waiting(client)] == [again, copy]
    assert ok(cli(server, 'clear')) == \
        f'removed 2 waiting jobs: {again}, {copy}\n'
    assert waiting(client) == []


def test_confirm_says_whether_the_job_was_held_back(server, client):
    client.call('ss_hold')
    plain = submit(client, 'plain')
    assert ok(cli(server, 'confirm', str(plain))) == \
        f'job {plain} was not held back: it runs in its turn anyway\n'
    broken = submit(client, 'broken', '1/0\n')
    wait_until(lambda: client.call('ss_job', broken)['held'])
    status = ok(cli(server, 'status'))
    assert ['waiting:', '2', '(1', 'to', 'run,', '1', 'held', 'back)'] in [
        line.split() for line in status.splitlines()]
    assert ok(cli(server, 'confirm', str(broken))).startswith(
        f'job {broken} is no longer held back')
    client.call('ss_clear')
    assert ['queue', 'ends:', 'nothing', 'to', 'run'] in [
        line.split() for line in ok(cli(server, 'status')).splitlines()]


def test_jobs_without_a_name_are_named_after_what_they_run(server, client):
    client.call('ss_hold')
    client.call('ss_submit', [
        {'kind': 'generated', 'calls': [
            {'command': 'set_temperature', 'args': {'kelvin': 10}},
            {'command': 'measure', 'args': {'frames': 100}}]},
        {'source': '# warm up\n\nset_temperature(20)\nmeasure(frames=5)\n'}])
    rows = ok(cli(server, 'queue')).splitlines()[2:]
    assert 'set_temperature(kelvin=10) (+1)' in rows[0]
    assert 'set_temperature(20)' in rows[1]


def test_status_shows_paused_for_and_a_black_box_jobs_progress_by_time(
        server, client):
    job_id = start_long_job(client)
    client.call('ss_pause')
    wait_until(lambda: client.call('ss_job', job_id)['state'] == 'paused')
    wait_until(lambda: (client.queue()['current']['paused_for'] or 0) >= 1)
    assert client.call('ss_timeline')['current']['paused_for'] >= 1
    state = [line.split() for line in ok(cli(server, 'status')).splitlines()
             if line.startswith('state:')][0]
    assert state[:4] == ['state:', 'paused', 'for', state[3]]
    assert state[3].endswith('s')
    client.call('ss_abort')
    wait_until(lambda: client.call('ss_job', job_id)['state'] == 'aborted')
    client.call('ss_release')

    box, = client.call('ss_submit', {
        'kind': 'blackbox', 'name': 'box',
        'source': '# estimate: 60 s\nimport time\ntime.sleep(60)\n'})
    wait_until(lambda: client.call('ss_job', box['id'])['state'] == 'running')
    wait_until(lambda: (client.queue()['current']['progress_by_time'] or 0)
               > 0)
    current = client.queue()['current']
    assert current['paused_for'] is None and 0 < current['progress_by_time'] < 1
    assert 'of its estimated time' in ok(cli(server, 'status'))


def test_a_daemon_with_historydays_archives_old_jobs_at_start(
        server_factory, tmp_path):
    datadir = tmp_path / 'archiving'
    datadir.mkdir(mode=0o700)
    # 1,100 jobs that finished in 2001: all but the newest 1,000 move.
    store = QueueStore(datadir / 'queue.sqlite')
    change = Change(next_id=1101)
    for job_id in range(1, 1101):
        change.put[job_id] = Job(
            id=job_id, kind=JobKind.AWARE, source='pass', owner='user',
            changed_by='user', state=JobState.DONE, created=1e9,
            started_at=1e9, finished_at=1e9 + job_id)
        change.history[job_id] = job_id - 1
    store.commit(change)
    store.close()
    running = server_factory(datadir=datadir, history_days=30)
    archive = datadir / 'queue-archive.sqlite'
    client = running.client('user')

    def archived():
        if not archive.exists():
            return None
        with closing(sqlite3.connect(str(archive))) as db:
            return [row[0] for row in db.execute('SELECT id FROM jobs ORDER '
                                                 'BY id')]
    wait_until(lambda: archived() == list(range(1, 101)))
    assert archive.stat().st_mode & 0o777 == 0o600
    with pytest.raises(ServerError, match='no job 100'):
        client.call('ss_job', 100)
    oldest = client.call('ss_history', 1, 102)
    assert [job['id'] for job in oldest] == [101]
