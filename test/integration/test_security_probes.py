"""Security probes of issue #8: jobs that go after the server's secrets.

Job scripts are arbitrary Python in the daemon. With the services run as an
unprivileged service account (``service_user``) and the proxy as the
starting user, a job must not get at the clear passwords in
``<data>/etc/secrets.toml``, at the proxy's memory, environment, log or
files, nor back to root. One test shows that the same probe does read the
passwords when everything runs as one user, so the probes can fail.
"""

import contextlib
import os
import pwd
import shlex
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

import psutil
import pytest

from conftest import TEST_TIMESCALE
from nicos_scriptserver.instance.accounts import read_secrets, secrets_path
from nicos_scriptserver.clients.daemonclient import ScriptServerClient
from nicos_scriptserver.instance.config import REPO, Instance
from nicos_scriptserver.supervisor.processes import ServerProcesses, free_instance_ports

SERVICE_USER = 'nobody'

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason='needs root to start the '
                       'services as another account'),
]

def private_ancestor(path: Path) -> Optional[Path]:
    """The first directory on the way to *path* that others cannot enter,
    or None if others can reach *path*."""
    for parent in reversed(Path(path).resolve().parents):
        if not parent.stat().st_mode & stat.S_IXOTH:
            return parent
    return None


def hidden_from_others() -> Dict[Path, List[Path]]:
    """What the service account must read to run this checkout (Python,
    its virtualenv, the checkout itself) and cannot, by the first directory
    on the way that others cannot enter (e.g. all under a 0700 /root)."""
    needed = sorted({Path(p).resolve() for p in (sys.base_prefix, sys.prefix, REPO)})
    outermost = [p for p in needed if not any(o in p.parents for o in needed)]
    hidden: Dict[Path, List[Path]] = {}
    for path in outermost:
        private = private_ancestor(path)
        if private:
            hidden.setdefault(private, []).append(path)
    return hidden


def reveal_script(hidden: Dict[Path, List[Path]], hold: Path) -> str:
    """Shell lines that, in a mount namespace of their own, make each
    needed path reachable: its private directory becomes an empty tmpfs
    of mode 0755 with only those paths mounted back into it (parked in
    *hold* meanwhile); then the command in the arguments runs."""
    lines = ['set -e', 'umask 022']
    parked = 0
    for private, keeps in hidden.items():
        moves = []
        for keep in keeps:
            spot = hold / str(parked)
            parked += 1
            lines += [f'mkdir -p {shlex.quote(str(spot))}',
                      f'mount --bind {shlex.quote(str(keep))} {shlex.quote(str(spot))}']
            moves.append((spot, keep))
        lines.append(f'mount -t tmpfs -o mode=0755 tmpfs {shlex.quote(str(private))}')
        for spot, keep in moves:
            lines += [f'mkdir -p {shlex.quote(str(keep))}',
                      f'mount --move {shlex.quote(str(spot))} {shlex.quote(str(keep))}']
    return '\n'.join([*lines, 'exec "$@"'])


class SplitProcesses(ServerProcesses):
    """Cache and daemon as the service user, each in a mount namespace in
    which that user can run this interpreter and read this checkout.

    Only for this machine's sake: its Python lives under /root (mode 0700),
    where no other account may read it, and a checkout may too. A
    deployment installs where the service account can read, and needs no
    namespace.
    """

    reveal: Optional[str] = None

    def make_reachable(self, hold: Path) -> None:
        """Run cache and daemon in a namespace that reveals what the
        service user needs (skips the test if that takes a missing tool)."""
        hidden = hidden_from_others()
        if not hidden:
            return
        if not shutil.which('unshare'):
            pytest.skip(f'{self.service_user} cannot read {", ".join(map(str, hidden))} '
                        'and there is no unshare to work around it')
        self.reveal = reveal_script(hidden, hold)

    def command(self, name: str, args: List[str]) -> List[str]:
        cmd = super().command(name, args)
        if name in ('cache', 'daemon') and self.reveal:
            return ['unshare', '--mount', '--propagation', 'private', 'sh',
                    '-c', self.reveal, 'sh', *cmd]
        return cmd


def read_token(instance: Instance) -> str:
    """This start's token, read from its PV as the proxy's own user."""
    env = dict(os.environ, EPICS_CA_ADDR_LIST=f'127.0.0.1:{instance.pv_port}',
               EPICS_CA_AUTO_ADDR_LIST='NO')
    out = subprocess.run(
        [sys.executable, '-c', 'import epics, sys; print(epics.caget('
         'sys.argv[1], as_string=True, timeout=10))', instance.pv_prefix + 'TOKEN'],
        env=env, capture_output=True, text=True, timeout=60, cwd='/')
    token = out.stdout.strip().splitlines()[-1]
    assert out.returncode == 0 and len(token) >= 32, out.stderr
    return token


@contextlib.contextmanager
def split_instance() -> Iterator[SplitProcesses]:
    """An instance with cache and daemon as `SERVICE_USER`, and the proxy,
    in a fresh directory that the service user can reach (pytest's own
    temporary directories may be private to root)."""
    try:
        pwd.getpwnam(SERVICE_USER)
    except KeyError:
        pytest.skip(f'no {SERVICE_USER!r} account on this machine')
    base = Path(tempfile.mkdtemp(prefix='scriptserver-security-'))
    if private_ancestor(base):
        shutil.rmtree(base)
        pytest.skip(f'{SERVICE_USER} cannot reach {base}')
    base.chmod(0o755)
    instance = Instance(datadir=base / 'data', **free_instance_ports(),
                        timescale=TEST_TIMESCALE)
    processes = SplitProcesses(instance, proxy=True, service_user=SERVICE_USER)
    processes.make_reachable(base / 'hold')
    try:
        processes.start()
        yield processes
    finally:
        processes.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope='module')
def split():
    """`split_instance`, shared by the module's tests."""
    with split_instance() as processes:
        yield processes


@pytest.fixture(scope='module')
def user_client(split):
    client = ScriptServerClient()
    client.login(split.instance.host, split.instance.daemon_port, 'user',
                 split.passwords['user'])
    yield client
    client.disconnect()


# What every probe printed, for the leak check at the end.
OUTPUTS: List[str] = []


def run_job(client: ScriptServerClient, code: str,
            record: bool = True) -> Tuple[dict, str]:
    """Run *code* at once as a job; (its 'done' event, its output)."""
    client.call('ss_release')  # a failed probe before holds the queue
    start = len(client.events)
    reqid = client.call('start', 'probe.py', code)
    _, done = client.wait_for(
        lambda name, data: name == 'done' and data['reqid'] == reqid, 120, start)
    output = ''.join(data[3] for name, data in client.events[start:]
                     if name == 'message' and data[5] == reqid)
    if record:
        OUTPUTS.append(output)
    return done, output


def probes(split) -> dict:
    """Probe name -> job script; each must fail with a permission error."""
    data = split.instance.datadir
    proxy = split.procs['proxy'].pid
    return {
        'read the secrets file': f'print(open({str(secrets_path(data))!r}).read())',
        'setuid(0)': 'import os\nos.setuid(0)\nprint("uid", os.getuid())',
        'seteuid(0)': 'import os\nos.seteuid(0)\nprint("euid", os.geteuid())',
        'setresuid(0)': 'import os\nos.setresuid(0, 0, 0)\nprint("uid", os.getuid())',
        'proxy environment': f'print(open("/proc/{proxy}/environ", "rb").read())',
        'proxy memory': f'print(open("/proc/{proxy}/mem", "rb").read(64))',
        'proxy open files': f'import os\nprint(os.listdir("/proc/{proxy}/fd"))',
        'proxy log': f'print(open({str(data / "log" / "proxy.log")!r}).read())',
        'proxy output': f'print(open({str(data / "log" / "proxy.out")!r}).read())',
        'proxy access file': f'print(open({str(data / "run" / "credentials.acf")!r}).read())',
    }


PROBES = ['read the secrets file', 'setuid(0)', 'seteuid(0)', 'setresuid(0)',
          'proxy environment', 'proxy memory', 'proxy open files', 'proxy log',
          'proxy output', 'proxy access file']


def test_services_run_as_the_service_user_and_the_proxy_does_not(split):
    nobody = pwd.getpwnam(SERVICE_USER).pw_uid
    for name in ('cache', 'daemon'):
        proc = psutil.Process(split.procs[name].pid)
        for member in [proc, *proc.children(recursive=True)]:
            try:
                uids, gids = set(member.uids()), set(member.gids())
            except psutil.NoSuchProcess:
                if member is proc:
                    raise
                continue   # a dry run that has just ended
            assert uids == {nobody}, (name, member)
            assert gids == {pwd.getpwnam(SERVICE_USER).pw_gid}
    assert psutil.Process(split.procs['proxy'].pid).uids().real == os.geteuid()
    secrets = secrets_path(split.instance.datadir).stat()
    assert secrets.st_uid == os.geteuid() and stat.S_IMODE(secrets.st_mode) == 0o600


def test_the_split_serves_when_the_supervisor_has_a_private_umask():
    """systemd's ``UMask=0077`` in the unit file: the supervisor then
    creates etc/ and accounts.toml without group or other access, and the
    daemon (the service account) must still read the account hashes."""
    umask = os.umask(0o077)
    try:
        with split_instance() as processes:
            client = ScriptServerClient().login(
                processes.instance.host, processes.instance.daemon_port,
                'user', processes.passwords['user'])
            assert client.eval_value('1 + 1') == 2
            client.disconnect()
    finally:
        os.umask(umask)


@pytest.mark.parametrize('probe', PROBES)
def test_probe_fails_with_a_permission_error(split, user_client, probe):
    done, output = run_job(user_client, probes(split)[probe])
    assert done['success'] is False, output
    assert 'PermissionError' in output, output


def test_a_job_sees_the_proxy_command_line_but_no_secret_in_it(split, user_client):
    proxy = split.procs['proxy'].pid
    done, output = run_job(user_client, (
        f'print(open("/proc/{proxy}/cmdline", "rb").read().replace(b"\\0", b" "))\n'
        f'print(open("/proc/{proxy}/status").read())'))
    assert done['success'] is True
    assert 'nicos_scriptserver.proxy' in output


def test_no_password_or_token_in_outputs_logs_or_history(split, user_client):
    secrets = [password for password, _ in read_secrets(split.instance.datadir).values()]
    secrets.append(read_token(split.instance))
    if len(OUTPUTS) < len(PROBES):  # run on its own (-k): probe now
        for code in probes(split).values():
            run_job(user_client, code)
    history = repr(user_client.call('ss_history', 1000))
    assert 'PermissionError' in history
    files = [path for path in split.instance.datadir.rglob('*') if path.is_file()
             and path != secrets_path(split.instance.datadir)]
    assert any(path.name == 'proxy.log' for path in files)
    for secret in secrets:
        assert not any(secret in output for output in OUTPUTS)
        assert secret not in history
        for path in files:
            assert secret.encode() not in path.read_bytes(), path


def test_the_same_probe_reads_every_password_when_all_runs_as_one_user(
        server_factory, tmp_path):
    """The risk is real: with the daemon as the secrets file's owner (the
    demo as root without --service-user), a job prints admin's password."""
    running = server_factory(datadir=tmp_path / 'same-user')
    client = running.client('user')
    done, output = run_job(client, 'print(open({!r}).read())'.format(
        str(secrets_path(running.instance.datadir))), record=False)
    assert done['success'] is True
    assert running.passwords['admin'] in output


def test_nicos_own_setuser_can_be_undone_by_a_job():
    """Why the service does not leave the switch to NICOS: setuser() as the
    daemon calls it changes only the effective ids, so root comes back."""
    code = ('import os\nfrom nicos import config\nfrom nicos.utils import setuser\n'
            f'config.user = {SERVICE_USER!r}\nsetuser()\nbefore = os.geteuid()\n'
            'os.seteuid(0)\nprint(before, os.geteuid())')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True,
                         text=True, timeout=60, cwd='/')
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [str(pwd.getpwnam(SERVICE_USER).pw_uid), '0']


@pytest.mark.parametrize('args, message', [
    (['--user', 'no-such-account-8'], 'there is no such account'),
    (['--user', 'root'], 'that is root'),
    (['--user', SERVICE_USER, '--group', 'no-such-group-8'], 'no such group'),
])
def test_service_refuses_an_account_it_cannot_switch_to(tmp_path, args, message):
    env = dict(os.environ, **Instance(datadir=tmp_path).to_env())
    out = subprocess.run(
        [sys.executable, '-m', 'nicos_scriptserver.supervisor.service', 'daemon', *args],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and message in out.stderr, out.stderr
    assert not (tmp_path / 'pid').exists()  # refused before touching anything
