"""The token and user-name PVs over real Channel Access, between processes.

Every CA client runs in its own subprocess: libca reads its configuration
(EPICS_CA_*) and the user name it reports once, when its context is made,
so one process per client identity keeps them clean.

Running as root (containers, CI), clients also run as other users
(``nobody``, ``daemon``) to check the access rules by user name. The
Python standard library may sit under root's home, unreadable for them,
so a client imports everything first and drops its uid afterwards, but
before libca makes its context (which is when libca takes the name of the
real uid, see `CLIENT`).
"""

import json
import os
import pwd
import socket
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from nicos_scriptserver.supervisor.processes import free_port
from otheraccount import BECOME
from waiting import wait_output_line

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
PREFIX = 'PVSTEST:'
TOKEN = PREFIX + 'TOKEN'
USER = PREFIX + 'USER'
ROOT = os.geteuid() == 0
ME = pwd.getpwuid(os.getuid()).pw_name
# The server's account (root in containers and CI), and with root a token
# reader and an outsider.
WRITER, READER, OUTSIDER = ME, 'nobody', 'daemon'
needs_root = pytest.mark.skipif(
    not ROOT, reason='switching to other users (nobody, daemon) needs root; '
    'test_outsider_by_acf covers the access rules without it')

# One CA client: imports, optional uid switch, then the requested actions;
# prints one JSON line.
CLIENT = BECOME + r'''
import importlib.readers, ipaddress, json, os, pwd, sys
import psutil
import epics
import epics.ca as ca
from nicos_scriptserver.pvs.external import ExternalPublisher, PublishError

req = json.loads(sys.argv[1])
if req.get('as_user'):
    pw = pwd.getpwnam(req['as_user'])
    become(pw.pw_uid, pw.pw_gid)
out = {'user': pwd.getpwuid(os.getuid()).pw_name}
if 'publish' in req:
    try:
        ExternalPublisher(req['prefix'], timeout=req.get('timeout', 5)
                          ).publish(*req['publish'])
        out['publish'] = 'ok'
    except PublishError as err:
        out['publish'] = 'error: %s' % err
for name in req.get('read', []):
    pv = epics.PV(name, auto_monitor=False)
    entry = {'connected': pv.wait_for_connection(timeout=5)}
    if entry['connected']:
        entry['read'] = bool(ca.read_access(pv.chid))
        entry['write'] = bool(ca.write_access(pv.chid))
        try:
            entry['value'] = pv.get(use_monitor=False, as_string=True,
                                    timeout=3)
        except Exception as err:   # pyepics has several unrelated types
            entry['value'] = None
            entry['error'] = str(err)
    out[name] = entry
for name, value in req.get('put', {}).items():
    pv = epics.PV(name, auto_monitor=False)
    pv.wait_for_connection(timeout=5)
    try:
        out['put ' + name] = pv.put(value, wait=True, timeout=3)
    except Exception as err:
        out['put ' + name] = 'refused: %s' % err
me = psutil.Process()
out['sockets'] = [[c.type.name, c.laddr.ip, c.laddr.port, bool(c.raddr)]
                  for c in me.net_connections(kind='inet')]
out['children'] = [p.name() for p in me.children(recursive=True)]
print(json.dumps(out), flush=True)
'''

# CredentialPVs embedded in a process, as the proxy runs it.
EMBEDDED = r'''
import json, sys
from pathlib import Path
from nicos_scriptserver.pvs.acf import AccessRules
from nicos_scriptserver.pvs.server import CredentialPVs

req = json.loads(sys.argv[1])
rules = AccessRules(token_readers=tuple(req['readers']),
                    writers=tuple(req['writers']))
pvs = CredentialPVs(req['prefix'], req['port'], rules, Path(req['workdir']))
pvs.start()
pvs.publish(req['user'], req['token'])
try:
    pvs.publish('user', 'x' * 40)
    print('long token accepted', flush=True)
except ValueError as err:
    print('long token refused:', err, flush=True)
print('ready', flush=True)
sys.stdin.read()   # serve until the test closes stdin
pvs.stop()
'''


def _free_ca_port() -> int:
    """A port free for TCP and UDP alike (a CA server needs both)."""
    for _ in range(50):
        port = free_port()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            try:
                sock.bind(('127.0.0.1', port))
            except OSError:
                continue
        return port
    raise RuntimeError('no free port for TCP and UDP')


@pytest.fixture(scope='module')
def repeater_port():
    """A UDP port held by the tests in place of a CA repeater.

    libca starts a ``caRepeater`` (which binds 0.0.0.0 and outlives the
    tests) unless it cannot bind the repeater port; holding it prevents
    that, and the servers' beacons land here instead of being refused.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(('127.0.0.1', 0))
        yield sock.getsockname()[1]


def _ca_env(port: int, repeater: int) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith('EPICS_')}
    env.update(EPICS_CA_ADDR_LIST=f'127.0.0.1:{port}',
               EPICS_CA_AUTO_ADDR_LIST='NO',
               EPICS_CA_REPEATER_PORT=str(repeater),
               EPICS_CAS_BEACON_PORT=str(repeater))
    return env


def _die_with_parent() -> None:
    import ctypes
    import signal
    ctypes.CDLL(None).prctl(1, signal.SIGTERM)   # PR_SET_PDEATHSIG


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    for pipe in (proc.stdin, proc.stdout):
        if pipe:
            pipe.close()


class PVServer:
    """A started PV server process and how to reach it."""

    def __init__(self, proc, port, repeater, workdir):
        self.proc, self.port, self.workdir = proc, port, workdir
        self.env = _ca_env(port, repeater)

    def client(self, as_user=None, **request) -> dict:
        """Run one CA client subprocess; returns its JSON report."""
        request.update(prefix=PREFIX, as_user=as_user)
        result = subprocess.run(
            [sys.executable, '-c', CLIENT, json.dumps(request)],
            cwd=REPO, env=self.env, capture_output=True, text=True,
            timeout=30)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout.strip().splitlines()[-1])

    def sockets(self):
        return psutil.Process(self.proc.pid).net_connections(kind='inet')


@pytest.fixture
def pv_server(tmp_path, repeater_port):
    """Factory: start ``python -m nicos_scriptserver.pvs`` with options."""
    procs = []

    def start(*options) -> PVServer:
        port = _free_ca_port()
        workdir = tmp_path / f'pvs{len(procs)}'
        env = _ca_env(port, repeater_port)
        with open(tmp_path / f'pvs{len(procs)}.log', 'w') as log:
            proc = subprocess.Popen(
                [sys.executable, '-m', 'nicos_scriptserver.pvs',
                 '--prefix', PREFIX, '--port', str(port),
                 '--workdir', str(workdir), *options],
                cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=log,
                preexec_fn=_die_with_parent)
        procs.append(proc)
        assert wait_output_line(proc, 'pvs ready', 15) == \
            f'pvs ready on 127.0.0.1:{port}'
        return PVServer(proc, port, repeater_port, workdir)

    yield start
    for proc in procs:
        _stop(proc)


def _assert_loopback_only(connections):
    assert connections
    for conn in connections:
        assert conn.laddr.ip in ('127.0.0.1', '::1'), conn


@pytest.fixture
def published(pv_server):
    """A server with reader nobody and this user as the writer, holding
    published values; returns (server, user, token)."""
    server = pv_server('--reader', READER, '--writer', WRITER)
    user, token = 'scriptserver', 'tok-' + os.urandom(12).hex()
    report = server.client(publish=[user, token])
    assert report['publish'] == 'ok'
    return server, user, token


@needs_root
def test_reader_reads_what_the_writer_published(published):
    server, user, token = published
    report = server.client(as_user=READER, read=[TOKEN, USER])
    # libca reports the login name of the process's (real) uid.
    assert report['user'] == READER
    assert report[TOKEN] == {'connected': True, 'read': True,
                             'write': False, 'value': token}
    assert report[USER]['value'] == user
    # The ACF is private to the server's account.
    acf = server.workdir / 'credentials.acf'
    assert acf.stat().st_mode & 0o777 == 0o600


@needs_root
def test_outsider_reads_the_user_but_not_the_token(published):
    server, user, token = published
    report = server.client(as_user=OUTSIDER, read=[TOKEN, USER])
    assert report['user'] == OUTSIDER
    assert report[TOKEN]['connected']
    assert report[TOKEN]['read'] is False
    assert report[TOKEN]['value'] is None
    assert report[USER]['read'] is True
    assert report[USER]['value'] == user


@needs_root
def test_non_writers_cannot_change_the_pvs(published):
    server, user, token = published
    for who in (READER, OUTSIDER):
        report = server.client(as_user=who, put={TOKEN: 'forged',
                                                 USER: 'forged'})
        assert report[f'put {TOKEN}'].startswith('refused'), report
        assert report[f'put {USER}'].startswith('refused'), report
    # The publisher's own check: it is told, not silently ignored.
    report = server.client(as_user=READER, publish=['forged', 'forged'])
    assert report['publish'].startswith('error: no write access')
    report = server.client(as_user=READER, read=[TOKEN, USER])
    assert (report[TOKEN]['value'], report[USER]['value']) == (token, user)


@needs_root
def test_private_user_pv_is_for_readers_only(pv_server):
    server = pv_server('--reader', READER, '--writer', WRITER,
                       '--private-user-pv')
    assert server.client(publish=['scriptserver', 'tok'])['publish'] == 'ok'
    outsider = server.client(as_user=OUTSIDER, read=[USER])
    assert outsider[USER]['read'] is False
    assert outsider[USER]['value'] is None
    reader = server.client(as_user=READER, read=[USER])
    assert reader[USER]['value'] == 'scriptserver'


@needs_root
@pytest.mark.parametrize('host, allowed', [
    (socket.gethostname(), True), ('elsewhere.invalid', False)])
def test_reader_hosts_restrict_the_readers(pv_server, host, allowed):
    server = pv_server('--reader', READER, '--reader-host', host,
                       '--writer', WRITER)
    assert server.client(publish=['scriptserver', 'tok'])['publish'] == 'ok'
    report = server.client(as_user=READER, read=[TOKEN])
    assert report[TOKEN]['read'] is allowed
    assert report[TOKEN]['value'] == ('tok' if allowed else None)


def test_outsider_by_acf(pv_server):
    """Without switching users: an ACF that names neither this user as a
    reader nor as a writer (runs as root too, root then being the
    outsider)."""
    server = pv_server('--reader', 'pvs-test-reader',
                       '--writer', 'pvs-test-writer')
    report = server.client(read=[TOKEN, USER], put={TOKEN: 'forged'},
                           publish=['forged', 'forged'])
    assert report['user'] == ME
    assert report[TOKEN]['read'] is False and report[TOKEN]['value'] is None
    assert report[USER]['read'] is True
    assert report[f'put {TOKEN}'].startswith('refused')
    assert report['publish'].startswith('error: no write access')


def test_publisher_reports_missing_pvs(pv_server):
    server = pv_server('--reader', 'r', '--writer', ME)
    server.env['EPICS_CA_ADDR_LIST'] = f'127.0.0.1:{_free_ca_port()}'
    report = server.client(publish=['scriptserver', 'tok'], timeout=1)
    assert report['publish'].startswith('error: PV PVSTEST:USER did not '
                                        'connect')


def test_publisher_refuses_values_too_long_for_a_ca_string():
    from nicos_scriptserver.pvs.external import ExternalPublisher
    with pytest.raises(ValueError, match='at most 39'):
        # Refused before any CA traffic, so no server is needed.
        ExternalPublisher(PREFIX).publish('scriptserver', 'x' * 40)


def test_server_and_client_sockets(published):
    server, user, token = published
    report = server.client(read=[TOKEN])
    # The server listens and talks on the loopback only.
    _assert_loopback_only(server.sockets())
    # The client's TCP circuit is on the loopback. libca binds its two UDP
    # sockets (search requests/replies and the context's own wake-up
    # socket) to 0.0.0.0 on ephemeral ports; no setting changes that.
    for kind, ip, port, connected in report['sockets']:
        if kind == 'SOCK_STREAM':
            assert ip == '127.0.0.1'
        else:
            assert (ip, connected) in (('0.0.0.0', False),
                                       ('127.0.0.1', False)), report
    assert len([s for s in report['sockets'] if s[1] == '0.0.0.0']) <= 2
    # With the repeater port taken, libca started no caRepeater.
    assert report['children'] == []
    # And the server stops cleanly on SIGTERM.
    server.proc.terminate()
    assert server.proc.wait(10) == 0


def test_embedded_credential_pvs(tmp_path, repeater_port):
    port = _free_ca_port()
    env = _ca_env(port, repeater_port)
    token = 'tok-' + os.urandom(12).hex()
    request = dict(prefix=PREFIX, port=port, readers=[ME], writers=['w'],
                   workdir=str(tmp_path), user='scriptserver', token=token)
    with open(tmp_path / 'embedded.log', 'w') as log:
        proc = subprocess.Popen(
            [sys.executable, '-c', EMBEDDED, json.dumps(request)], cwd=REPO,
            env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=log, preexec_fn=_die_with_parent)
    try:
        assert wait_output_line(proc, 'long token', 15).startswith(
            'long token refused: token is 40 characters long')
        wait_output_line(proc, 'ready', 15)
        server = PVServer(proc, port, repeater_port, tmp_path)
        report = server.client(read=[TOKEN, USER])
        assert report[TOKEN]['value'] == token
        assert report[USER]['value'] == 'scriptserver'
        # A reader, not a writer: read-only access.
        assert report[TOKEN]['write'] is False
        _assert_loopback_only(server.sockets())
        assert (tmp_path / 'credentials.acf').stat().st_mode & 0o777 == 0o600
        proc.stdin.close()
        assert proc.wait(10) == 0
    finally:
        _stop(proc)
