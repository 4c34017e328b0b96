"""The unified job queue in a real daemon, seen by real clients."""

import contextlib
import os
import signal
import threading
import time

import psutil
import pytest

from nicos.clients.base import ConnectionData, NicosClient

from nicos_scriptserver.clients.daemonclient import ServerError
from waiting import wait_until

pytestmark = pytest.mark.integration

LOOP = ('for i in range({n}):\n'
        '    pause_point()\n'
        '    progress((i + 1) / {n}, f"step {{i + 1}} of {n}")\n'
        '    sleep({dt})\n')


def job_event(job_id, *states):
    return lambda name, data: (name == 'ss_job' and data['id'] == job_id
                               and data['state'] in states)


def wait_finished(client, job_id, timeout=60.0):
    return client.wait_for(job_event(job_id, 'done', 'failed', 'aborted'),
                           timeout)[1]


def test_batch_of_generated_jobs_runs_in_order_with_progress(client):
    calls = [[{'command': 'move_sample', 'args': {'x': float(x), 'theta': 0.0}}]
             for x in (1, 2, 3)]
    jobs = client.call('ss_submit', [{'kind': 'generated', 'calls': c}
                                     for c in calls]
                       + [{'source': LOOP.format(n=4, dt=0.01)}])
    assert len({job['batch_id'] for job in jobs}) == 1
    assert [job['batch_index'] for job in jobs] == [0, 1, 2, 3]
    assert jobs[0]['source'] == "move_sample(x=1.0, theta=0.0)\n"
    assert client.call('ss_job', jobs[0]['id'])['call_lines'] == \
        ['move_sample(x=1.0 mm, theta=0.0 deg)']
    last = wait_finished(client, jobs[-1]['id'])
    assert last['state'] == 'done' and last['progress'] == 1.0
    started = [data['id'] for name, data in client.events
               if name == 'ss_job' and data['state'] == 'running']
    assert list(dict.fromkeys(started)) == [job['id'] for job in jobs]
    progress = [data['progress'] for name, data in client.events
                if name == 'ss_job' and data['id'] == jobs[-1]['id']
                and data['state'] == 'running' and data['progress']]
    assert progress == [0.25, 0.5, 0.75, 1.0]
    assert client.eval_value('sample_x.read(0)') == 3.0


def test_a_commands_progress_counts_within_the_jobs_step(client):
    # measure() reports its blocks; inside step 2 of 5 they are 20..40%.
    job, = client.call('ss_submit', {'source': 'step(2, 5, "point 2 of 5")\n'
                                               'measure(seconds=40)\n'
                                               'step(3, 5, "point 3 of 5")\n'})
    wait_finished(client, job['id'])
    reports = [(data['progress'], data['progress_message'])
               for name, data in client.events
               if name == 'ss_job' and data['id'] == job['id']
               and data['state'] == 'running' and data['progress_message']]
    assert reports[0] == (0.2, 'point 2 of 5')
    assert reports[-1] == (pytest.approx(0.4), 'point 3 of 5')
    blocks = reports[1:-1]
    assert blocks[0] == (pytest.approx(0.21), 'point 2 of 5 · block 1 of 20')
    assert blocks[-1][1] == 'point 2 of 5'  # measure() returned
    fractions = [fraction for fraction, _ in reports]
    assert fractions == sorted(fractions)


def test_a_scan_reports_its_points_with_the_measurements_within(client):
    # scan_temperature calls measure() of its own file: a scope too.
    job, = client.call('ss_submit', {'kind': 'generated', 'calls': [
        {'command': 'scan_temperature',
         'args': {'start': 295, 'stop': 296, 'step': 1, 'frames': 400}}]})
    wait_finished(client, job['id'])
    messages = [data['progress_message'] for name, data in client.events
                if name == 'ss_job' and data['id'] == job['id']
                and data['state'] == 'running' and data['progress_message']]
    # The job's own step (its one call), then the scan's points within it.
    call = ('step 1 of 1: scan_temperature(start=295 K, stop=296 K, step=1 K, '
            'frames=400)')
    assert messages[0] == call
    assert f'{call} · point 1 of 2' in messages
    assert any(m.startswith(f'{call} · point 1 of 2 · block 1 of ')
               for m in messages)
    assert any(m.startswith(f'{call} · point 2 of 2 · block ')
               for m in messages)


def test_generated_jobs_report_each_call_as_a_step(client):
    calls = [[{'command': 'move_sample', 'args': {'x': float(x), 'theta': 0.0}},
              {'command': 'get_ei', 'args': {}}] for x in (4, 5)]
    mark = len(client.events)
    jobs = client.call('ss_submit', [{'kind': 'generated', 'calls': c}
                                     for c in calls])
    wait_finished(client, jobs[-1]['id'])
    for number, (job, x) in enumerate(zip(jobs, (4, 5)), 1):
        reports = [(d['progress'], d['progress_message'])
                   for n, d in client.events[mark:] if n == 'ss_job' and
                   d['id'] == job['id'] and d['state'] == 'running' and
                   d['progress_message']]
        assert list(dict.fromkeys(reports)) == [
            (0.0, f'job {number} of 2: step 1 of 2: '
                  f'move_sample(x={x}.0 mm, theta=0.0 deg)'),
            (0.5, f'job {number} of 2: step 2 of 2: get_ei()')]


def test_the_line_of_a_job_in_a_function_of_its_script_is_the_functions(client):
    """Inside a function the script defines, the job is at that
    function's line (the daemon finds it when asked: the C controller
    reports the script's top-level lines only)."""
    job, = client.call('ss_submit', {'source': 'def points(n):\n'
                                               '    for i in range(n):\n'
                                               '        pause_point()\n'
                                               '        sleep(0.02)\n'
                                               'points(1000)\n'})
    inside = (2, 3, 4)   # not line 5, which called points()
    client.wait_for(job_event(job['id'], 'running'))
    wait_until(lambda: client.call('ss_job', job['id'])['current_line'] in inside)
    client.call('ss_pause')
    paused = client.wait_for(job_event(job['id'], 'paused'))[1]
    # After whichever line of the loop was running (as a top-level loop).
    assert paused['current_line'] in inside
    client.call('ss_abort')
    client.wait_for(job_event(job['id'], 'aborted'))


def test_pause_keeps_manual_moves_and_resume_continues(client):
    job, = client.call('ss_submit', {'source': 'move_sample(0, 0)\n'
                                     + LOOP.format(n=200, dt=0.02)
                                     + 'print("x at end", sample_x.read(0))'})
    client.wait_for(lambda n, d: n == 'ss_job' and d['id'] == job['id']
                    and (d['progress'] or 0) > 0)
    client.call('ss_pause')
    paused = client.wait_for(job_event(job['id'], 'paused'))[1]
    # pause_point() (line 3) or NICOS's sleep (line 5), which pauses too
    assert paused['current_line'] in (3, 5)
    with pytest.raises(ServerError, match='already paused'):
        client.call('ss_pause')
    # While paused nothing else starts, and devices may be moved by hand.
    other, = client.call('ss_submit', {'source': 'print("other")'})
    client.call('exec', 'move(sample_x, 7.5)')
    wait_until(lambda: client.eval_value('sample_x.read(0)') == 7.5)
    assert client.call('ss_job', other['id'])['state'] == 'queued'
    assert client.call('ss_job', job['id'])['state'] == 'paused'

    client.call('ss_resume')
    done = wait_finished(client, job['id'])
    assert done['state'] == 'done'
    assert done['paused_total'] > 0
    assert done['progress'] > paused['progress']
    assert client.eval_value('sample_x.read(0)') == 7.5
    assert wait_finished(client, other['id'])['state'] == 'done'


def test_abort_then_edit_and_requeue_starts_from_the_beginning(client):
    job, = client.call('ss_submit', {'source': 'print("first line ran")\n'
                                     + LOOP.format(n=500, dt=0.02)})
    waiting, = client.call('ss_submit', {'source': 'print("still waiting")'})
    client.wait_for(lambda n, d: n == 'ss_job' and d['id'] == job['id']
                    and (d['progress'] or 0) > 0)
    client.call('ss_abort')
    aborted = wait_finished(client, job['id'])
    assert aborted['state'] == 'aborted'
    queue = client.queue()
    assert queue['held'] and 'aborted' in queue['hold_reason']
    assert [j['id'] for j in queue['waiting']] == [waiting['id']]

    with pytest.raises(ServerError, match='has finished|aborted'):
        client.call('ss_edit', job['id'], {'source': 'print(1)'})
    mark = len(client.events)
    new = client.call('ss_requeue', job['id'],
                      {'source': 'print("first line ran")\n'
                                 + LOOP.format(n=3, dt=0.01)}, 0)
    assert new['requeued_from'] == job['id'] and new['id'] != job['id']
    client.call('ss_release')
    assert wait_finished(client, new['id'])['state'] == 'done'
    output = [d[3] for n, d in client.events[mark:] if n == 'message']
    assert 'first line ran\n' in output
    assert client.call('ss_job', job['id'])['state'] == 'aborted'
    assert wait_finished(client, waiting['id'])['state'] == 'done'


def test_queue_edits_are_seen_by_a_second_client(server, client):
    client.call('ss_hold')
    a, b, c = client.call('ss_submit', [{'source': f'print({i})'} for i in range(3)])
    watcher = server.client('guest')
    mark = len(watcher.events)

    client.call('ss_skip', b['id'])
    client.call('ss_move', c['id'], 'top')
    copies = client.call('ss_repeat', a['id'], 2)
    dup = client.call('ss_duplicate', c['id'])

    order = [c['id'], dup['id'], a['id'], copies[0]['id'], copies[1]['id'], b['id']]
    summary = watcher.wait_for(lambda n, d: n == 'ss_queue' and d['order'] == order,
                               start=mark)[1]
    assert summary['held'] is True
    waiting = watcher.queue()['waiting']
    assert [j['id'] for j in waiting] == order
    assert {j['id']: j['state'] for j in waiting}[b['id']] == 'skipped'
    # A guest watches but cannot change the queue.
    with pytest.raises(ServerError, match='guest logins can only watch'):
        watcher.call('ss_move', a['id'], 'top')
    client.call('ss_clear')


def queue_without_estimates(client):
    """The queue as a refused change must leave it.

    The jobs' dry runs go on meanwhile: a changed estimate, and the event
    number it takes, are not a change.
    """
    queue = client.queue()
    del queue['seq']
    queue['waiting'] = [{key: value for key, value in job.items()
                         if key != 'estimate'} for job in queue['waiting']]
    return queue


def test_two_clients_edit_one_job_the_later_gets_a_conflict(server, client):
    client.call('ss_hold')
    job, other = client.call('ss_submit', [{'source': 'print(1)', 'name': 'a'},
                                           {'source': 'print(2)', 'name': 'b'}])
    admin = server.client('admin')
    seen_by_admin = admin.call('ss_job', job['id'])['version']
    seen_by_user = [row['version'] for row in client.queue()['waiting']
                    if row['id'] == job['id']][0]
    assert seen_by_admin == seen_by_user == 1

    edited = admin.call('ss_edit', job['id'], {'source': 'print(10)'},
                        seen_by_admin)
    assert (edited['version'], edited['last_change']) == \
        (2, {'by': 'admin', 'what': 'edited its script'})
    before = queue_without_estimates(client)
    for command, args in [('ss_edit', [{'source': 'print(99)'}]),
                          ('ss_move', ['bottom']), ('ss_skip', []),
                          ('ss_repeat', [1]), ('ss_remove', [])]:
        with pytest.raises(ServerError, match=(
                rf"{command}: job {job['id']} was changed after you saw it "
                r'\(version 1\): admin edited its script \(now version 2\); '
                'nothing was changed')):
            client.call(command, job['id'], *args, seen_by_user)
    assert queue_without_estimates(client) == before
    assert client.call('ss_job', job['id'])['source'] == 'print(10)'

    # With the version it sees now the change applies; a stock client,
    # which sends no version, edits as it always did.
    client.call('ss_move', job['id'], 'bottom', 2)
    assert [row['id'] for row in client.queue()['waiting']] == \
        [other['id'], job['id']]
    with stock_login(server) as stock:
        assert stock.tell('update', 'print(11)', 'fix', str(job['id']))
    assert client.call('ss_job', job['id'])['source'] == 'print(11)'
    client.call('ss_clear')


def listing(reply):
    """What a client shows of the queue: the hold, the current job (its
    live line aside) and the waiting jobs in order."""
    current = dict(reply['current'] or {}, current_line=None)
    return (reply['held'], reply['hold_reason'], current,
            [dict(job) for job in reply['waiting']])


def test_a_client_that_was_away_catches_up_with_the_changes_on_login(
        server, client):
    client.call('ss_hold')
    a, b, c = client.call('ss_submit', [{'source': f'print({i})'}
                                         for i in range(3)])
    watcher = server.client('guest')
    seen = watcher.sync_queue()
    watcher.disconnect()

    client.call('ss_edit', a['id'], {'name': 'renamed'})
    client.call('ss_move', c['id'], 'top')
    client.call('ss_remove', b['id'])
    client.call('ss_submit', {'source': 'print(3)'})
    client.call('ss_skip', a['id'])

    watcher.connect(ConnectionData(server.instance.host,
                                   server.instance.daemon_port, 'guest',
                                   server.passwords['guest']))
    view = watcher.queue_view
    now = client.queue()
    assert view.seq == now['seq'] == seen['seq'] + 5
    assert listing(dict(view.listing(), waiting=view.waiting())) == \
        listing(now)
    assert {job['id']: job['name'] for job in view.waiting()}[a['id']] == \
        'renamed'
    client.call('ss_clear')


def test_a_client_that_sees_a_jump_in_the_change_numbers_resyncs(
        server, client):
    client.call('ss_hold')
    watcher = server.client('guest')
    watcher.sync_queue()
    watched = ['ss_queue', 'ss_job']
    watcher.call('eventmask', watched)  # as if these events were lost
    # NICOS applies a mask when it sends an event, not when it queues it:
    # the stock 'request' of the last job, queued after the ss_* events
    # of the same change, shows that they were dropped.
    watcher.call('eventunmask', ['request'])
    mark = len(watcher.events)
    x, y = client.call('ss_submit', [{'source': 'print(1)'},
                                     {'source': 'print(2)'}])
    watcher.wait_for(lambda name, data: name == 'request' and
                     data['reqid'] == str(y['id']), 10, mark)
    watcher.call('eventmask', ['request'])
    watcher.call('eventunmask', watched)
    client.call('ss_move', y['id'], 'top')
    seq = client.call('ss_queue')['seq']
    wait_until(lambda: watcher.queue_view.seq == seq, timeout=10)
    assert [job['id'] for job in watcher.queue_view.waiting()] == \
        [y['id'], x['id']]
    client.call('ss_clear')


def test_a_stock_update_of_a_generated_job_keeps_its_description_true(server, client):
    client.call('ss_hold')
    job, = client.call('ss_submit', {'kind': 'generated', 'calls': [
        {'command': 'set_ei', 'args': {'energy': 25}}]})
    with stock_login(server) as stock:
        assert stock.tell('update', 'set_ei(30)\nmove_sample(1, 2)\n', '',
                          str(job['id']))
        edited = client.call('ss_job', job['id'])
        assert edited['kind'] == 'generated'
        assert edited['call_lines'] == ['set_ei(energy=30 meV)',
                                        'move_sample(x=1 mm, theta=2 deg)']
        mark = len(client.events)
        assert stock.tell('update', 'for e in (5, 10):\n    set_ei(e)\n', '',
                          str(job['id']))
    edited = client.call('ss_job', job['id'])
    assert (edited['kind'], edited['calls']) == ('aware', None)
    assert 'which made it an aware job: its script is no longer only ' \
        'command calls (line 1 is not a command call)' in \
        edited['last_change']['what']
    client.wait_for(lambda n, d: n == 'message' and
                    f"Job {job['id']} is now an aware job" in d[3], 10, mark)
    client.call('ss_clear')


def test_the_audit_trail_names_who_changed_a_job_from_where_and_why(server, client):
    client.call('ss_hold')
    job, other = client.call('ss_submit', [{'source': 'print(1)'},
                                           {'source': 'print(2)'}])
    admin = server.client('admin')
    admin.call('ss_move', job['id'], 'bottom')
    with stock_login(server) as stock:
        assert stock.tell('update', 'print(3)', 'wrong number', str(job['id']))
    trail = client.call('ss_audit', 10, job['id'])
    assert [(e['who'], e['action'], e['why']) for e in trail] == [
        ('user', 'edit', 'wrong number'),
        ('admin', 'move', f"job {job['id']}: moved it to position 1"),
        ('user', 'submit', '')]
    assert trail[0]['client'].startswith('update from ')
    assert trail[1]['client'].startswith('ss_move from ')
    assert trail[2]['jobs'] == [job['id'], other['id']]
    assert trail[0]['at'] >= trail[1]['at'] >= trail[2]['at']
    with pytest.raises(ServerError, match='guest logins can only watch'):
        server.client('guest').call('ss_audit')
    client.call('ss_clear')


def test_bad_requests_get_clear_errors_and_change_nothing(client):
    client.call('ss_hold')
    job, = client.call('ss_submit', {'source': 'print(1)'})

    before = queue_without_estimates(client)
    cases = [
        (('ss_submit', {'source': 'if x:\nprint(1)\n'}), 'syntax error at line 2'),
        (('ss_submit', {'source': 'x' * (600 * 1024)}), 'larger than the limit'),
        (('ss_submit', {'kind': 'magic', 'source': 'print(1)'}), 'kind'),
        (('ss_submit', 'print(1)'), 'must be a dict'),
        (('ss_move', 9999, 'top'), 'no job 9999'),
        (('ss_move', job['id'], 5), 'cannot move job .* to position 5: the queue has 1 waiting'),
        (('ss_move', job['id'], 'sideways'), 'sideways'),
        (('ss_skip', 'abc'), "'abc' is not a job id"),
        (('ss_repeat', job['id'], 0), 'repeat'),
        (('ss_move', job['id']), r"ss_move: takes 2 to 3 arguments, got 1; usage: ss_move\(job_id, to, version\)"),
        (('ss_move', job['id'], {'to': 1}), r"ss_move: to must be an index or a word, not dict"),
    ]
    for (command, *args), message in cases:
        with pytest.raises(ServerError, match=message):
            client.call(command, *args)
    assert queue_without_estimates(client) == before


def test_current_job_cannot_be_edited(client):
    job, = client.call('ss_submit', {'source': LOOP.format(n=100, dt=0.02)})
    client.wait_for(job_event(job['id'], 'running'))
    with pytest.raises(ServerError, match='current job cannot be edited'):
        client.call('ss_edit', job['id'], {'source': 'print(2)'})
    with pytest.raises(ServerError, match='current job cannot be edited'):
        client.call('update', 'print(2)', 'because', str(job['id']))
    client.call('ss_abort')
    wait_finished(client, job['id'])


def test_emergency_stops_devices_and_job_but_keeps_waiting_jobs(client):
    client.call('exec', 'sample_x.speed = 2')
    try:
        job, = client.call('ss_submit', {'source': 'move(sample_x, 40)\n'
                                         + LOOP.format(n=100, dt=0.05)})
        waiting = client.call('ss_submit', [{'source': 'print(1)'},
                                            {'source': 'print(2)'}])
        client.wait_for(lambda n, d: n == 'ss_job' and d['id'] == job['id']
                        and (d['progress'] or 0) > 0)
        client.call('emergency')
        assert wait_finished(client, job['id'])['state'] == 'aborted'
        wait_until(lambda: client.eval_value('sample_x.status(0)[0]') == 200)
        stopped_at = client.eval_value('sample_x.read(0)')
        assert stopped_at < 40
        time.sleep(0.3)
        assert client.eval_value('sample_x.read(0)') == stopped_at
        queue = client.queue()
        assert [j['id'] for j in queue['waiting']] == [j['id'] for j in waiting]
        assert queue['held'] and 'emergency' in queue['hold_reason']
    finally:
        client.call('ss_clear')
        client.call('exec', 'sample_x.speed = 100')


def test_hold_lets_the_current_job_finish_and_starts_nothing(client):
    running, = client.call('ss_submit', {'source': LOOP.format(n=10, dt=0.05)})
    nxt, = client.call('ss_submit', {'source': 'print("next")'})
    client.wait_for(job_event(running['id'], 'running'))
    client.call('ss_hold')
    assert wait_finished(client, running['id'])['state'] == 'done'
    time.sleep(0.3)
    assert client.call('ss_job', nxt['id'])['state'] == 'queued'
    client.call('ss_release')
    assert wait_finished(client, nxt['id'])['state'] == 'done'


def test_failed_job_records_its_error_and_holds(client):
    job, = client.call('ss_submit', {'source': 'x = 1\nset_temperature(1000)\n'})
    # The dry run finds the problem first and holds the job back; a user
    # who insists confirms it.
    held = client.wait_for(lambda n, d: n == 'ss_job' and d['id'] == job['id']
                           and d['held'], 30)[1]
    assert held['estimate']['state'] == 'failed'
    assert held['state'] == 'queued'
    client.call('ss_hold')
    client.call('ss_confirm', job['id'])
    after, = client.call('ss_submit', {'source': 'print("after")'})
    client.call('ss_release')
    failed = wait_finished(client, job['id'])
    assert failed['state'] == 'failed'
    assert failed['error']['line'] == 2
    assert 'limit' in failed['error']['message']
    assert failed['error']['traceback']
    # The job that waited waits for somebody to look first.
    queue = client.queue()
    assert (queue['held'], queue['hold_kind']) == (True, 'safety')
    assert queue['protected'] == [after['id']]
    assert queue['hold_reason'].startswith(f"job {job['id']} failed: LimitError")
    assert client.call('ss_history', 5)[0]['id'] == job['id']


class StockClient(NicosClient):
    """NICOS's own client library, as stock GUIs and IBEX use it."""

    def __init__(self):
        NicosClient.__init__(self, lambda *args: None)
        self.events = []
        self.errors = []
        self.changed = threading.Condition()

    def signal(self, name, *args):
        if name in ('error', 'broken', 'failed'):
            self.errors.append(args)
        with self.changed:
            self.events.append((name, args[0] if args else None))
            self.changed.notify_all()


@contextlib.contextmanager
def stock_login(server, account: str = 'user'):
    """A `StockClient` logged in to *server*'s daemon as *account*."""
    stock = StockClient()
    stock.connect(ConnectionData('127.0.0.1', server.instance.daemon_port,
                                 account, server.passwords[account]))
    try:
        yield stock
    finally:
        stock.disconnect()


def test_stock_client_queue_rearrange_unqueue_act_on_the_unified_queue(server, client):
    client.call('ss_hold')
    with stock_login(server) as stock:
        ids = [stock.run(f'print("stock {i}")', f'stock{i}.py') for i in range(3)]
        assert all(i and i.isdigit() for i in ids)
        queued = client.queue()['waiting']
        assert [str(j['id']) for j in queued] == ids
        assert queued[0]['name'] == 'stock0.py'

        assert stock.tell('rearrange', [ids[2], ids[0], ids[1]])
        assert [str(j['id']) for j in client.queue()['waiting']] == \
            [ids[2], ids[0], ids[1]]
        assert stock.tell('unqueue', ids[0])
        status = stock.ask('getstatus')
        assert [r['reqid'] for r in status['requests']] == [ids[2], ids[1]]

        # A skipped job disappears for stock clients, who cannot run it.
        client.call('ss_skip', int(ids[1]))
        with stock.changed:
            stock.changed.wait_for(lambda: ('blocked', [ids[1]]) in stock.events, 10)
        client.call('ss_release')
        with stock.changed:
            assert stock.changed.wait_for(lambda: any(
                n == 'done' and d['reqid'] == ids[2] for n, d in stock.events), 30)
        assert not stock.errors
        assert stock.isconnected
        client.call('ss_clear')


def test_a_pause_during_the_last_statement_pauses_after_it(client):
    job, nxt = client.call('ss_submit', [
        {'source': 'import threading\nprint("last statement")\n'
                   'threading.Event().wait(5)\n'},
        {'source': 'print("next")\n'}])
    wait_until(lambda: client.call('ss_job', job['id'])['current_line'] == 3, 60)
    client.call('ss_pause')
    paused = client.wait_for(job_event(job['id'], 'paused'))[1]
    assert paused['current_line'] == 3
    time.sleep(0.5)
    assert client.call('ss_job', nxt['id'])['state'] == 'queued'
    client.call('ss_resume')
    assert wait_finished(client, job['id'])['state'] == 'done'
    assert wait_finished(client, nxt['id'])['state'] == 'done'


def test_a_job_that_ends_before_it_can_pause_holds_the_queue_for_stock_clients(
        server, client):
    # An isolated job pauses at pause points only, and after the pause is
    # asked for it reaches none. Its last statement lasts 5 s so that the
    # pause arrives during it also on a busy machine.
    job, nxt = client.call('ss_submit', [
        {'source': 'import threading\nprint("last statement")\n'
                   'threading.Event().wait(5)\n', 'isolated': True},
        {'source': 'for i in range(3):\n    print("next", i)\n'}])
    client.wait_for(lambda n, d: n == 'message' and 'last statement' in d[3], 60)
    with stock_login(server) as stock:
        assert stock.tell('break', 2)
        assert wait_finished(client, job['id'])['state'] == 'done'
        queue = client.queue()
        assert (queue['held'], queue['hold_reason'], queue['protected']) == \
            (True, f"job {job['id']} ended before it could pause", [nxt['id']])
        time.sleep(0.5)
        assert client.call('ss_job', nxt['id'])['state'] == 'queued'
        assert [r['reqid'] for r in stock.ask('getstatus')['requests']] == \
            [str(nxt['id'])]
        # The stock client's own button goes on.
        assert stock.tell('continue')
        assert wait_finished(client, nxt['id'])['state'] == 'done'
        assert not client.queue()['held']
        assert not stock.errors


def test_daemon_killed_mid_job_restarts_with_queue_intact(server_factory, tmp_path):
    first = server_factory(datadir=tmp_path / 'data')
    user = first.client('user')
    user.call('ss_hold')
    running_src = LOOP.format(n=1000, dt=0.02)
    a, b, c = user.call('ss_submit', [{'source': 'print("a")'},
                                      {'source': running_src},
                                      {'source': 'print("c")'}])
    user.call('ss_skip', c['id'])
    user.call('ss_edit', a['id'], {'source': 'print("a edited")'})
    user.call('ss_move', b['id'], 'top')
    user.call('ss_release')
    user.wait_for(lambda n, d: n == 'ss_job' and d['id'] == b['id']
                  and (d['progress'] or 0) > 0)
    user.call('ss_hold')

    os.kill(first.processes.procs['daemon'].pid, signal.SIGKILL)
    first.stop()

    second = server_factory(datadir=tmp_path / 'data')
    again = second.client('user')
    queue = again.queue()
    assert queue['current'] is None and queue['held'] is True
    assert [(j['id'], j['state']) for j in queue['waiting']] == \
        [(a['id'], 'queued'), (c['id'], 'skipped')]
    assert again.call('ss_job', a['id'])['source'] == 'print("a edited")'
    interrupted = again.call('ss_job', b['id'])
    assert interrupted['state'] == 'interrupted'
    assert again.call('ss_history', 10)[0]['id'] == b['id']
    # Nothing runs by itself after the restart; releasing runs the rest.
    again.call('ss_release')
    assert wait_finished(again, a['id'])['state'] == 'done'
    assert again.call('ss_job', b['id'])['state'] == 'interrupted'


STUBBORN_TREE = '''\
import signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
child = subprocess.Popen([sys.executable, '-c',
    'import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); '
    'time.sleep(600)'])
print('child pid', child.pid, flush=True)
time.sleep(600)
'''


def gone(pid):
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_blackbox_output_streams_and_abort_kills_a_stubborn_tree(server, client):
    watcher = server.client('guest')
    job, = client.call('ss_submit', {'kind': 'blackbox', 'name': 'tree.py',
                                     'source': STUBBORN_TREE})
    _, output = client.wait_for(lambda n, d: n == 'ss_output'
                                and d['id'] == job['id'] and 'child pid' in d['text'])
    child = int(output['text'].split()[-1])
    assert not gone(child)
    # Stock clients see the output as ordinary messages.
    watcher.wait_for(lambda n, d: n == 'message' and 'child pid' in d[3])
    assert client.call('getstatus')['status'][0] >= 0
    with pytest.raises(ServerError, match='cannot be paused'):
        client.call('ss_pause')
    with pytest.raises(ServerError, match='cannot be paused'):
        client.call('break', 2)

    client.call('ss_abort')
    aborted = wait_finished(client, job['id'], timeout=20)
    assert aborted['state'] == 'aborted'
    wait_until(lambda: gone(child), timeout=10)
    assert client.queue()['held'] is False   # nothing was waiting


def test_blackbox_failure_reports_the_line(client):
    job, = client.call('ss_submit', {'kind': 'blackbox', 'source':
                                     'print("working")\nx = 1\nraise KeyError("oops")\n'})
    # Its dry run fails the same way and holds it back.
    wait_until(lambda: client.call('ss_job', job['id'])['held'])
    client.call('ss_confirm', job['id'])
    failed = wait_finished(client, job['id'])
    assert failed['state'] == 'failed'
    assert failed['error']['type'] == 'KeyError'
    assert failed['error']['line'] == 3
    outputs = [d['text'] for n, d in client.events
               if n == 'ss_output' and d['id'] == job['id']]
    assert 'working\n' in outputs
