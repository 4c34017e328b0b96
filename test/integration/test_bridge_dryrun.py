"""Dry runs of black-box and isolated jobs, through the bridge, against
NICOS's simulation session of a real daemon."""

import pytest

from test_dryrun import estimated, finished, submit
from test_queue import gone
from waiting import wait_until

pytestmark = pytest.mark.integration

BRIDGED_LIMIT = 3.0


@pytest.fixture(scope='module')
def server_args():
    return {'dry_run_limit': 30.0, 'bridged_dry_run_limit': BRIDGED_LIMIT}


def test_a_blackbox_limit_violation_is_held_back_and_moves_nothing(client):
    before = client.eval_value('T_sample.read(0)')
    job = submit(client, 'print("warming up")\nset_temperature(400)\n',
                 kind='blackbox')
    held = estimated(client, job['id'])
    assert held['held'] and held['state'] == 'queued' and not held['started_at']
    problem, = [p for p in held['estimate']['problems'] if p['kind'] != 'warning']
    assert problem['kind'] == 'limit' and problem['line'] == 2
    assert 'T_sample' in problem['message'] and '400' in problem['message']
    assert held['hold_reason'].startswith('dry run: LimitError')
    assert client.eval_value('T_sample.read(0)') == before
    client.call('ss_remove', job['id'])


def test_a_blackbox_estimate_matches_the_same_calls_as_an_aware_job(client):
    script = 'set_temperature(255)\nmeasure(frames=400)\nsample_x.maw(3)\n'
    aware = estimated(client, submit(client, script)['id'])['estimate']
    blackbox = estimated(client, submit(client, script, kind='blackbox')
                         ['id'])['estimate']
    assert aware['state'] == blackbox['state'] == 'ok'
    assert aware['seconds'] > 2
    # The child's own Python time (it starts up) adds a little.
    assert blackbox['seconds'] == pytest.approx(aware['seconds'], abs=0.5)
    assert blackbox['sources']['estimate function'] == \
        aware['sources']['estimate function']
    assert blackbox['devices']['T_sample']['last'] == '255.00'


def test_a_declared_estimate_overrides_the_dry_run(client):
    job = submit(client, '# estimate: 2 min\nprint("hi")\n', kind='blackbox')
    report = estimated(client, job['id'])['estimate']
    assert report['state'] == 'ok'
    assert report['seconds'] == 120 and report['sources'] == {'declared': 120}
    plain = client.call('ss_dryrun', {'kind': 'blackbox',
                                      'source': 'sample_x.maw(0)\nsleep(7)\n'})
    assert plain['state'] == 'ok' and 7 <= plain['seconds'] < 9


ENDLESS = '''\
import os, subprocess, time
if os.environ.get('SCRIPTSERVER_DRY_RUN') == '1':
    helper = subprocess.Popen(['sleep', '600'])
    with open({pidfile!r}, 'w') as f:
        f.write(f'{{os.getpid()}} {{helper.pid}}')
    while True:
        time.sleep(0.1)
print('ran for real')
'''


def test_an_endless_blackbox_dry_run_is_cut_off_and_its_tree_killed(
        client, tmp_path):
    pidfile = tmp_path / 'pids'
    job = submit(client, ENDLESS.format(pidfile=str(pidfile)), kind='blackbox')
    report = estimated(client, job['id'], timeout=BRIDGED_LIMIT + 20)['estimate']
    assert report['state'] == 'not possible' and report['seconds'] is None
    assert report['reason'].startswith(
        f'the dry run took longer than {BRIDGED_LIMIT:g} s')
    assert report['wall_seconds'] >= BRIDGED_LIMIT
    pids = [int(pid) for pid in pidfile.read_text().split()]
    assert len(pids) == 2
    for pid in pids:
        wait_until(lambda: gone(pid), timeout=10)
    # Not possible is no hold: the job runs, for real this time.
    assert not client.call('ss_job', job['id'])['held']
    assert finished(client, job['id'])['state'] == 'done'


def test_an_isolated_job_is_dry_run_through_the_bridge(client):
    job, = client.call('ss_submit', {'isolated': True, 'source':
                                     'import os\npause_point()\n'
                                     'step(1, 2)\nprogress(0.5)\n'
                                     'if os.environ.get("SCRIPTSERVER_DRY_RUN"):\n'
                                     '    set_temperature(400)\n'})
    held = estimated(client, job['id'])
    # Only in a child of a bridged dry run is SCRIPTSERVER_DRY_RUN set.
    assert held['held'] and held['estimate']['problems'][0]['line'] == 6
    assert held['hold_reason'].startswith('dry run: LimitError')
    client.call('ss_remove', job['id'])
