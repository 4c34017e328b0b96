"""SIGKILL the daemon and the proxy at random moments of a running,
changing queue, and a black-box job's process.

A few rounds of each here (CI); bench/bench_crash_restart.py runs many. See
crashloop.py for what each round checks.
"""

import os
import random
import shutil
import signal
import tempfile

import psutil
import pytest

from crashloop import crash_round
from nicos_scriptserver.clients.proxyclient import ProxyError
from test_proxy import connect, credentials

pytestmark = pytest.mark.integration

ROUNDS = 6
PROXY_ROUNDS = 3


def test_nothing_acknowledged_is_lost_when_the_daemon_is_killed(server_factory, tmp_path):
    running = server_factory(datadir=tmp_path / 'data')

    def restart():
        running.processes.procs['daemon'].wait(30)
        running.processes.start_daemon()
        return running.client('user')

    check_rounds(running, 'daemon', running.client('user'), restart, ROUNDS)


def test_nothing_acknowledged_through_the_proxy_is_lost_when_it_is_killed(
        server_factory, tmp_path):
    running = server_factory(datadir=tmp_path / 'data', proxy=True)

    def restart():
        running.processes.procs['proxy'].wait(30)
        running.processes.start_proxy()
        return login_at_proxy(running)

    check_rounds(running, 'proxy', login_at_proxy(running), restart, PROXY_ROUNDS)


def check_rounds(running, victim: str, client, restart, rounds: int) -> None:
    """Run *rounds* crash rounds killing process *victim*; none may lose
    anything, and together they must have changed the queue and cut a
    request short (or they proved nothing)."""
    rng = random.Random(os.environ.get('CRASH_SEED', 20261130))

    def kill():
        os.kill(running.processes.procs[victim].pid, signal.SIGKILL)

    results = []
    for _ in range(rounds):
        result, client = crash_round(client, kill, restart, rng,
                                     interrupts=victim == 'daemon')
        results.append(result)
    lost = [problem for result in results for problem in result.lost]
    assert not lost, '\n'.join(lost)
    assert sum(result.ops_acknowledged for result in results) > rounds * 5
    assert any(result.in_flight for result in results)


def login_at_proxy(running):
    """A writer at the proxy with this start's token, answering within 2 s."""
    user, token = credentials(running)
    client = connect(running, timeout=2.0)
    client.login(user, token)
    return client


def test_a_killed_blackbox_process_fails_its_job_and_nothing_else(server, client):
    job, = client.call('ss_submit', {'kind': 'blackbox', 'name': 'stubborn',
                                      'source': 'import time\nprint("up", flush=True)\n'
                                                'time.sleep(600)\n'})
    client.wait_for(lambda n, d: n == 'ss_output' and d['id'] == job['id'], 30)
    daemon = psutil.Process(server.processes.procs['daemon'].pid)
    # The job's child runs its script from a scratch folder 'blackbox-...'
    # (the daemon's other child is the dry-run fork server).
    child, = [p for p in daemon.children() if 'blackbox-' in ' '.join(p.cmdline())]
    child.kill()
    failed = client.wait_for(lambda n, d: n == 'ss_job' and d['id'] == job['id']
                             and d['state'] in ('failed', 'done', 'aborted'), 30)[1]
    assert failed['state'] == 'failed'
    assert 'signal' in failed['error']['message'].lower() or \
        'SIGKILL' in failed['error']['message'], failed['error']
    assert not client.queue()['held']   # nothing was waiting to be held
    after, = client.call('ss_submit', {'source': 'sleep(0.01)'})
    assert client.wait_for(lambda n, d: n == 'ss_job' and d['id'] == after['id']
                           and d['state'] == 'done', 60)


def test_a_killed_proxy_comes_back_with_a_new_token(server_factory, tmp_path):
    running = server_factory(datadir=tmp_path / 'data', proxy=True)
    user, old = credentials(running)
    client = connect(running)
    client.login(user, old)
    proxy = running.processes.procs.pop('proxy')
    proxy.send_signal(signal.SIGKILL)
    proxy.wait(10)
    with pytest.raises(ProxyError, match='no reply'):
        connect(running, timeout=0.5).call('getbanner')
    running.processes.start_proxy()
    user, new = credentials(running)
    assert new != old
    client.reconnect()
    with pytest.raises(ProxyError, match='Invalid'):
        client.login(user, old)
    client.reconnect()
    assert client.login(user, new) == 10
    assert client.call('getstatus')['status']


def test_a_killed_daemons_temporary_files_are_removed_when_it_starts_again(
        server_factory, tmp_path):
    # Short: the dry runs' sockets are in there, and their paths are limited.
    tmp = tempfile.mkdtemp(prefix='ss-')
    try:
        running = server_factory(datadir=tmp_path / 'data', env={'TMPDIR': tmp})
        client = running.client('user')
        job, = client.call('ss_submit', {
            'kind': 'blackbox', 'name': 'stubborn',
            'source': 'import time\nprint("up", flush=True)\ntime.sleep(600)\n'})
        client.wait_for(lambda n, d: n == 'ss_output' and d['id'] == job['id'], 30)
        # The daemon's root holds its command snapshot for the dry runs and
        # the job's script (a dry-run process may have a root of its own).
        root, = [os.path.join(tmp, name) for name in os.listdir(tmp)
                 if any(inner.startswith('dry-run-commands-')
                        for inner in os.listdir(os.path.join(tmp, name)))]
        assert any(name.startswith('blackbox-') for name in os.listdir(root))

        os.kill(running.processes.procs['daemon'].pid, signal.SIGKILL)
        running.processes.procs['daemon'].wait(30)
        assert os.path.isdir(root)   # nothing cleaned up after it
        running.processes.start_daemon()
        assert not os.path.exists(root), os.listdir(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
