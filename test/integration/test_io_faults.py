"""I/O errors in the queue database's writes and fsync, while serving.

The daemon runs with an LD_PRELOAD shim (see diskfaults.py) that fails the
queue database's write/pwrite/fsync/fdatasync with EIO or ENOSPC while the
test says so. Changes made meanwhile are refused with a clear error, the
daemon goes on serving and the running job is not lost (its end is saved
once the disk is back); after a kill -9 and a restart, what was
acknowledged is there and what was refused is not.
"""

import os
import signal

import pytest

from diskfaults import FaultyDisk, start_faulty_server
from nicos_scriptserver.clients.daemonclient import ServerError
from waiting import wait_until

pytestmark = pytest.mark.integration


# Runs until the test creates *gate*, reporting progress meanwhile (a dry
# run goes through at once).
GATED = ('import os\nfrom nicos import session\n'
         'while not os.path.exists({gate!r}) and session.mode != "simulation":\n'
         '    progress(0.5, "waiting for the gate")\n'
         '    sleep(0.05)\n')


@pytest.fixture
def disk():
    disk = FaultyDisk()
    if disk.why_not:
        disk.remove()
        pytest.skip(disk.why_not)
    yield disk
    disk.remove()


@pytest.fixture
def faulty_server(tmp_path, disk):
    running = start_faulty_server(tmp_path / 'data', disk)
    yield running
    disk.heal()
    running.stop()


def waiting_ids(client):
    return [job['id'] for job in client.queue()['waiting']]


def refused(client, *request):
    with pytest.raises(ServerError) as err:
        client.call(*request)
    return str(err.value)


def job_state(client, job_id):
    return client.call('ss_job', job_id)['state']


@pytest.mark.parametrize('error, says', [('eio', 'disk I/O error'),
                                         ('enospc', 'full')])
def test_changes_are_refused_while_writes_fail_and_nothing_acknowledged_is_lost(
        faulty_server, disk, error, says):
    client = faulty_server.client('user')
    # A job that runs through the fault and ends while it lasts.
    gate = disk.dir / 'gate'
    running, = client.call('ss_submit', {
        'name': 'through the fault', 'source': GATED.format(gate=str(gate))})
    wait_until(lambda: (client.queue()['current'] or {}).get('id') == running['id'],
               timeout=60)
    first, = client.call('ss_submit', {'source': 'x = 1', 'name': 'first'})
    second, = client.call('ss_submit', {'source': 'x = 2', 'name': 'second'})
    before = waiting_ids(client)

    disk.fail(error)
    message = refused(client, 'ss_submit', {'source': 'x = 3', 'name': 'refused'})
    assert message.startswith('ss_submit: ') and says in message, message
    assert 'nothing was changed' in message
    assert says in refused(client, 'ss_edit', first['id'], {'source': 'x = 4'})
    assert says in refused(client, 'ss_move', second['id'], 'top')
    assert waiting_ids(client) == before
    assert client.call('ss_job', first['id'])['source'] == 'x = 1'
    # The running job ends now: its end cannot be saved yet, and no other
    # job may start before it is.
    gate.touch()
    assert client.queue()['waiting'][0]['id'] == first['id']

    disk.heal()
    wait_until(lambda: job_state(client, running['id']) == 'done')
    wait_until(lambda: job_state(client, second['id']) == 'done')
    assert job_state(client, first['id']) == 'done'
    client.call('ss_hold')
    third, = client.call('ss_submit', {'source': 'x = 5', 'name': 'third'})
    client.call('ss_move', third['id'], 'top')
    fourth, = client.call('ss_submit', {'source': 'x = 6', 'name': 'fourth'})
    client.call('ss_move', fourth['id'], 'top')
    client.call('ss_edit', third['id'], {'source': 'x = 7'})
    acknowledged = waiting_ids(client)
    assert acknowledged == [fourth['id'], third['id']]

    processes = faulty_server.processes
    os.kill(processes.procs['daemon'].pid, signal.SIGKILL)
    processes.procs['daemon'].wait(30)
    processes.start_daemon()
    again = faulty_server.client('user')
    assert waiting_ids(again) == acknowledged
    assert again.call('ss_job', third['id'])['source'] == 'x = 7'
    assert [job['name'] for job in again.call('ss_history', 10)
            if job['name'] == 'refused'] == []
    assert job_state(again, running['id']) == 'done'
