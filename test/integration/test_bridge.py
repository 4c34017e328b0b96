"""Bridged jobs in a real daemon: a black-box script commands the instrument
from its own process, through the private channel to the daemon."""

import textwrap

import pytest

from nicos_scriptserver.clients.daemonclient import ServerError
from test_dryrun import estimated
from test_queue import gone, job_event, wait_finished
from waiting import wait_until

pytestmark = pytest.mark.integration


def submit(client, source, **spec):
    job, = client.call('ss_submit', {'kind': 'blackbox',
                                     'source': textwrap.dedent(source), **spec})
    return job


def output(client, job_id):
    return ''.join(data['text'] for name, data in client.events
                   if name == 'ss_output' and data['id'] == job_id)


def test_blackbox_script_drives_the_instrument(client):
    job = submit(client, '''
        set_ei(25)
        move_sample(1, 10)
        before = det.read()
        measure(frames=20)
        read(sample_x)   # NICOS's read prints, in the daemon
        print('x', sample_x.read(0), 'theta', sample_theta.read())
        print('speed', chopper1_speed.read(), 'unit', sample_x.unit)
        print('status', sample_x.status(0)[0], 'counts', det.read())
        sample_x.maw(2.5)
        print('done', get_ei())
    ''')
    finished = wait_finished(client, job['id'])
    text = output(client, job['id'])
    assert finished['state'] == 'done', (finished['error'], text)
    assert 'x 1.0 theta 10.0' in text
    assert 'speed 200.0 unit mm' in text
    assert 'status 200' in text   # NICOS's status.OK
    assert client.eval_value('sample_x.read(0)') == 2.5
    assert client.eval_value('sample_theta.read(0)') == 10.0
    assert client.eval_value('chopper1_speed.read(0)') == 200.0
    # measure(frames=20) at 200 frames/s counted 0.1 s on the timer
    timer = client.eval_value('det.read(0)[0]')
    assert timer == pytest.approx(0.1, abs=0.01)
    assert 'done 25.0' in text


def test_failed_call_names_the_line_and_the_daemon_message(client):
    job = submit(client, '''
        print('start')
        try:
            sample_x.move(500)
        except Exception as err:
            print('caught', type(err).__name__)
        move(sample_x, 900)
    ''')
    # Its dry run (through the bridge too) fails the same way: held back.
    held = estimated(client, job['id'])
    assert held['held'] and held['hold_reason'].startswith('dry run: LimitError')
    client.call('ss_confirm', job['id'])
    failed = wait_finished(client, job['id'])
    assert failed['state'] == 'failed'
    error = failed['error']
    assert error['type'] == 'LimitError'
    assert error['line'] == 7
    assert 'limit' in error['message']
    assert 'job.py", line 7' in error['traceback']
    assert 'caught LimitError' in output(client, job['id'])
    assert client.eval_value('sample_x.read(0)') != 900


def test_blackbox_cannot_pause_or_report_progress(client):
    job = submit(client, '''
        for name in ('pause_point', 'progress', 'step'):
            print(name, name in globals())
        try:
            status(sample_x)
            print('status ok')
        except Exception as err:
            print('status', err)
    ''')
    assert wait_finished(client, job['id'])['state'] == 'done'
    text = output(client, job['id'])
    assert 'pause_point False' in text and 'progress False' in text
    assert 'status ok' in text


@pytest.mark.parametrize('abort', ['ss_abort', 'emergency'])
def test_abort_stops_the_move_in_flight_and_kills_the_child(client, abort):
    client.call('ss_submit', {'source': 'maw(sample_x, -45)'})
    wait_until(lambda: client.eval_value('sample_x.read(0)') == -45, 60)
    # sample_x moves 100 mm/s in tests: 90 mm take almost a second
    job = submit(client, '''
        import os, subprocess, sys
        helper = subprocess.Popen([sys.executable, '-c',
                                   'import time; time.sleep(600)'])
        print('pids', os.getpid(), helper.pid, flush=True)
        maw(sample_x, 45)
    ''')
    _, event = client.wait_for(lambda n, d: n == 'ss_output'
                               and d['id'] == job['id'] and 'pids' in d['text'])
    pids = [int(p) for p in event['text'].split()[1:]]
    wait_until(lambda: client.eval_value('sample_x.read(0)') > -40, 20)
    client.call(abort)
    aborted = wait_finished(client, job['id'], timeout=20)
    assert aborted['state'] == 'aborted'
    for pid in pids:
        wait_until(lambda: gone(pid), timeout=10)
    # NICOS's status.OK: it came to a stop, short of the target
    wait_until(lambda: client.eval_value('sample_x.status(0)[0]') == 200, 5)
    stopped = client.eval_value('sample_x.read(0)')
    assert -40 < stopped < 40
    client.call('ss_release')


def test_a_child_that_exits_mid_move_leaves_nothing_moving(client):
    client.call('ss_submit', {'source': 'maw(sample_theta, -170)'})
    wait_until(lambda: client.eval_value('sample_theta.read(0)') == -170, 60)
    job = submit(client, '''
        move(sample_theta, 170)   # 17 s at test speed; not waited for
        import os
        os._exit(0)
    ''')
    wait_finished(client, job['id'])
    wait_until(lambda: client.eval_value('sample_theta.status(0)[0]') == 200,
               10)
    assert client.eval_value('sample_theta.read(0)') < 0


def test_command_above_the_owners_level_is_refused(client):
    job = submit(client, '''
        try:
            calibrate_stage()
        except Exception as err:
            print('refused', type(err).__name__, err)
        print('x', sample_x.read(0))
    ''')
    assert wait_finished(client, job['id'])['state'] == 'done'
    text = output(client, job['id'])
    assert 'refused AccessError' in text and 'admin' in text
    assert client.eval_value('sample_x.read(0)') != -33


@pytest.fixture(scope='module')
def server_args(tmp_path_factory):
    """The demo's commands plus one that needs an admin."""
    from nicos_scriptserver.instance.config import REPO
    folder = tmp_path_factory.mktemp('admincommands')
    (folder / 'service.py').write_text(textwrap.dedent('''
        """Commands for instrument scientists."""

        from nicos import session
        from nicos.commands.device import maw


        def calibrate_stage():
            """Drives the sample stage to its reference mark (admins only)."""
            session.checkAccess({'level': 'admin'})
            maw('sample_x', -33)
    '''))
    return {'command_folders': [REPO / 'commands', folder]}


def test_crafted_frames_get_errors_and_run_nothing(client, server):
    # The child's own socket: frames written by hand, as an attacker would.
    job = submit(client, '''
        import gc, json, struct
        channel = next(o for o in gc.get_objects()
                       if type(o).__name__ == 'Channel')

        def ask(frame):
            channel.sock.sendall(struct.pack('>I', len(frame)) + frame)
            reply = channel.receive()
            print('reply', reply.get('error', {}).get('type'),
                  reply.get('error', {}).get('message'), flush=True)

        def call(**request):
            base = {'id': 1, 'args': [], 'kwargs': {}}
            ask(json.dumps(dict(base, **request)).encode())

        call(call='__import__', args=['os'])
        call(call='eval', args=['1+1'])
        call(call='exec', args=['import os'])
        call(call='session')
        call(device='sample_x', method='__class__')
        call(device='sample_x', method='_setROParam', args=['speed', 0])
        call(device='sample_x', method='parameter', args=['__dict__'])
        call(device='sample_x', method='parameter', args=['_cache'])
        call(device='__builtins__', method='read')
        call(call='move', args=[{'$device': 'nope'}, 1])
        call(call='move', args=['sample_x', 3], kwargs=[])
        call(nothing=1)
        ask(b'{"id": 1, "call": "move", "args": ["sample_x", 4')
        try:   # the daemon hung up: the stream is out of step
            call(call='move', args=['sample_x', 4])
        except Exception as err:
            print('closed', type(err).__name__, flush=True)
    ''')
    finished = wait_finished(client, job['id'])
    text = output(client, job['id'])
    assert finished['state'] == 'done', (finished['error'], text)
    replies = [line for line in text.splitlines() if line.startswith('reply')]
    assert len(replies) == 13, text
    assert all('RefusedCall' in line for line in replies[:12]), text
    assert 'WireError not a JSON frame' in replies[12], text
    assert 'closed' in text
    assert client.eval_value('sample_x.read(0)') not in (3, 4)
    assert client.eval_value('sample_x.speed') > 0


def test_a_huge_frame_is_refused_unread(client):
    job = submit(client, '''
        import gc, struct
        channel = next(o for o in gc.get_objects()
                       if type(o).__name__ == 'Channel')
        channel.sock.sendall(struct.pack('>I', 1 << 30) + b'{' * 65536)
        reply = channel.receive()
        print('reply', reply['error']['type'], reply['error']['message'])
    ''')
    assert wait_finished(client, job['id'])['state'] == 'done'
    assert 'reply WireError frame of 1073741824 bytes' in \
        output(client, job['id'])


ISOLATED_LOOP = '''\
move_sample(0, 0)
for i in range(200):
    pause_point()
    step(i + 1, 200)
    sleep(0.02)
import os
print('x at end', sample_x.read(0), 'pid', os.getpid())
'''


def test_isolated_job_pauses_at_its_pause_point_and_keeps_manual_moves(
        client):
    job, = client.call('ss_submit', {'source': ISOLATED_LOOP,
                                     'isolated': True})
    assert job['isolated'] is True
    client.wait_for(lambda n, d: n == 'ss_job' and d['id'] == job['id']
                    and (d['progress'] or 0) > 0)
    client.call('ss_pause')
    paused = client.wait_for(job_event(job['id'], 'paused'))[1]
    assert paused['current_line'] == 3   # its pause_point()
    assert paused['progress_message'].startswith('step ')
    client.call('exec', 'move(sample_x, 7.5)')
    wait_until(lambda: client.eval_value('sample_x.read(0)') == 7.5)
    assert client.call('ss_job', job['id'])['state'] == 'paused'

    client.call('ss_resume')
    done = wait_finished(client, job['id'])
    assert done['state'] == 'done', done['error']
    assert done['paused_total'] > 0 and done['progress'] == 1.0
    assert client.eval_value('sample_x.read(0)') == 7.5
    text = output(client, job['id'])
    assert 'x at end 7.5' in text
    daemon_pid = client.eval_value('__import__("os").getpid()')
    assert f'pid {daemon_pid}\n' not in text


def test_isolated_jobs_share_nothing_and_copies_stay_isolated(client):
    first, = client.call('ss_submit', {'isolated': True,
                                       'source': 'shared = 1\nprint("set")'})
    # Fails only through the bridge (its dry run, through the bridge too,
    # fails first and holds it back).
    second, = client.call('ss_submit', {'isolated': True, 'source':
                                        'print("shared" in globals())\n'
                                        'if type(sample_x).__name__ == '
                                        '"Device": raise ValueError("bridged")'})
    assert wait_finished(client, first['id'])['state'] == 'done'
    assert estimated(client, second['id'])['held']
    client.call('ss_confirm', second['id'])
    failed = wait_finished(client, second['id'])
    assert failed['state'] == 'failed' and failed['error']['line'] == 2
    assert output(client, second['id']).startswith('False\n')

    client.call('ss_hold')
    requeued = client.call('ss_requeue', second['id'])
    repeated, = client.call('ss_repeat', requeued['id'], 1)
    duplicated = client.call('ss_duplicate', requeued['id'])
    for copy in (requeued, repeated, duplicated):
        assert client.call('ss_job', copy['id'])['isolated'] is True
    plain, = client.call('ss_submit', {'source': 'pass'})
    assert plain['isolated'] is False
    with pytest.raises(ServerError, match='only aware jobs'):
        client.call('ss_submit', {'kind': 'blackbox', 'source': 'pass',
                                  'isolated': True})
    client.call('ss_clear')
    client.call('ss_release')


def test_a_command_replaced_in_the_daemons_namespace_is_not_what_runs(client):
    # An aware job may leave anything in the session's namespace; a later
    # black-box job calling set_ei must get the catalog's set_ei.
    # (NICOS refuses `set_ei = eval` in a script; not this.)
    planted, = client.call('ss_submit', {'source': (
        'from nicos import session\n'
        'dict.__setitem__(session.namespace, "set_ei", eval)\n')})
    assert wait_finished(client, planted['id'])['state'] == 'done'
    job = submit(client, '''
        try:
            print('result', set_ei('__import__("os").getpid()'))
        except Exception as err:
            print('refused', type(err).__name__)
    ''')
    assert wait_finished(client, job['id'])['state'] == 'done'
    assert output(client, job['id']).startswith('refused TypeError')


def test_aborting_a_paused_isolated_job_ends_its_process(client):
    job, = client.call('ss_submit', {'source': ISOLATED_LOOP.replace(
        'move_sample(0, 0)', 'import os\nprint("pid", os.getpid(), flush=True)'),
        'isolated': True})
    _, event = client.wait_for(lambda n, d: n == 'ss_output'
                               and d['id'] == job['id'] and 'pid' in d['text'])
    pid = int(event['text'].split()[1])
    client.call('ss_pause')
    client.wait_for(job_event(job['id'], 'paused'))
    client.call('ss_abort')
    assert wait_finished(client, job['id'], timeout=20)['state'] == 'aborted'
    wait_until(lambda: gone(pid), timeout=10)
    client.call('ss_release')


def test_stock_clients_see_the_line_of_the_call_in_flight(client):
    job = submit(client, '''
        x = 1
        sample_x.read(0)
        sleep(0.3)
    ''')
    assert wait_finished(client, job['id'])['state'] == 'done'
    lines = [data[1] for name, data in client.events
             if name == 'status' and data[0] >= 0]
    assert 4 in lines   # NICOS's sleep, where the job spent its time
