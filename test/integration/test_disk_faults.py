"""A full or read-only data directory, at start and while serving.

The server must refuse changes it cannot store, with a clear error,
instead of acknowledging them, and take them again once space is back.
The data directory lives on a small tmpfs (needs root; skipped otherwise).
Read-only *during* a run cannot be staged: Linux refuses to remount a file
system read-only while a file on it is open for writing (the queue
database always is); the kernel itself does it only after I/O errors.
"""

import subprocess

import pytest

from nicos_scriptserver.clients.daemonclient import ServerError
from nicos_scriptserver.supervisor.processes import StartupError

pytestmark = pytest.mark.integration


@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / 'disk'
    mount.mkdir()
    done = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=128m', 'tmpfs',
                           str(mount)], capture_output=True, text=True)
    if done.returncode:
        pytest.skip(f'cannot mount a small file system here: {done.stderr.strip()}')
    yield mount
    subprocess.run(['umount', '-l', str(mount)], capture_output=True)


def remount(mount, mode):
    subprocess.run(['mount', '-o', f'remount,{mode}', str(mount)], check=True)


def fill(mount):
    """Take every free byte; returns the filler file."""
    filler = mount / 'filler'
    with open(filler, 'wb', buffering=0) as stream:
        try:
            while True:
                stream.write(b'\0' * (1 << 20))
        except OSError:
            pass
        try:
            while True:
                stream.write(b'\0' * 512)
        except OSError:
            pass
    return filler


def waiting(client):
    return [(job['id'], job['state']) for job in client.queue()['waiting']]


def refused(client, *request):
    with pytest.raises(ServerError) as err:
        client.call(*request)
    return str(err.value)


def test_a_full_disk_refuses_changes_and_recovers_when_space_is_back(server_factory, small_disk):
    running = server_factory(datadir=small_disk / 'data')
    client = running.client('user')
    client.call('ss_hold')
    first, = client.call('ss_submit', {'source': 'sleep(0.1)', 'name': 'first'})
    before = waiting(client)

    filler = fill(small_disk)
    message = refused(client, 'ss_submit', {'source': 'sleep(0.1)'})
    assert message.startswith('ss_submit: ') and 'full' in message
    assert 'full' in refused(client, 'ss_edit', first['id'], {'source': 'x = 2'})
    assert 'full' in refused(client, 'ss_skip', first['id'])
    assert waiting(client) == before
    assert client.call('ss_job', first['id'])['source'] == 'sleep(0.1)'

    filler.unlink()
    second, = client.call('ss_submit', {'source': 'sleep(0.1)', 'name': 'second'})
    assert waiting(client) == before + [(second['id'], 'queued')]

    third, = client.call('ss_submit', {'source': 'sleep(0.1)', 'name': 'third'})

    # What was acknowledged is what a restart finds.
    running.stop()
    again = server_factory(datadir=small_disk / 'data').client('user')
    assert [job['id'] for job in again.queue()['waiting']] == \
        [first['id'], second['id'], third['id']]


def test_a_read_only_data_directory_stops_the_start_with_a_clear_error(
        server_factory, small_disk):
    server_factory(datadir=small_disk / 'data').stop()
    remount(small_disk, 'ro')
    try:
        with pytest.raises(StartupError,
                           match='cannot write to the data directory .*: '
                                 'Read-only file system'):
            server_factory(datadir=small_disk / 'data')
    finally:
        remount(small_disk, 'rw')


def test_a_full_disk_at_start_is_reported_and_a_start_after_freeing_it_works(
        server_factory, small_disk):
    first = server_factory(datadir=small_disk / 'data')
    job, = first.client('user').call('ss_submit', {'source': 'sleep(0.1)'})
    first.client('user').call('ss_hold')
    first.stop()
    filler = fill(small_disk)
    try:
        server_factory(datadir=small_disk / 'data')
    except StartupError as err:
        # The first service that could not write says so in its output.
        out = open(str(err).rsplit('see ', 1)[1], 'rb').read()
        assert b'No space left on device' in out, (str(err), out[-2000:])
    else:
        pytest.fail('the daemon started on a full disk without saying so')
    filler.unlink()
    again = server_factory(datadir=small_disk / 'data').client('user')
    assert [j['id'] for j in again.queue()['waiting']] == [job['id']]
