"""Dry runs, estimates and the queue's timeline, on a real daemon."""

import time

import pytest

from nicos_scriptserver.clients.daemonclient import ServerError

pytestmark = pytest.mark.integration

FINAL = ('ok', 'failed', 'not possible')
DRY_RUN_LIMIT = 8.0


@pytest.fixture(scope='module')
def server_args():
    return {'dry_run_limit': DRY_RUN_LIMIT}


def job_changed(job_id, condition):
    return lambda name, data: (name == 'ss_job' and data['id'] == job_id
                               and condition(data))


def estimated(client, job_id, timeout=30.0):
    """The job as soon as its (latest) dry run has finished."""
    deadline = time.monotonic() + timeout
    while True:
        job = client.call('ss_job', job_id)
        if (job['estimate'] or {}).get('state') in FINAL:
            return job
        assert time.monotonic() < deadline, f'no estimate for job {job_id}'
        time.sleep(0.05)


def finished(client, job_id, timeout=60.0):
    return client.wait_for(job_changed(
        job_id, lambda d: d['state'] in ('done', 'failed', 'aborted')),
        timeout)[1]


def submit(client, source, **spec):
    return client.call('ss_submit', dict(spec, source=source))[0]


def test_estimate_of_a_ramp_and_frames_is_within_ten_percent(client):
    finished(client, submit(client, 'set_temperature(295)')['id'])
    # 80 K at 40 K/s, then 1600 frames at 200 Hz: 2 s + 8 s at timescale 20.
    job = submit(client, 'set_temperature(215)\nmeasure(frames=1600)\n')
    report = estimated(client, job['id'])['estimate']
    assert report['state'] == 'ok'
    assert report['seconds'] == pytest.approx(10.0, rel=0.01)
    assert report['sources'] == {'dry run': pytest.approx(2.0, rel=0.01),
                                 'estimate function': pytest.approx(8.0)}
    assert report['lines'][1]['functions'] == ['estimate_measure']
    assert report['devices']['T_sample']['min'] == '215.00'
    done = finished(client, job['id'])
    took = done['finished_at'] - done['started_at']
    assert done['state'] == 'done'
    assert took == pytest.approx(report['seconds'], rel=0.10)


def test_limit_violation_is_flagged_and_held_before_it_runs(client):
    x_before = client.eval_value('sample_x.read(0)')
    assert x_before != 13
    job = submit(client, 'move_sample(13, 2)\nset_temperature(1000)\n')
    after = submit(client, 'print("after")')
    held = estimated(client, job['id'])
    assert held['held'] and held['state'] == 'queued' and not held['started_at']
    problem, = [p for p in held['estimate']['problems'] if p['kind'] != 'warning']
    assert problem['kind'] == 'limit' and problem['line'] == 2
    assert 'T_sample' in problem['message'] and '1000' in problem['message']
    assert held['hold_reason'].startswith('dry run: LimitError')
    # The good script behind it is not held; the queue passes over the held
    # one and runs it; nothing of the held one ran.
    good = estimated(client, after['id'])
    assert good['estimate']['state'] == 'ok' and not good['held']
    assert finished(client, after['id'])['state'] == 'done'
    assert client.call('ss_job', job['id'])['state'] == 'queued'
    assert client.eval_value('sample_x.read(0)') == x_before
    listing = client.queue()['waiting']
    assert listing[0]['estimate']['state'] == 'failed'
    assert 'T_sample' in listing[0]['estimate']['problem']
    # Editing it gives it a new dry run; one that passes releases it.
    client.call('ss_edit', job['id'], {'source': 'set_temperature(300)'})
    fixed = estimated(client, job['id'])
    assert fixed['estimate']['state'] == 'ok'
    assert not fixed['held'] and not fixed['held_by_dry_run']
    assert finished(client, job['id'])['state'] == 'done'


def test_moving_a_job_moves_the_predicted_starts(client):
    blocker = submit(client, 'pause_point()\nsleep(60)')
    client.wait_for(job_changed(blocker['id'], lambda d: d['state'] == 'running'))
    client.call('ss_pause')
    client.wait_for(job_changed(blocker['id'], lambda d: d['state'] == 'paused'))
    first = submit(client, 'sleep(20)')
    second = submit(client, 'sleep(30)')
    assert estimated(client, first['id'])['estimate']['seconds'] == 20
    assert estimated(client, second['id'])['estimate']['seconds'] == 30

    def starts():
        timeline = client.call('ss_timeline')
        end = timeline['current']['expected_end']
        return {item['id']: item['expected_start'] - end
                for item in timeline['jobs']}

    assert starts() == {first['id']: 0, second['id']: pytest.approx(20)}
    mark = len(client.events)
    client.call('ss_move', second['id'], 'top')
    assert starts() == {second['id']: 0, first['id']: pytest.approx(30)}
    # Clients are told as well.
    _, event = client.wait_for(lambda n, d: n == 'ss_timeline' and
                               [j['id'] for j in d['jobs']] ==
                               [second['id'], first['id']], 5, mark)
    assert [j['estimate'] for j in event['jobs']] == [30, 20]
    client.call('ss_abort')


def test_elapsed_counts_pauses_and_expected_end_moves_while_paused(client):
    job = submit(client, 'for i in range(100):\n    pause_point()\n'
                         '    progress((i + 1) / 100)\n    sleep(0.05)\n')
    assert estimated(client, job['id'])['estimate']['seconds'] == \
        pytest.approx(5.0)
    client.wait_for(job_changed(job['id'], lambda d: (d['progress'] or 0) > 0.1))
    client.call('ss_pause')
    client.wait_for(job_changed(job['id'], lambda d: d['state'] == 'paused'))
    before = client.call('ss_timeline')['current']
    time.sleep(1.0)   # the pause itself is what is measured
    during = client.call('ss_timeline')['current']
    assert during['elapsed'] - before['elapsed'] == pytest.approx(1.0, abs=0.2)
    assert during['active'] == pytest.approx(before['active'], abs=0.01)
    assert during['remaining'] == pytest.approx(before['remaining'], abs=0.01)
    assert during['expected_end'] - before['expected_end'] == \
        pytest.approx(1.0, abs=0.2)
    client.call('ss_resume')
    done = finished(client, job['id'])
    assert done['paused_total'] >= 1.0
    # The wall time holds the pause besides the job's own 5 s (an upper
    # bound would only measure how busy the machine is).
    took = done['finished_at'] - done['started_at']
    assert took >= 0.95 * 5.0 + done['paused_total']


def test_the_timeline_is_sent_again_while_a_job_is_paused(client):
    job = submit(client, 'for i in range(400):\n    pause_point()\n'
                         '    sleep(0.05)\n')
    later = submit(client, 'pass\n')
    estimated(client, later['id'])
    client.wait_for(job_changed(job['id'], lambda d: d['state'] == 'running'))
    client.call('ss_pause')
    client.wait_for(job_changed(job['id'], lambda d: d['state'] == 'paused'))
    mark = len(client.events)

    def later_start(data):
        return {j['id']: j['expected_start'] for j in data['jobs']}.get(
            later['id'])

    # Nothing changes in the queue, yet clients are told the new times.
    _, first = client.wait_for(lambda n, d: n == 'ss_timeline' and
                               later_start(d) is not None, 5, mark)
    _, second = client.wait_for(
        lambda n, d: n == 'ss_timeline' and later_start(d) is not None and
        d['now'] > first['now'], 5, mark)
    assert later_start(second) - later_start(first) == \
        pytest.approx(second['now'] - first['now'], abs=0.05)
    client.call('ss_abort')


def test_explicit_dry_run_reports_without_queueing(client, server):
    report = client.call('ss_dryrun', {'source': 'set_ei(20)\nmeasure(seconds=3)'})
    assert report['state'] == 'ok' and report['seconds'] > 3
    assert set(report['devices']) >= {'chopper1_speed', 'chopper1_phase'}
    assert client.queue()['waiting'] == []
    generated = client.call('ss_dryrun', {'kind': 'generated', 'calls': [
        {'command': 'set_temperature', 'args': {'kelvin': 310}}]})
    assert generated['state'] == 'ok' and generated['lines'][0]['line'] == 1
    for bad in (400, 'hot'):
        with pytest.raises(ServerError, match='kelvin'):
            client.call('ss_dryrun', {'kind': 'generated', 'calls': [
                {'command': 'set_temperature', 'args': {'kelvin': bad}}]})
    with pytest.raises(ServerError, match='line 1'):
        client.call('ss_dryrun', {'source': 'measure(frames=)'})
    with pytest.raises(ServerError, match='guest'):
        server.client('guest').call('ss_dryrun', {'source': 'get_ei()'})


def test_endless_dry_run_is_cut_off_and_a_crashed_one_changes_nothing(client):
    waiting = submit(client, 'pause_point()\nsleep(60)')
    client.wait_for(job_changed(waiting['id'], lambda d: d['state'] == 'running'))
    started = time.monotonic()
    report = client.call('ss_dryrun', {'source': 'while True:\n    x = 1\n'})
    assert time.monotonic() - started < DRY_RUN_LIMIT + 5
    assert report['state'] == 'failed'
    assert report['problems'][-1]['kind'] == 'timeout'
    assert f'{DRY_RUN_LIMIT:g} s' in report['problems'][-1]['message']

    queue_before = client.call('ss_queue')
    report = client.call('ss_dryrun', {'source': 'import os\n'
                                       'os.kill(os.getpid(), 9)\n'})
    assert report['state'] == 'failed'
    assert report['problems'][-1]['kind'] == 'crash'
    # The daemon, its current job and the queue are untouched.
    assert client.call('ss_job', waiting['id'])['state'] == 'running'
    assert client.eval_value('1 + 1') == 2
    queue_after = client.call('ss_queue')
    assert queue_after['waiting'] == queue_before['waiting']
    assert queue_after['held'] == queue_before['held']
    client.call('ss_abort')


def test_a_copy_made_while_the_dry_run_runs_gets_its_own(client):
    # Found by the soak: a copy inherited the "running" estimate of its
    # original, no dry run was ever started for it, and under the 'hold'
    # policy it blocked the queue for good.
    client.call('ss_hold')
    job = submit(client, 'measure(seconds=1)')
    client.wait_for(job_changed(job['id'], lambda d: (d['estimate'] or {}).get(
        'state') == 'running'))
    copy, = client.call('ss_repeat', job['id'], 1)
    assert copy['estimate']['state'] == 'running'
    assert estimated(client, copy['id'])['estimate']['state'] == 'ok'
    client.call('ss_release')
    assert finished(client, job['id'])['state'] == 'done'
    assert finished(client, copy['id'])['state'] == 'done'


def test_the_stock_simulate_command_reports_the_failing_line(server):
    # NICOS's own dry run, as the stock GUI's editor starts it: it runs
    # over a private channel and still sends the traceback with the line.
    client = server.client('user')
    start = len(client.events)
    client.call('simulate', 'stock', 'printinfo("first")\n1/0\n', 'stock-sim')
    client.wait_for(lambda name, data: name == 'simresult' and data[2] == 'stock-sim',
                    timeout=60, start=start)
    failures = [data for name, data in client.events[start:]
                if name == 'simmessage' and data[4]]
    assert failures, 'no message with a traceback'
    assert 'ZeroDivisionError' in failures[0][4]
    assert 'File "<script>", line 2' in failures[0][4]


FORGER = '''import os, json
# Reads what a dry run's stdin holds, and answers in the fork server's
# name for every dry run it could guess.
print(os.read(0, 100))
for number in range(1, 200):
    os.write(1, json.dumps({'ended': number, 'code': 0}).encode() + b'\\n')
'''


def test_a_script_cannot_end_other_dry_runs_through_its_stdout(client):
    # Each dry run is forked by one server that reads requests on its
    # stdin and answers on its stdout; the script must reach neither.
    client.call('ss_hold')
    try:
        forger = submit(client, FORGER)
        after = [submit(client, 'set_temperature(290)') for _ in range(3)]
        assert estimated(client, forger['id'])['estimate']['state'] == 'ok'
        for job in after:
            report = estimated(client, job['id'])['estimate']
            assert report['state'] == 'ok', report
            assert report['devices']['T_sample']['max'] == '290.00'
    finally:
        client.call('ss_clear')
        client.call('ss_release')
