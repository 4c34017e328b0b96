"""The job commands a user types at a NICOS console, in a real daemon.

A console sends a line as a script (``start``), or, while a job runs, for
execution at once (``exec``); both are used here as the stock console
client uses them.
"""

import os
import subprocess
import sys

import pytest

from nicos_scriptserver.instance.config import REPO

pytestmark = pytest.mark.integration

NICOS_CLIENT = REPO / '.venv' / 'nicos-root' / 'nicos-3.12.2' / 'bin' / 'nicos-client'

LOOP = ('for i in range(400):\n'
        '    pause_point()\n'
        '    progress((i + 1) / 400, f"step {i + 1}")\n'
        '    sleep(0.02)\n')


def console(client, line):
    """Execute *line* at once, as a console's "execute now"; return what
    it printed."""
    mark = len(client.events)
    client.call('exec', line)
    # Output (and errors) of the line come as messages, in order: a marker
    # printed after it says that all of it has arrived.
    end = f'-- end of output {mark} --'
    client.call('exec', f'printinfo({end!r})')
    client.wait_for(lambda n, d: n == 'message' and end in d[3], 10, mark)
    return ''.join(d[3] for n, d in client.events[mark:] if n == 'message')


def abort_at_console(client):
    """Type AbortJob() at a console. No marker follows it: while the job
    stops, the stock daemon refuses any further "execute now" line."""
    client.call('exec', 'AbortJob()')


def waiting(client):
    return [(job['id'], job['kind'], job['name'], job['state'])
            for job in client.queue()['waiting']]


def job_state(client, job_id, *states, timeout=60):
    return client.wait_for(lambda n, d: n == 'ss_job' and d['id'] == job_id
                           and d['state'] in states, timeout)[1]


def test_submit_list_and_rearrange_from_the_console(server, client, tmp_path):
    client.call('ss_hold')
    script = tmp_path / 'scan.py'
    script.write_text('set_temperature(250)\n')
    out = console(client, "SubmitCall('set_ei', energy=25)")
    assert 'Queued job' in out
    console(client, f"SubmitScript({str(script)!r}, name='scan')")
    console(client, f"SubmitScript({str(script)!r}, blackbox=True)")
    (call, kind_a, name_a, _), (scan, kind_b, _, _), (box, kind_c, name_c, _) = \
        waiting(client)
    console(client, f"SubmitScript({str(script)!r}, isolated=True)")
    isolated = waiting(client)[-1][0]
    assert client.call('ss_job', isolated)['isolated'] is True
    assert client.call('ss_job', scan)['isolated'] is False
    console(client, f'RemoveJob({isolated})')
    assert (kind_a, name_a, kind_b, kind_c, name_c) == \
        ('generated', 'set_ei', 'aware', 'blackbox', 'scan.py')
    assert client.call('ss_job', call)['calls'] == [
        {'command': 'set_ei', 'args': {'energy': 25}}]

    console(client, f"MoveJob({box}, 'top')")
    console(client, f'SkipJob({scan})')
    out = console(client, f'RepeatJob({call}, 2)')
    copies = [job_id for job_id, *_ in waiting(client)][2:4]
    assert [job_id for job_id, *_ in waiting(client)] == [box, call, *copies, scan]
    assert f'Job {call} repeated as {copies[0]}, {copies[1]}' in out
    console(client, f'RemoveJob({copies[1]})')
    console(client, f'UnskipJob({scan})')
    assert waiting(client) == [(box, 'blackbox', 'scan.py', 'queued'),
                               (call, 'generated', 'set_ei', 'queued'),
                               (copies[0], 'generated', 'set_ei', 'queued'),
                               (scan, 'aware', 'scan', 'queued')]
    listing = console(client, 'ListJobs()')
    assert 'No job is running.' in listing
    for job_id in (box, call, copies[0], scan):
        assert f' {job_id} ' in listing
    assert 'The queue is held' in listing


def test_bad_console_input_gets_a_clear_message_and_changes_nothing(server, client):
    client.call('ss_hold')
    console(client, "SubmitCall('set_ei', energy=25)")
    before = waiting(client)
    for line, expected in (
            ('SkipJob(99999)', 'no job 99999'),
            ("MoveJob('x', 0)", "'x' is not a job id"),
            (f'MoveJob({before[0][0]}, 7)', 'cannot move job'),
            ("SubmitCall('set_ei', energy=1e9)", 'above its maximum'),
            ("SubmitCall('no_such_command')", 'no_such_command'),
            ("SubmitScript('/nonexistent/file.py')", 'cannot read script'),
            ('ResumeJob()', 'no job is running')):
        assert expected in console(client, line), line
    assert waiting(client) == before


def test_pause_resume_abort_and_requeue_while_a_job_runs(server, client):
    job, = client.call('ss_submit', {'source': LOOP, 'name': 'loop'})
    job_state(client, job['id'], 'running')
    client.wait_for(lambda n, d: n == 'ss_job' and d['id'] == job['id']
                    and (d['progress'] or 0) > 0, 30)
    listing = console(client, 'ListJobs()')
    assert f"Running: job {job['id']} 'loop'" in listing and 'expected end' in listing
    console(client, 'PauseJob()')
    job_state(client, job['id'], 'paused')
    console(client, 'ResumeJob()')
    job_state(client, job['id'], 'running')
    nxt, = client.call('ss_submit', {'source': 'print("next")'})
    abort_at_console(client)
    job_state(client, job['id'], 'aborted')
    queue = client.queue()
    assert queue['held'] and queue['protected'] == [nxt['id']]
    assert f"held for safety (job aborted by user): jobs {nxt['id']} and" in \
        console(client, 'ListJobs()')
    finished = console(client, 'ListFinishedJobs(3)')
    assert f"{job['id']}" in finished and 'aborted' in finished
    console(client, f"RequeueJob({job['id']})")
    waiting, again = client.queue()['waiting']
    assert waiting['id'] == nxt['id'] and again['requeued_from'] == job['id']
    console(client, 'ReleaseQueue()')
    job_state(client, again['id'], 'running')
    abort_at_console(client)
    job_state(client, again['id'], 'aborted')


def test_a_held_back_job_is_listed_and_confirmed_at_the_console(server, client):
    job, = client.call('ss_submit', {'name': 'hot', 'source':
                                     'set_temperature(1000)\n'})
    client.wait_for(lambda n, d: n == 'ss_job' and d['id'] == job['id']
                    and d['held'], 30)
    assert 'queued (held: dry run: LimitError' in console(client, 'ListJobs()')
    assert 'no longer held back' in console(client, f"ConfirmJob({job['id']})")
    failed = job_state(client, job['id'], 'failed')
    assert failed['started_at'] and 'limit' in failed['error']['message']
    assert 'is not a job id' in console(client, "ConfirmJob('x')")


def test_a_console_line_queues_a_job_that_then_runs(server, client):
    client.call('start', '', "SubmitCall('set_ei', energy=20)")
    submitted = client.wait_for(lambda n, d: n == 'ss_job' and d['kind'] == 'generated'
                                and d['state'] == 'queued', 30)[1]
    assert job_state(client, submitted['id'], 'done', 'failed')['state'] == 'done'


def test_the_stock_console_client_lists_and_submits(server, client, tmp_path):
    env = dict(os.environ, INSTRUMENT='nicos_scriptserver.demo', HOME=str(tmp_path))
    login = f"user:{server.passwords['user']}@127.0.0.1:{server.instance.daemon_port}"
    result = subprocess.run(
        [sys.executable, str(NICOS_CLIENT), login, '-c',
         "SubmitCall('set_ei', energy=30); ListJobs()"],
        env=env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    # The line ran as the current job; the call waits behind it.
    assert 'Queued job' in result.stdout and 'Running: job' in result.stdout
    assert '| set_ei' in result.stdout or ' set_ei ' in result.stdout
    submitted = client.wait_for(lambda n, d: n == 'ss_job' and d['kind'] == 'generated',
                                30)[1]
    assert job_state(client, submitted['id'], 'done', 'failed')['state'] == 'done'
    assert client.call('ss_job', submitted['id'])['calls'][0]['args'] == {'energy': 30}
