"""The dry-run fork server, with real processes: one server for many dry
runs, each in a process (and session) of its own that ends when killed,
with the server, or with the server's owner, and holds none of the
server's pipes.

The dry runs here talk to an address nobody serves: NICOS's simulation
session then waits for its first message, as long as it is let.
"""

import os
import signal
import subprocess
import sys
import textwrap
import threading
import uuid

import psutil
import pytest

from nicos_scriptserver.daemon import simulation
from nicos_scriptserver.daemon.forkserver import KILLED, ForkServer

from waiting import wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def server():
    forks = ForkServer()
    yield forks
    pid = forks.pid()
    if pid is not None:
        os.kill(pid, signal.SIGKILL)


def waiting_dry_run(forks, folder, name='a'):
    """A dry run that waits for a daemon that never speaks."""
    stderr = folder / f'{name}.err'
    stderr.touch()
    return forks.fork([f'ipc://{folder}/{name}', uuid.uuid4().hex,
                       'startup', 'user,10'], 'x = 1\n', {}, str(stderr))


def children_of(pid):
    return [child.pid for child in psutil.Process(pid).children()]


def alive(pid):
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_dry_runs_share_one_server_and_a_kill_ends_only_its_own(server, tmp_path):
    first = waiting_dry_run(server, tmp_path, 'first')
    second = waiting_dry_run(server, tmp_path, 'second')

    def in_sessions_of_their_own():
        pids = children_of(server.pid())
        return len(pids) == 2 and all(os.getsid(pid) == pid for pid in pids) and pids
    # A forked child makes its session first thing, but not at once.
    pids = wait_until(in_sessions_of_their_own)
    assert first.poll() is None and second.poll() is None
    first.kill()
    assert first.wait() == KILLED
    survivor, = wait_until(lambda: [pid for pid in pids if alive(pid)])
    assert second.poll() is None and alive(survivor)
    second.kill()
    assert second.wait() == KILLED
    wait_until(lambda: not any(alive(pid) for pid in pids))


def test_a_dry_run_holds_none_of_the_servers_pipes(server, tmp_path):
    waiting_dry_run(server, tmp_path)
    pid, = wait_until(lambda: children_of(server.pid()))

    def links(of):
        folder = f'/proc/{of}/fd'
        return {int(fd): os.readlink(f'{folder}/{fd}')
                for fd in os.listdir(folder)}
    servers = links(server.pid())
    # ZeroMQ's first eventfd: the dry run is past its own set-up.
    own = wait_until(lambda: (found := links(pid)) and any(
        link.startswith('anon_inode:[eventfd]') for link in found.values())
        and found)
    assert own[0] == own[1] == os.devnull
    assert own[2] == str(tmp_path / 'a.err')
    shared = set(own.values()) & {servers[0], servers[1]}
    assert not shared, 'the dry run could read requests or forge replies'


def test_a_dry_runs_error_output_goes_to_its_file(server, tmp_path):
    stderr = tmp_path / 'bad.err'
    stderr.touch()
    dry_run = server.fork(['--no-such-option'], '', {}, str(stderr))
    assert dry_run.wait() == 2   # argparse's usage error
    assert 'usage:' in stderr.read_text()


def test_dry_runs_end_with_the_server_and_the_next_one_starts_a_new_one(
        server, tmp_path):
    dry_run = waiting_dry_run(server, tmp_path)
    first_server = server.pid()
    pid, = wait_until(lambda: children_of(first_server))
    os.kill(first_server, signal.SIGKILL)
    assert dry_run.wait() == KILLED
    wait_until(lambda: not alive(pid))   # the parent-death signal
    wait_until(lambda: server.pid() is None)
    waiting_dry_run(server, tmp_path, 'again')
    assert server.pid() not in (None, first_server)
    wait_until(lambda: children_of(server.pid()))


def test_the_server_and_its_dry_runs_end_with_their_owner(tmp_path):
    owner = subprocess.Popen([sys.executable, '-c', textwrap.dedent(f'''
        import time, uuid
        from nicos_scriptserver.daemon.forkserver import ForkServer
        forks = ForkServer()
        stderr = {str(tmp_path / 'owner.err')!r}
        open(stderr, 'w').close()
        forks.fork(['ipc://{tmp_path}/owner', uuid.uuid4().hex, 'startup',
                    'user,10'], 'x = 1', {{}}, stderr)
        print(forks.pid(), flush=True)
        time.sleep(600)
        ''')], stdout=subprocess.PIPE, text=True,
        cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    try:
        server_pid = int(owner.stdout.readline())
        child, = wait_until(lambda: children_of(server_pid))
    finally:
        owner.kill()
        owner.wait()
    wait_until(lambda: not alive(server_pid) and not alive(child))


def test_a_dry_run_killed_as_soon_as_it_is_forked_ends(server, tmp_path):
    # Before it has made its own session, killing its group finds none.
    for n in range(20):
        dry_run = waiting_dry_run(server, tmp_path, f'early{n}')
        dry_run.kill()
        ended = threading.Event()
        threading.Thread(target=lambda: (dry_run.wait(), ended.set()),
                         daemon=True).start()
        assert ended.wait(10), f'dry run {n} still runs after its kill'
        assert dry_run.returncode == KILLED


def test_a_server_that_does_not_report_an_end_is_ended_with_its_dry_runs(
        server, tmp_path, monkeypatch):
    monkeypatch.setattr(simulation, 'FORK_SERVER', server)
    monkeypatch.setattr(simulation, 'REAP_SECONDS', 1.0)
    dry_run = waiting_dry_run(server, tmp_path)
    child, = wait_until(lambda: children_of(server.pid()))
    os.kill(server.pid(), signal.SIGSTOP)   # it reads and answers nothing
    assert simulation._reap(dry_run) == KILLED
    wait_until(lambda: not alive(child))
