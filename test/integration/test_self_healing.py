"""The supervisor (``make demo``) restarts a crashed service and keeps the
others serving; a service that keeps crashing stops everything.

Each test starts the real supervisor on free ports and SIGKILLs one of its
services, as a crash would.
"""

import getpass
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import List

import psutil
import pytest
from nicos.protocols.daemon import STATUS_INBREAK

from nicos_scriptserver.clients.daemonclient import ScriptServerClient, ServerError
from nicos_scriptserver.clients.proxyclient import ProxyClient, ProxyError
from nicos_scriptserver.instance.accounts import read_secrets, secrets_path
from nicos_scriptserver.instance.config import ENV_DATA, Instance
from nicos_scriptserver.supervisor.processes import free_instance_ports
from test_foundation import service_processes
from test_proxy import credentials, read_pvs
from waiting import wait_until

pytestmark = pytest.mark.integration

LONG = 'for i in range(3000):\n    pause_point()\n    sleep(0.02)\n'
# A daemon start takes several seconds on a busy machine.
BACK_WITHIN = 90.0


class Supervisor:
    """``python -m nicos_scriptserver.supervisor.serve`` on free ports, its
    output (stdout and stderr) collected line by line."""

    def __init__(self, datadir: Path, *options: str):
        ports = free_instance_ports()
        self.instance = Instance(datadir=datadir, **ports)
        args = [sys.executable, '-m', 'nicos_scriptserver.supervisor.serve',
                '--data', str(datadir), '--port', str(ports['daemon_port']),
                '--cache-port', str(ports['cache_port']), '--proxy-port',
                str(ports['proxy_port']), '--pv-port', str(ports['pv_port']),
                '--timescale', '20', *options]
        if os.geteuid() == 0:
            args.append('--allow-root')
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True,
                                     stdin=subprocess.DEVNULL)
        self.lines: List[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.wait_line('Stop with Ctrl-C')
        self.services = service_processes(self.proc.pid)

    def _read(self) -> None:
        for line in self.proc.stdout:
            with self._changed:
                self.lines.append(line)
                self._changed.notify_all()

    def wait_line(self, text: str, timeout: float = BACK_WITHIN,
                  start: int = 0) -> int:
        """The index of the first output line from *start* on with *text*."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for index in range(start, len(self.lines)):
                    if text in self.lines[index]:
                        return index
                remaining = deadline - time.monotonic()
                assert remaining > 0 and (self._reader.is_alive() or
                                          len(self.lines) > start), \
                    f'no {text!r} in:\n{"".join(self.lines)}'
                start = len(self.lines)
                self._changed.wait(min(remaining, 1.0))

    def service(self, name: str) -> psutil.Process:
        """The running process of service *name* (cache, daemon, proxy)."""
        marker = 'nicos_scriptserver.proxy' if name == 'proxy' else name
        return wait_until(lambda: next(
            (proc for proc in service_processes(self.proc.pid)
             if marker in proc.cmdline()), None), BACK_WITHIN)

    def client(self, user: str = 'user') -> ScriptServerClient:
        password = read_secrets(self.instance.datadir)[user][0]
        return ScriptServerClient().login(self.instance.host,
                                          self.instance.daemon_port, user, password)

    def left_behind(self) -> list:
        """Processes of this server still running, restarted ones too
        (none, once stopped): every process with its data directory in its
        environment or command line."""
        def ours(proc: psutil.Process) -> bool:
            try:
                return proc.environ().get(ENV_DATA) == str(self.instance.datadir) \
                    or str(self.instance.datadir) in proc.cmdline()
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                return False
        mine = [proc for proc in psutil.process_iter() if ours(proc)]
        return psutil.wait_procs(mine, timeout=10)[1]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for proc in psutil.wait_procs(self.services, timeout=10)[1]:
            proc.kill()
        self._reader.join(10)
        self.proc.stdout.close()


@pytest.fixture
def start_supervisor(tmp_path):
    started = []

    def start(*options: str) -> Supervisor:
        started.append(Supervisor(tmp_path / 'data', *options))
        return started[-1]
    yield start
    for supervisor in started:
        supervisor.close()


def reconnect(supervisor: Supervisor) -> ScriptServerClient:
    """A user login at the daemon, once it takes one again."""
    def login():
        try:
            return supervisor.client('user')
        except (ServerError, OSError):
            return None
    return wait_until(login, BACK_WITHIN)


def proxy_writer(supervisor: Supervisor) -> ProxyClient:
    user, token = credentials(supervisor)
    client = ProxyClient(supervisor.instance.host, supervisor.instance.proxy_port)
    client.login(user, token)
    return client


def test_a_killed_cache_and_daemon_come_back_with_the_queue_held(start_supervisor):
    supervisor = start_supervisor()
    client = supervisor.client('user')
    ibex = proxy_writer(supervisor)

    killed = supervisor.service('cache')
    killed.kill()
    supervisor.wait_line('the cache was killed by signal 9 (SIGKILL)')
    supervisor.wait_line('restarted the cache')
    # The daemon finds the new cache by itself.
    assert wait_until(lambda: supervisor.service('cache').pid != killed.pid)
    wait_until(lambda: client.eval_value('session.cache.is_connected()'),
               BACK_WITHIN)

    running, = client.call('ss_submit', {'name': 'long', 'source': LONG})
    waiting, = client.call('ss_submit', {'name': 'waiting', 'source': 'sleep(0.01)'})
    wait_until(lambda: client.call('ss_job', running['id'])['state'] == 'running')
    start = len(supervisor.lines)
    supervisor.service('daemon').kill()
    supervisor.wait_line('the daemon was killed by signal 9 (SIGKILL)', start=start)
    supervisor.wait_line('restarting it in 0.5 s', start=start)
    # Meanwhile the proxy serves and says why it cannot forward.
    wait_until(lambda: 'the daemon is not reachable' in _refusal(ibex), 10)

    client = reconnect(supervisor)
    queue = client.queue()
    assert [job['id'] for job in queue['waiting']] == [waiting['id']]
    assert queue['held'] and queue['hold_kind'] == 'safety', queue
    assert client.call('ss_job', running['id'])['state'] == 'interrupted'
    # The proxy's links came back too: the IBEX GUI sees the job, paused.
    status = wait_until(lambda: _status(ibex), BACK_WITHIN)
    assert [r['reqid'] for r in status['requests']] == [str(waiting['id'])]
    assert status['status'][0] == STATUS_INBREAK
    client.disconnect()
    ibex.close()


def _refusal(client: ProxyClient) -> str:
    """Why the proxy refuses a getstatus now ('' if it answers)."""
    try:
        client.call('getstatus')
    except ProxyError as err:
        return str(err)
    return ''


def _status(client: ProxyClient):
    try:
        return client.call('getstatus')
    except ProxyError:
        return None


def test_a_killed_proxy_comes_back_and_publishes_a_new_token(start_supervisor):
    me = getpass.getuser()
    # The IBEX GUI's account reads the token too, also after the restart.
    gui = 'nobody' if os.geteuid() == 0 else me
    supervisor = start_supervisor('--token-reader', me, '--token-reader', gui)
    user, old = credentials(supervisor)
    supervisor.service('proxy').send_signal(signal.SIGKILL)
    supervisor.wait_line('the proxy was killed by signal 9 (SIGKILL)')
    supervisor.wait_line('restarted the proxy')
    new = wait_until(lambda: _new_token(supervisor, old), BACK_WITHIN)
    assert read_pvs(supervisor, 'TOKEN', as_user=gui)['TOKEN']['value'] == new
    client = ProxyClient(supervisor.instance.host, supervisor.instance.proxy_port)
    with pytest.raises(ProxyError, match='Invalid'):
        client.login(user, old)
    client.reconnect()
    assert client.login(user, new) == 10
    assert client.call('getstatus')['status']
    client.close()


def _new_token(supervisor: Supervisor, old: str):
    try:
        token = credentials(supervisor)[1]
    except (AssertionError, KeyError):   # the PV server is not back yet
        return None
    return token if token and token != old else None


def _break_the_proxy(supervisor: Supervisor) -> None:
    """Make every start of the proxy fail: it refuses a secrets file that
    others can read (an operator's mistake), then kill it."""
    secrets_path(supervisor.instance.datadir).chmod(0o644)
    supervisor.service('proxy').kill()


def test_a_service_that_keeps_failing_stops_everything_saying_why(start_supervisor):
    supervisor = start_supervisor('--give-up-after', '3')
    _break_the_proxy(supervisor)
    supervisor.wait_line('restarting it in 0.5 s (failure 1 in a row')
    supervisor.wait_line('the proxy exited with status 2')
    supervisor.wait_line('restarting it in 1.0 s (failure 2 in a row')
    assert supervisor.proc.wait(BACK_WITHIN) == 1
    output = ''.join(supervisor.lines)
    assert 'failed 3 times in a row' in output and 'giving up' in output, output
    assert not supervisor.left_behind()
    logdir = supervisor.instance.logdir
    assert 'giving up' in (logdir / 'supervisor.log').read_text()
    assert 'secrets' in (logdir / 'proxy.out').read_text()


def test_a_service_that_ran_healthy_after_seconds_starts_a_new_series(start_supervisor):
    """--healthy-after: a crash after that long a run is a first failure
    again (restarted after 0.5 s), not the next of a series."""
    supervisor = start_supervisor('--give-up-after', '2', '--healthy-after', '2')
    for _ in range(2):
        proxy = supervisor.service('proxy')
        wait_until(lambda: time.time() - proxy.create_time() > 3, BACK_WITHIN)
        start = len(supervisor.lines)
        proxy.kill()
        supervisor.wait_line('restarting it in 0.5 s (failure 1 in a row', start=start)
    supervisor.wait_line('restarted the proxy', start=start)
    assert supervisor.proc.poll() is None, ''.join(supervisor.lines)


def test_a_stop_during_a_restart_delay_is_prompt_and_clean(start_supervisor):
    supervisor = start_supervisor()
    _break_the_proxy(supervisor)
    supervisor.wait_line('restarting it in 4.0 s')
    asked = time.monotonic()
    supervisor.proc.send_signal(signal.SIGTERM)
    assert supervisor.proc.wait(30) == 0
    assert time.monotonic() - asked < 3.0
    assert not supervisor.left_behind()
