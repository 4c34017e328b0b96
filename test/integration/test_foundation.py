"""The demo instrument served by a real NICOS daemon and cache."""

import math
import os
import re
import signal
import subprocess
import sys
import time

import psutil
import pytest

from nicos_scriptserver.instance.accounts import read_secrets
from nicos_scriptserver.clients.daemonclient import ScriptServerClient, ServerError
from nicos_scriptserver.instance.config import REPO
from nicos_scriptserver.supervisor.processes import free_instance_ports

pytestmark = pytest.mark.integration

NICOS_CLIENT = REPO / '.venv' / 'nicos-root' / 'nicos-3.12.2' / 'bin' / 'nicos-client'


def run_job(client, code):
    """Queue *code*, wait for its 'done' event and return (reqid, done data)."""
    start = len(client.events)
    reqid = client.call('queue', 'job.py', code)
    _, done = client.wait_for(
        lambda name, data: name == 'done' and data['reqid'] == reqid,
        timeout=60, start=start)
    return reqid, done, client.events[start:]


def messages_of(events, reqid):
    return [data[3] for name, data in events
            if name == 'message' and data[5] == reqid]


def test_script_with_instrument_commands_moves_devices(server):
    client = server.client('user')
    reqid, done, events = run_job(
        client, "set_ei(25)\nmove_sample(3.5, -45)\nprint('both commands done')")

    assert done['success'] is True
    speed, phase3, x, theta = client.eval_value(
        '(chopper1_speed.read(0), chopper3_phase.read(0), '
        'sample_x.read(0), sample_theta.read(0))')
    assert speed == 200.0  # 40 * sqrt(25 meV)
    velocity = 437.393 * math.sqrt(25)
    assert phase3 == pytest.approx((360 * 200 * 10.0 / velocity) % 360, abs=0.01)
    assert (x, theta) == (3.5, -45.0)
    # The job's output reached the client as events tagged with its id.
    output = ''.join(messages_of(events, reqid))
    assert 'choppers set for Ei = 25.000 meV' in output
    assert 'both commands done' in output
    assert [name for name, data in events
            if name in ('processing', 'done')] == ['processing', 'done']


def test_objects_loaded_at_start_are_left_out_of_cyclic_collections(server):
    # A full collection walking NICOS, the devices and every command file
    # stalled running jobs for tens of milliseconds (bench_catalog_daemon).
    client = server.client('user')
    reqid, done, events = run_job(
        client, "import gc\nprint('frozen objects', gc.get_freeze_count())")
    assert done['success'] is True
    output = ''.join(messages_of(events, reqid))
    frozen = re.search(r'frozen objects\s+(\d+)', output)
    assert frozen and int(frozen.group(1)) > 50_000, output


def test_measure_counts_for_the_requested_frames(server):
    client = server.client('user')
    rate = client.eval_value('frame_rate.read(0)')
    frames = int(rate * 1.5)
    started = time.monotonic()
    reqid, done, events = run_job(client, f'measure(frames={frames})')
    elapsed = time.monotonic() - started
    assert done['success'] is True
    assert elapsed >= 1.5
    output = ''.join(messages_of(events, reqid))
    assert 'count: timer = 1.500' in output
    assert client.call('ss_job', int(reqid))['progress'] == 1.0


def test_failing_command_reports_error_and_daemon_keeps_serving(server):
    client = server.client('user')
    # "start" runs at once, without waiting for the dry run that would
    # hold the job back (see test_dryrun.py).
    start = len(client.events)
    reqid = client.call('start', 'job.py', 'set_temperature(1000)')
    _, done = client.wait_for(
        lambda name, data: name == 'done' and data['reqid'] == reqid, 60, start)
    events = client.events[start:]
    assert done['success'] is False
    output = ''.join(messages_of(events, reqid))
    assert 'T_sample' in output and 'limit' in output
    assert client.eval_value('T_sample.read(0)') == 295.0
    # A failure holds the jobs waiting then, for somebody to look first;
    # none was waiting, so the next job runs.
    assert client.queue()['held'] is False
    _, done, _ = run_job(client, 'set_temperature(300)')
    assert done['success'] is True


def test_wrong_password_is_refused(server):
    with pytest.raises(ServerError, match='Invalid username or password'):
        ScriptServerClient().login(server.instance.host,
                                   server.instance.daemon_port, 'user', 'wrong')
    with pytest.raises(ServerError, match='Invalid username or password'):
        ScriptServerClient().login(server.instance.host,
                                   server.instance.daemon_port, 'nobody',
                                   server.passwords['user'])


def test_guest_can_watch_but_not_move_devices(server):
    guest = server.client('guest')
    before = guest.eval_value('sample_x.read(0)')
    for command, args in [('queue', ('', 'maw(sample_x, 11)')),
                          ('start', ('', 'maw(sample_x, 11)')),
                          ('exec', ('maw(sample_x, 11)',))]:
        with pytest.raises(ServerError, match='guest logins can only watch'):
            guest.call(command, *args)
    with pytest.raises(ServerError, match='only evaluate read-only expressions'):
        guest.call('eval', 'sample_x.move(11)', False)
    time.sleep(0.2)
    assert guest.eval_value('sample_x.read(0)') == before
    assert guest.call('getstatus')['status'][0] < 0


def test_passwords_are_not_stored_in_clear(server):
    accounts = (server.instance.datadir / 'etc' / 'accounts.toml').read_text()
    for password in server.passwords.values():
        assert password not in accounts
    assert accounts.count('hash = "scrypt$') == 3
    secrets = server.instance.datadir / 'etc' / 'secrets.toml'
    assert secrets.stat().st_mode & 0o077 == 0


def test_services_listen_on_loopback_only(server):
    for name, proc in server.processes.procs.items():
        sockets = [conn.laddr for conn in psutil.Process(proc.pid).net_connections()
                   if not conn.raddr]
        assert sockets, f'{name} listens nowhere'
        assert all(addr.ip == '127.0.0.1' for addr in sockets), (name, sockets)


def test_stock_console_client_drives_the_demo(server, tmp_path):
    env = dict(os.environ, INSTRUMENT='nicos_scriptserver.demo', HOME=str(tmp_path))
    login = f"user:{server.passwords['user']}@127.0.0.1:{server.instance.daemon_port}"
    result = subprocess.run(
        [sys.executable, str(NICOS_CLIENT), login, '-c', 'move_sample(-7, 20)'],
        env=env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    assert 'sample_x  : at' in result.stdout
    checker = server.client('guest')
    assert checker.eval_value('(sample_x.read(0), sample_theta.read(0))') == (-7.0, 20.0)


def test_demo_command_serves_and_stops_cleanly(tmp_path):
    ports = free_instance_ports()
    port, proxy_port = ports['daemon_port'], ports['proxy_port']
    args = [sys.executable, '-m', 'nicos_scriptserver.supervisor.serve', '--data',
            str(tmp_path / 'demo'), '--port', str(port), '--cache-port',
            str(ports['cache_port']), '--proxy-port', str(proxy_port),
            '--pv-port', str(ports['pv_port']), '--timescale', '20']
    if os.geteuid() == 0:
        args.append('--allow-root')
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, stdin=subprocess.DEVNULL)
    try:
        output = []
        for line in proc.stdout:
            output.append(line)
            if 'Stop with Ctrl-C' in line:
                break
        banner = ''.join(output)
        assert f'127.0.0.1:{port}' in banner, banner
        assert f'proxy          127.0.0.1:{proxy_port}' in banner, banner
        assert f'proxy events   127.0.0.1:{proxy_port + 1}' in banner, banner
        # Printed nowhere (issue #14): the operator reads them from the file.
        passwords = read_secrets(tmp_path / 'demo')
        assert not any(password in banner for password, _ in passwords.values())
        password = passwords['user'][0]
        children = service_processes(proc.pid)
        assert len(children) == 3, children  # cache, daemon, proxy

        client = ScriptServerClient().login('127.0.0.1', port, 'user', password)
        assert client.eval_value('session.experiment.name') == 'Exp'
        client.disconnect()

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        gone, alive = psutil.wait_procs(children, timeout=10)
        assert not alive, f'left behind: {alive}'
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def service_processes(pid: int) -> list:
    """The long-lived children of a supervisor: NICOS runs short `git`
    commands at start (its version), which come and go as children too."""
    services = []
    for child in psutil.Process(pid).children(recursive=True):
        try:
            if child.status() != psutil.STATUS_ZOMBIE and \
                    child.exe() == psutil.Process(pid).exe():
                services.append(child)
        except psutil.NoSuchProcess:
            pass
    return services


def test_a_killed_daemon_leaves_no_job_or_dry_run_behind(server_factory):
    running = server_factory()
    user = running.client('user')
    # A black-box job that runs for a long time, and a dry run that would
    # loop until its limit, both children of the daemon.
    user.call('ss_submit', {'kind': 'blackbox', 'source': 'import time\ntime.sleep(600)'})
    user.call('ss_submit', {'source': 'while True:\n    sleep(1)'})
    daemon = psutil.Process(running.processes.procs['daemon'].pid)

    def children():
        return [p for p in daemon.children(recursive=True)
                if p.status() != psutil.STATUS_ZOMBIE]

    def started():
        try:
            lines = [' '.join(p.cmdline()) for p in children()]
        except psutil.NoSuchProcess:
            return False
        # The job's child, and the dry-run fork server with the looping
        # dry run it forked (same command line).
        return any('blackbox-' in line for line in lines) and \
            sum('dryrunforkserver' in line for line in lines) >= 2
    deadline = time.monotonic() + 30
    while not started():
        assert time.monotonic() < deadline, 'the job and the dry run did not start'
        time.sleep(0.05)
    orphans = children()
    daemon.kill()
    gone, alive = psutil.wait_procs(orphans, timeout=10)
    assert not alive, [p.cmdline() for p in alive]
