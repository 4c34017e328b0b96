"""SIGKILL the external PV server that holds the token, several times.

The proxy runs with ``--pvs external`` against a standalone PV server
(``python -m nicos_scriptserver.pvs``), as it does against IBEX's block
server. Each round kills that server at a random moment and restarts it
on the same port, empty. Logged-in clients must keep working throughout;
the proxy must publish a new token once the server is back (it keeps no
clear token to write again), which logs in, while the old one is refused.
"""

import getpass
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest

from nicos_scriptserver.instance.config import REPO, Instance
from nicos_scriptserver.runner.lifetime import die_with_parent
from nicos_scriptserver.supervisor.processes import ServerProcesses, free_instance_ports
from nicos_scriptserver.clients.proxyclient import ProxyClient, ProxyError
from test_proxy import read_pvs
from test_pvs import _free_ca_port
from waiting import wait_output_line, wait_until

pytestmark = pytest.mark.integration

ROUNDS = 3
PREFIX = 'RESTART:'
# Generous: two shared cores, and a PV server start imports pcaspy.
PUBLISHED_WITHIN = 60.0


class PVServer:
    """The standalone PV server, restartable on one port."""

    def __init__(self, port, workdir, env):
        self.port, self.workdir, self.env = port, workdir, env
        self.proc = None

    def start(self):
        me = getpass.getuser()
        self.proc = subprocess.Popen(
            [sys.executable, '-m', 'nicos_scriptserver.pvs', '--prefix', PREFIX,
             '--port', str(self.port), '--reader', me, '--writer', me,
             '--workdir', str(self.workdir)],
            cwd=REPO, env=self.env, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL,
            preexec_fn=die_with_parent())
        wait_output_line(self.proc, 'pvs ready')
        return time.monotonic()

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self.proc.stdout.close()

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self.proc is not None and not self.proc.stdout.closed:
            self.proc.stdout.close()


@pytest.fixture
def repeater_port():
    """A UDP port held in place of a CA repeater, so that libca in the
    proxy and the readers starts no ``caRepeater`` (see test_pvs)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(('127.0.0.1', 0))
        yield sock.getsockname()[1]


@pytest.fixture
def setup(tmp_path, repeater_port):
    """PV server + cache, daemon and proxy publishing to it; yields
    (pv server, instance)."""
    pv_port = _free_ca_port()
    ca_env = {'EPICS_CA_ADDR_LIST': f'127.0.0.1:{pv_port}',
              'EPICS_CA_AUTO_ADDR_LIST': 'NO',
              'EPICS_CA_REPEATER_PORT': str(repeater_port)}
    pvs = PVServer(pv_port, tmp_path / 'pvs', dict(os.environ, **ca_env))
    ports = dict(free_instance_ports(), pv_port=pv_port)
    instance = Instance(datadir=tmp_path / 'data', **ports, pv_prefix=PREFIX,
                        timescale=20.0)
    processes = ServerProcesses(instance, allow_root=os.geteuid() == 0,
                                env=ca_env, proxy=True,
                                proxy_args=['--pvs', 'external'])
    try:
        pvs.start()
        processes.start()
        yield pvs, instance
    finally:
        processes.stop()
        pvs.stop()


def token_pv(instance):
    """The TOKEN PV's value as a fresh CA client reads it ('' if empty,
    None if not connected)."""
    state = read_pvs(SimpleNamespace(instance=instance), 'TOKEN')['TOKEN']
    return state['value'] if state['connected'] else None


def login(instance, user, token):
    client = ProxyClient(instance.host, instance.proxy_port)
    try:
        assert client.login(user, token) == 10
    except BaseException:
        client.close()
        raise
    return client


def test_proxy_publishes_a_new_token_after_each_pv_server_restart(setup):
    pvs, instance = setup
    rng = random.Random(os.environ.get('CRASH_SEED', 20261201))
    pv = read_pvs(SimpleNamespace(instance=instance), 'USER', 'TOKEN')
    user, token = pv['USER']['value'], pv['TOKEN']['value']
    assert user == 'scriptserver' and token
    first = login(instance, user, token)
    clients, seen, fresh_after = [first], {token}, []
    try:
        for _ in range(ROUNDS):
            time.sleep(rng.uniform(0, 2))   # a random moment to kill
            pvs.kill()
            # Sessions do not depend on the PV server.
            for client in clients:
                assert client.call('getstatus')['status']
            time.sleep(rng.uniform(0, 3))   # down for a random while
            started = pvs.start()
            new = wait_until(lambda: token_pv(instance), PUBLISHED_WITHIN)
            fresh_after.append(time.monotonic() - started)
            assert new not in seen, 'the old token was published again'
            clients.append(login(instance, user, new))
            with ProxyClient(instance.host, instance.proxy_port) as client:
                with pytest.raises(ProxyError, match='Invalid'):
                    client.login(user, token)
            for client in clients:
                assert client.call('getstatus')['status']
            seen.add(new)
            token = new
    finally:
        for client in clients:
            client.close()
    log = (instance.logdir / 'proxy.log').read_text()
    # One rotation per restart (more only if a disconnect raced a publish).
    assert log.count('published a new token (rotation') >= ROUNDS
    for secret in seen:
        assert secret not in log
    print(f'\nfresh token on the PV after the PV server restart: p50 '
          f'{statistics.median(fresh_after):.2f} s, max '
          f'{max(fresh_after):.2f} s over {ROUNDS} rounds '
          f'(a fresh CA client polling)')
