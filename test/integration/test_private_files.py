"""Probes of issue #14: another local account against a running server.

What cache and daemon write (the queue database with every job script and
the history, the cache, the logs, data and pid files) must not be readable
by other accounts, in the plain mode (one account runs everything) and in
the split (cache and daemon as a service account). Cache, daemon and their
children (dry runs, black-box jobs) must inherit only the environment they
need, not whatever the supervisor had.

`nobody` plays the other account, or `daemon` in the split, where nobody
is the service account. The venv's Python lives under /root on this
project's machines, where neither may enter, so the probe is a forked
child of the test that switches accounts before it reads anything.
"""

import json
import os
import pwd
import shutil
import tempfile
from collections import Counter
from pathlib import Path
from typing import Dict, Iterable, List

import pytest

from conftest import TEST_TIMESCALE, RunningServer, start_server
from nicos_scriptserver.clients.daemonclient import ScriptServerClient
from nicos_scriptserver.instance.config import REPO, Instance
from nicos_scriptserver.supervisor.processes import ServerProcesses, free_port
from test_security_probes import SERVICE_USER, SplitProcesses

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason='needs root to probe as '
                       'another account'),
]

# Another local account, in the split where nobody runs cache and daemon.
OTHER_ACCOUNT = 'daemon'
MARKER = 'SCRIPTSERVER_PROBE_SECRET'
MARKER_VALUE = 'seen-by-a-child-of-the-supervisor'
# Left readable by "an older run" before the server starts: fixed at start.
STALE = ('log/daemon/older-run.log', 'log/nicos/older-run.log',
         'data/older-run.dat', 'cache/older-run')


def read_as(account: str, paths: Iterable[Path]) -> Dict[str, str]:
    """What each path gives a process of *account*: ``'read'`` (a file
    read, a directory listed) or the name of the error."""
    entry = pwd.getpwnam(account)
    paths = [str(path) for path in paths]
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        status = 1
        try:
            os.close(rfd)
            os.setgroups([])
            os.setresgid(entry.pw_gid, entry.pw_gid, entry.pw_gid)
            os.setresuid(entry.pw_uid, entry.pw_uid, entry.pw_uid)
            outcome = {}
            for path in paths:
                try:
                    if os.path.isdir(path):
                        os.listdir(path)
                    else:
                        with open(path, 'rb') as file:
                            file.read(1)
                    outcome[path] = 'read'
                except OSError as err:
                    outcome[path] = type(err).__name__
            os.write(wfd, json.dumps(outcome).encode())
            status = 0
        finally:
            os._exit(status)
    os.close(wfd)
    with os.fdopen(rfd, 'rb') as pipe:
        data = pipe.read()
    _, status = os.waitpid(pid, 0)
    assert status == 0 and data, f'the probe as {account} failed'
    return json.loads(data)


def written_by_the_services(datadir: Path) -> List[Path]:
    """The data directory, the queue database and everything cache and
    daemon wrote, as root finds it now."""
    found = [datadir, datadir / 'queue.sqlite', datadir / 'queue.sqlite-wal',
             datadir / 'log']
    for sub in ('cache', 'log/cache', 'log/daemon', 'log/nicos', 'data', 'pid'):
        found.append(datadir / sub)
        found.extend(path for path in sorted((datadir / sub).rglob('*'))
                     if not path.is_symlink())
    return found


def assert_private(datadir: Path, account: str) -> None:
    """*account*, neither the server's nor its service account, may read
    none of what the services wrote."""
    paths = written_by_the_services(datadir)
    for sub in ('cache', 'log/daemon', 'log/nicos'):
        assert any(datadir / sub in path.parents and path.is_file()
                   for path in paths), f'nothing in {sub} to probe'
    outcome = read_as(account, paths)
    readable = sorted(str(Path(path).relative_to(datadir))
                      for path, result in outcome.items()
                      if result != 'PermissionError')
    print(f'\nas {account}: {Counter(outcome.values())}; readable: {readable}')
    assert not readable


def umask_of(pid: int) -> str:
    with open(f'/proc/{pid}/status') as status:
        return next(line.split()[1] for line in status
                    if line.startswith('Umask:'))


@pytest.fixture(scope='module')
def plain():
    """Cache and daemon as root (the `server` fixture's way), in a directory
    nobody can reach (pytest's own are private to root, which would hide
    what the server does), started from a supervisor whose environment has
    the marker, over files an older run left readable."""
    base = Path(tempfile.mkdtemp(prefix='scriptserver-private-'))
    base.chmod(0o755)
    datadir = base / 'data'
    for name in STALE:
        path = datadir / name
        path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        path.write_text('older run\n')
        path.chmod(0o644)
    for path in [datadir, *datadir.rglob('*')]:
        if path.is_dir():
            path.chmod(0o755)
    os.environ[MARKER] = MARKER_VALUE
    try:
        running = start_server(datadir)
    finally:
        del os.environ[MARKER]
    try:
        yield running
    finally:
        running.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope='module')
def split():
    """Cache and daemon as `SERVICE_USER`, as the issue #8 probes start
    them (without the proxy, which these probes do not need)."""
    for account in (SERVICE_USER, OTHER_ACCOUNT):
        try:
            pwd.getpwnam(account)
        except KeyError:
            pytest.skip(f'no {account!r} account on this machine')
    base = Path(tempfile.mkdtemp(prefix='scriptserver-private-'))
    base.chmod(0o755)
    instance = Instance(datadir=base / 'data', daemon_port=free_port(),
                        cache_port=free_port(), timescale=TEST_TIMESCALE)
    processes = SplitProcesses(instance, service_user=SERVICE_USER)
    processes.make_reachable(base / 'hold')
    try:
        yield processes.start()
    finally:
        processes.stop()
        shutil.rmtree(base, ignore_errors=True)


def run_blackbox(client: ScriptServerClient, source: str) -> str:
    start = len(client.events)
    job, = client.call('ss_submit', {'kind': 'blackbox', 'source': source})
    client.wait_for(lambda n, d: n == 'ss_job' and d['id'] == job['id']
                    and d['state'] in ('done', 'failed', 'aborted'), 60, start)
    return ''.join(d['text'] for n, d in client.events[start:]
                   if n == 'ss_output' and d['id'] == job['id'])


def run_in_daemon(client: ScriptServerClient, source: str) -> str:
    start = len(client.events)
    reqid = client.call('start', 'probe.py', source)
    client.wait_for(lambda n, d: n == 'done' and d['reqid'] == reqid, 60, start)
    return ''.join(d[3] for n, d in client.events[start:]
                   if n == 'message' and d[5] == reqid)


# A job's view: its environment and umask, as one JSON line.
SHOW = ('import json, os\nmask = os.umask(0)\nos.umask(mask)\n'
        'print("SEEN" + json.dumps({"env": dict(os.environ), '
        '"umask": oct(mask)}))\n')


def seen(output: str) -> dict:
    """What `SHOW` printed."""
    line = next(line for line in output.splitlines() if 'SEEN{' in line)
    return json.loads(line[line.index('SEEN') + 4:])


def assert_needed_only(env: Dict[str, str], instance: Instance) -> None:
    assert MARKER not in env, env
    assert env['INSTRUMENT'] == 'nicos_scriptserver.demo'
    assert env['SCRIPTSERVER_DATA'] == str(instance.datadir)
    assert str(REPO) in env['PYTHONPATH'].split(os.pathsep)
    assert env['PATH'] and env['HOME']


def test_others_cannot_read_what_a_plain_server_writes(plain: RunningServer):
    client = plain.client('user')
    run_in_daemon(client, 'print("a job, for the history")')
    assert_private(plain.instance.datadir, 'nobody')


def test_others_cannot_read_what_a_split_server_writes(split: ServerProcesses):
    client = ScriptServerClient()
    client.login(split.instance.host, split.instance.daemon_port, 'user',
                 split.passwords['user'])
    try:
        run_in_daemon(client, 'print("a job, for the history")')
    finally:
        client.disconnect()
    # Not nobody: in the split, nobody is the service account.
    assert_private(split.instance.datadir, OTHER_ACCOUNT)


def test_cache_and_daemon_run_with_a_private_umask(plain: RunningServer,
                                                   split: ServerProcesses):
    umasks = {(mode, name): umask_of(servers.procs[name].pid)
              for mode, servers in (('plain', plain.processes), ('split', split))
              for name in ('cache', 'daemon')}
    print('\numasks:', umasks)
    assert set(umasks.values()) == {'0077'}, umasks


def test_files_an_older_run_left_readable_are_private_now(plain: RunningServer):
    modes = {name: oct((plain.instance.datadir / name).stat().st_mode & 0o777)
             for name in STALE}
    print('\nmodes:', modes)
    assert set(modes.values()) == {'0o600'}, modes


def environ_of(pid: int) -> Dict[str, str]:
    """The environment process *pid* was started with."""
    with open(f'/proc/{pid}/environ', 'rb') as file:
        return dict(item.split('=', 1) for item in
                    file.read().decode().split('\0') if item)


def test_services_get_only_the_environment_they_need(plain: RunningServer):
    envs = {name: environ_of(proc.pid)
            for name, proc in plain.processes.procs.items()}
    for name, env in envs.items():
        print(f'\n{name}:', sorted(env))
    for env in envs.values():
        assert_needed_only(env, plain.instance)


def test_jobs_dry_runs_and_blackbox_children_do_not_inherit_the_marker(
        plain: RunningServer):
    client = plain.client('user')
    report = client.call('ss_dryrun', {'source': SHOW.replace(
        'print(', 'printwarning(')})
    views = {
        'job in the daemon': seen(run_in_daemon(client, SHOW)),
        'black-box job': seen(run_blackbox(client, SHOW)),
        # The warning is one of the dry run's problems.
        'dry run': seen('\n'.join(p['message'] for p in report['problems'])),
    }
    for name, view in views.items():
        print(f'\n{name}: umask {view["umask"]}, {sorted(view["env"])}')
    for name, view in views.items():
        assert_needed_only(view['env'], plain.instance)
        assert view['umask'] == '0o77', (name, view['umask'])
