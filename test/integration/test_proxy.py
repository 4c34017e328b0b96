"""The localhost proxy with a real daemon, its PVs and real ZeroMQ clients."""

import getpass
import json
import os
import pickle
import pwd
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import zmq

from nicos_scriptserver.instance.config import REPO
from nicos_scriptserver.supervisor.processes import free_instance_ports
from nicos_scriptserver.clients.proxyclient import ProxyClient, ProxyError
from nicos_scriptserver.proxy.protocol import MAX_REQUEST_BYTES
from otheraccount import BECOME
from waiting import wait_output_line, wait_until

pytestmark = pytest.mark.integration

VIEWER_LOGIN = 'watcher'

READ_PVS = BECOME + '''
import importlib.readers, importlib.resources, json, os, sys
import epics
if os.environ.get('AS_UID'):
    # Drop to the outsider before libca starts and learns its user name.
    become(int(os.environ['AS_UID']), int(os.environ['AS_GID']))
out = {}
for name in sys.argv[1:]:
    pv = epics.PV(name, connection_timeout=5)
    connected = pv.wait_for_connection(5)
    readable = bool(connected and epics.ca.read_access(pv.chid))
    try:
        value = pv.get(as_string=True, timeout=5) if readable else None
    except epics.ca.CASeverityException as err:
        readable, value = False, str(err)
    out[name] = {'connected': connected, 'readable': readable, 'value': value}
print(json.dumps(out))
'''


@pytest.fixture(scope='module')
def server_args():
    return {'proxy': True, 'proxy_args': ['--viewer-login', VIEWER_LOGIN]}


def read_pvs(server, *suffixes, as_user=None, port=None, prefix=None):
    """PV states as a separate CA client process (as *as_user* if given);
    the server's own PVs unless *port* and *prefix* say otherwise."""
    port = port or server.instance.pv_port
    prefix = prefix or server.instance.pv_prefix
    env = dict(os.environ, EPICS_CA_ADDR_LIST=f'127.0.0.1:{port}',
               EPICS_CA_AUTO_ADDR_LIST='NO')
    if as_user:
        entry = pwd.getpwnam(as_user)
        env.update(HOME='/', USER=as_user, LOGNAME=as_user,
                   AS_UID=str(entry.pw_uid), AS_GID=str(entry.pw_gid))
    names = [prefix + suffix for suffix in suffixes]
    out = subprocess.run([sys.executable, '-c', READ_PVS, *names], env=env,
                         cwd='/', capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    states = json.loads(out.stdout.strip().splitlines()[-1])
    return {name[len(prefix):]: state for name, state in states.items()}


def credentials(server):
    """(user name, token) as an authorised GUI reads them from the PVs."""
    pvs = read_pvs(server, 'USER', 'TOKEN')
    return pvs['USER']['value'], pvs['TOKEN']['value']


def connect(server, **kwargs):
    return ProxyClient(server.instance.host, server.instance.proxy_port, **kwargs)


@pytest.fixture
def writer(server):
    user, token = credentials(server)
    client = connect(server)
    client.login(user, token)
    client.call('ss_clear')
    client.call('ss_release')
    yield client
    client.close()


def restart_proxy(server):
    proc = server.processes.procs.pop('proxy')
    proc.terminate()
    proc.wait(10)
    server.processes.start_proxy()


def test_token_from_the_pv_logs_in_and_runs_a_job(server, writer):
    user, token = credentials(server)
    assert user == 'scriptserver' and len(token) >= 32
    banner = writer.banner
    assert banner['protocol_version'] == 23 and banner['serializer'] == 'json'
    assert set(banner['rsakey']) == {'pkcs1_base64'}
    assert banner['nicos_root'] == '' and banner['custom_path'] == ''
    job, = writer.call('ss_submit', {'kind': 'aware', 'name': 'via proxy',
                                    'source': 'sleep(0.01)'})
    done = wait_until(lambda: writer.call('ss_job', job['id'])['state']
                      in ('done', 'failed'))
    assert done
    assert writer.call('ss_job', job['id'])['state'] == 'done'
    # The daemon recorded it for the proxy's NICOS account (tier 2).
    assert writer.call('ss_job', job['id'])['owner'] == 'user'


def test_wrong_token_and_the_ibex_default_password_are_refused(server):
    user, token = credentials(server)
    with connect(server) as client:
        for attempt in (token[:-1] + ('x' if token[-1] != 'x' else 'y'),
                        'dECJ_2Fa', ''):
            with pytest.raises(ProxyError, match='Invalid username or password'):
                client.login(user, attempt)
        with pytest.raises(ProxyError, match='not logged in'):
            client.call('getstatus')
        with pytest.raises(ProxyError, match='Invalid username or password'):
            client.login('ibex', 'dECJ_2Fa', encrypt=False)
    log = (server.instance.logdir / 'proxy.log').read_text()
    assert 'failed login as' in log and 'dECJ_2Fa' not in log


def test_read_only_login_watches_but_cannot_queue(server, writer):
    with connect(server) as viewer:
        assert viewer.login(VIEWER_LOGIN, 'anything') == 0
        status = viewer.call('getstatus')
        assert status['status'][0] in (-2, -1, 0, 1)
        assert 'columns' in viewer.call('ss_queue')
        for command, args in (('queue', ('', 'print(1)')),
                              ('ss_submit', ({'kind': 'aware', 'source': 'x=1'},)),
                              ('stop', (2,)), ('ss_clear', ())):
            with pytest.raises(ProxyError, match='read-only logins can only watch'):
                viewer.call(command, *args)
        for command in ('exec', 'eval', 'debug', 'transfer'):
            with pytest.raises(ProxyError, match='not a command this proxy passes on'):
                viewer.call(command, 'print(1)')
    assert writer.call('ss_queue')['waiting'] == []


def test_pickle_payload_is_refused_and_runs_nothing(server, writer, tmp_path):
    marker = tmp_path / 'pickled'

    class Evil:
        def __reduce__(self):
            return (os.system, (f'touch {marker}',))

    blob = pickle.dumps(Evil(), 2).decode('latin1')
    for args in ([{'__pickle__': blob}],
                 ['name', {'code': [{'__pickle__': blob}]}],
                 [{'kind': 'aware', 'source': 'x = 1', 'meta': {'__pickle__': blob}}]):
        reply = writer.exchange([b'ss_submit', b'', json.dumps(args).encode()])
        assert reply[0] == b'error' and b'__pickle__' in reply[2]
    reply = writer.exchange([b'queue', b'', json.dumps(
        ['x', {'__pickle__': blob}]).encode()])
    assert reply[0] == b'error'
    time.sleep(0.5)  # what did run would have run by now
    assert not marker.exists()
    assert writer.call('ss_queue')['waiting'] == []


def test_bad_input_gets_errors_and_others_keep_being_served(server, writer):
    context = zmq.Context.instance()
    raw = context.socket(zmq.DEALER)
    raw.linger = 0
    raw.rcvtimeo = 5000
    raw.connect(f'tcp://127.0.0.1:{server.instance.proxy_port}')

    def ask(frames):
        raw.send_multipart(frames)
        reply = raw.recv_multipart()
        assert len(reply) == 3
        return reply

    cases = [
        ([b'getstatus'], b'3 frames'),
        ([b'getstatus', b'', b'[]', b'extra'], b'3 frames'),
        ([b'getstatus', b'x', b'[]'], b'second frame'),
        ([b'getstatus', b'', b'{not json'], b'not valid JSON'),
        ([b'getstatus', b'', b'{"a": 1}'], b'JSON list'),
        ([b'getstatus', b'', b'[NaN]'], b'not valid JSON'),
        ([b'\xff\xfe', b'', b'[]'], b'not ASCII'),
        ([b'no such', b'', b'[]'], b'not a command name'),
        ([b'getstatus', b'', b'[' * 40 + b']' * 40], b'nested deeper'),
        ([b'getstatus', b'', b'x' * (MAX_REQUEST_BYTES + 1)], b'larger than the limit'),
        ([b'getstatus', b'', b'[]'], b'not logged in'),
    ]
    for frames, expected in cases:
        status, _, text = ask(frames)
        assert status == b'error' and expected in text, (frames[:1], text)
    # Larger than ZeroMQ's own limit: the proxy drops that connection.
    raw.send_multipart([b'getstatus', b'', b'x' * (3 * 1024 * 1024)])
    # A client that disconnects with a request in flight.
    quitter = connect(server)
    user, token = credentials(server)
    quitter.login(user, token)
    quitter._socket.send_multipart([b'ss_dryrun', b'', json.dumps(
        [{'kind': 'aware', 'source': 'sleep(1)'}]).encode()])
    quitter.close()
    # ... and one that connects and says nothing.
    silent = context.socket(zmq.REQ)
    silent.connect(f'tcp://127.0.0.1:{server.instance.proxy_port}')
    # The others are served as before.
    assert writer.call('getstatus')['status'][0] in (-2, -1, 0, 1)
    assert writer.call('ss_queue')['waiting'] == []
    raw.close(0)
    silent.close(0)


def test_ibex_flow(server, writer):
    user, token = credentials(server)
    ibex = connect(server, timeout=5.0)
    assert ibex.login(user, token, encrypt=False) == 10  # Login.java sends plain
    script = ('for i in range(40):\n'
              '    pause_point()\n'
              '    sleep(0.05)\n')
    first = ibex.call('queue', 'first.py', script)
    second = ibex.call('queue', 'second.py', 'sleep(0.01)')
    third = ibex.call('queue', 'third.py', 'sleep(0.01)')
    assert all(isinstance(reqid, str) for reqid in (first, second, third))

    def status():
        reply = ibex.call('getstatus')
        assert isinstance(reply['status'], list)
        for request in reply['requests']:
            assert {'user', 'reqid', 'name', 'script'} <= set(request)
            assert isinstance(request['reqid'], str)
        return reply

    wait_until(lambda: status()['status'][0] == 0 and
               status()['scriptname'] == 'first.py')
    # Reorder the two waiting scripts, and edit one of them.
    assert ibex.call('rearrange', [third, second]) is None
    assert [r['reqid'] for r in status()['requests']] == [third, second]
    ibex.call('update', 'sleep(0.02)', 'Updated via IBEX client', second)
    assert [r['script'] for r in status()['requests']
            if r['reqid'] == second] == ['sleep(0.02)']
    ibex.call('unqueue', third)
    assert [r['reqid'] for r in status()['requests']] == [second]
    # Pause, continue, stop the running one.
    ibex.call('break', 2)
    wait_until(lambda: status()['status'][0] == 1)
    ibex.call('continue')
    wait_until(lambda: status()['status'][0] == 0)
    ibex.call('stop', 2)
    messages = ibex.call('getmessages', '10')
    assert messages and all(isinstance(m[1], float) and isinstance(m[3], str)
                            for m in messages)
    # A reconnect is a new socket and a new login; the old one is abandoned.
    ibex.reconnect()
    assert ibex.login(user, token, encrypt=False) == 10
    assert isinstance(ibex.call('getstatus')['requests'], list)
    ibex.close()


# What the IBEX GUI does with JeroMQ (ZMQWrapper, ZMQSession): a REQ
# socket, a request as three frames, the reply read frame by frame. Each
# line on stdin is "command<TAB>JSON arguments"; each reply is printed as
# one line, its frames joined by " | ".
JEROMQ_CLIENT = """
import java.io.BufferedReader;
import java.io.InputStreamReader;
import org.zeromq.ZMQ;

public class IbexLikeClient {
    public static void main(String[] args) throws Exception {
        ZMQ.Context context = ZMQ.context(1);
        ZMQ.Socket socket = context.socket(ZMQ.REQ);
        socket.setReceiveTimeOut(5000);
        socket.connect("tcp://127.0.0.1:" + args[0]);
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in));
        for (String line; (line = in.readLine()) != null; ) {
            String[] request = line.split("\t", 2);
            socket.sendMore(request[0]);
            socket.sendMore("");
            socket.send(request[1]);
            StringBuilder reply = new StringBuilder(String.valueOf(socket.recvStr()));
            while (socket.hasReceiveMore()) {
                reply.append(" | ").append(socket.recvStr());
            }
            System.out.println(reply);
        }
        socket.close();
        context.term();
    }
}
"""


@pytest.mark.skipif(not os.environ.get('JEROMQ_JAR') or not shutil.which('javac'),
                    reason='set JEROMQ_JAR to a jeromq jar (the IBEX GUI uses '
                    '0.5.x) and have a JDK to run a JeroMQ client')
def test_a_jeromq_req_client_as_the_ibex_gui_uses(server, tmp_path):
    jar = os.environ['JEROMQ_JAR']
    (tmp_path / 'IbexLikeClient.java').write_text(JEROMQ_CLIENT)
    subprocess.run(['javac', '-cp', jar, '-d', str(tmp_path),
                    str(tmp_path / 'IbexLikeClient.java')], check=True,
                   capture_output=True, timeout=120)
    user, token = credentials(server)
    login = json.dumps([{'login': user, 'passwd': token, 'display': 'jeromq'}])
    out = subprocess.run(
        ['java', '-cp', f'{jar}{os.pathsep}{tmp_path}', 'IbexLikeClient',
         str(server.instance.proxy_port)],
        input=f'getbanner\t[]\nauthenticate\t{login}\ngetstatus\t[]\n',
        capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    banner, auth, status = out.stdout.splitlines()
    assert banner.startswith('ok |  | ') and '"protocol_version":23' in banner
    assert auth == 'ok |  | {"user_level":10}'
    assert json.loads(status.split(' | ', 2)[2])['status']


def test_start_refuses_a_non_loopback_listen_address(server):
    # The listening address: anything but loopback is refused at start.
    out = subprocess.run(
        [sys.executable, '-m', 'nicos_scriptserver.proxy', '--data',
         str(server.instance.datadir), '--listen', '0.0.0.0:0', '--pvs', 'off',
         '--daemon', server.instance.daemon_address],
        cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and 'loopback only' in out.stderr


def test_insecure_secrets_file_stops_the_proxy(server, tmp_path):
    etc = tmp_path / 'etc'
    etc.mkdir()
    secrets = server.instance.datadir / 'etc' / 'secrets.toml'
    copy = etc / 'secrets.toml'
    copy.write_bytes(secrets.read_bytes())
    copy.chmod(0o644)
    out = subprocess.run(
        [sys.executable, '-m', 'nicos_scriptserver.proxy', '--data', str(tmp_path),
         '--listen', '127.0.0.1:0', '--pvs', 'off',
         '--daemon', server.instance.daemon_address],
        cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and 'accessible by other users' in out.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason='needs root to act as another '
                    'user (test_pvs.py covers the ACF with a foreign user name)')
def test_token_pv_only_for_allowed_readers(server):
    outsider = read_pvs(server, 'USER', 'TOKEN', as_user='nobody')
    assert outsider['TOKEN']['connected'] and not outsider['TOKEN']['readable']
    assert outsider['USER']['readable']
    assert outsider['USER']['value'] == 'scriptserver'


def test_token_is_in_no_log_file_or_argument_list(server, writer):
    _, token = credentials(server)
    writer.call('getstatus')
    needle = token.encode()
    for path in Path(server.instance.datadir).rglob('*'):
        if path.is_file():
            assert needle not in path.read_bytes(), path
    for proc in psutil.process_iter(['cmdline']):
        assert token not in ' '.join(proc.info['cmdline'] or []), proc


# Runs a module as ``python -m`` would and, at exit, writes the names of
# the modules it imported to the file named first.
RECORD_MODULES = '''
import atexit, json, runpy, sys
record = sys.argv.pop(1)
atexit.register(lambda: open(record, 'w').write(json.dumps(sorted(sys.modules))))
sys.argv = sys.argv[2:]
runpy.run_module(sys.argv[0], run_name='__main__', alter_sys=True)
'''


def test_the_proxy_process_imports_no_nicos(server, tmp_path):
    # The proxy started as always, but for the record of its modules.
    record = tmp_path / 'modules.json'
    server.processes.command = lambda name, args: [
        sys.executable, '-c', RECORD_MODULES, str(record), *args]
    try:
        restart_proxy(server)
    finally:
        del server.processes.command
    user, token = credentials(server)
    with connect(server) as client:
        client.login(user, token)
        sub = zmq.Context.instance().socket(zmq.SUB)
        sub.linger, sub.rcvtimeo = 0, 10000
        sub.connect(f'tcp://127.0.0.1:{server.instance.proxy_port + 1}')
        sub.setsockopt(zmq.SUBSCRIBE, b'ALL')
        client.call('ss_hold')

        def published():   # once the event socket knows the account
            job, = client.call('ss_submit', {'kind': 'aware', 'source': 'pass'})
            client.call('ss_remove', job['id'])
            return sub.poll(500)
        # Served: requests forwarded, events published, the mirror.
        assert wait_until(published)
        assert sub.recv_multipart()[0] == b'ALL'
        client.call('ss_release')
        client.call('getstatus')
        client.call('getmessages', '10')
        sub.close()
    restart_proxy(server)   # its exit writes the record
    modules = json.loads(record.read_text())
    assert 'nicos_scriptserver.proxy.server' in modules
    assert [name for name in modules if name.split('.')[0] == 'nicos'] == []


def test_failed_logins_lock_out_and_a_restart_makes_old_tokens_useless(server):
    user, old = credentials(server)
    with connect(server) as client:
        # Five failures within a minute from this peer (earlier tests of
        # this module count too) lock it out, even with the right token.
        for _ in range(5):
            try:
                client.login(user, 'guess')
            except ProxyError as err:
                if 'too many failed logins' in str(err):
                    break
                assert 'Invalid' in str(err)
        with pytest.raises(ProxyError, match='too many failed logins'):
            client.login(user, old)
    restart_proxy(server)
    user, new = credentials(server)
    assert new != old
    with connect(server) as client:
        with pytest.raises(ProxyError, match='Invalid'):
            client.login(user, old)
        assert client.login(user, new) == 10


def _ip(*args, check=True):
    return subprocess.run(['ip', *args], capture_output=True, text=True,
                          timeout=30, check=check)


@pytest.fixture
def netns():
    """A network namespace joined to this one by a veth pair:
    (namespace, address of our end, address of its end)."""
    name, ours, theirs = f'ssp{os.getpid()}', f'ssh{os.getpid()}', f'ssn{os.getpid()}'
    try:
        _ip('netns', 'add', name)
    except (OSError, subprocess.CalledProcessError) as err:
        pytest.skip(f'cannot create a network namespace here: {err}')
    try:
        _ip('link', 'add', ours, 'type', 'veth', 'peer', 'name', theirs)
        _ip('link', 'set', theirs, 'netns', name)
        _ip('addr', 'add', '10.231.7.1/30', 'dev', ours)
        _ip('link', 'set', ours, 'up')
        _ip('-n', name, 'addr', 'add', '10.231.7.2/30', 'dev', theirs)
        _ip('-n', name, 'link', 'set', theirs, 'up')
        yield name, '10.231.7.1', '10.231.7.2'
    finally:
        _ip('netns', 'del', name, check=False)
        _ip('link', 'del', ours, check=False)


REMOTE_CLIENT = '''
import socket, sys, zmq
host, port = sys.argv[1], int(sys.argv[2])
try:
    socket.create_connection((host, port), 3).close()
    print('tcp connected')
except OSError as err:
    print('tcp refused', err)
sock = zmq.Context().socket(zmq.REQ)
sock.linger = 0
sock.rcvtimeo = 2000
sock.connect(f'tcp://{host}:{port}')
sock.send_multipart([b'getbanner', b'', b'[]'])
try:
    print('zmq reply', sock.recv_multipart()[0])
except zmq.Again:
    print('zmq no reply')
'''


def test_connection_from_another_host_is_refused(server, netns):
    name, our_address, _ = netns
    port = server.instance.proxy_port
    # The other host reaches our veth address, where the proxy is not
    # listening; the proxy's loopback socket is not routable from there.
    out = subprocess.run(['ip', 'netns', 'exec', name, sys.executable, '-c',
                          REMOTE_CLIENT, our_address, str(port)],
                         capture_output=True, text=True, timeout=60, cwd=REPO)
    assert 'tcp refused' in out.stdout, out.stdout + out.stderr
    assert 'zmq no reply' in out.stdout, out.stdout + out.stderr
    # From here the same port answers.
    with connect(server) as client:
        assert client.call('getbanner')['protocol_version'] == 23


def test_every_process_of_the_server_has_only_loopback_sockets(server, writer):
    # A dry run and a job, so that the daemon's children exist for a while.
    writer.call('ss_submit', {'kind': 'aware', 'source': 'sleep(2)'})
    procs = [psutil.Process(proc.pid) for proc in server.processes.procs.values()]
    assert {'cache', 'daemon', 'proxy'} <= set(server.processes.procs)
    seen = []
    for proc in procs:
        for member in [proc, *proc.children(recursive=True)]:
            for conn in member.net_connections(kind='inet'):
                seen.append((member.pid, conn.type, conn.laddr))
                assert conn.laddr.ip == '::1' or conn.laddr.ip.startswith('127.'), \
                    (member.cmdline(), conn)
    # Both kinds were looked at: TCP (listeners, links) and UDP (cache, CA).
    assert {socket.SOCK_STREAM, socket.SOCK_DGRAM} <= {kind for _, kind, _ in seen}
    if writer.call('ss_queue')['current']:
        writer.call('ss_abort')


def test_clients_of_the_proxy_outlive_a_daemon_restart(server_factory, tmp_path):
    running = server_factory(datadir=tmp_path / 'data', proxy=True)
    user, token = credentials(running)
    client = connect(running)
    client.login(user, token)
    assert client.call('getstatus')
    daemon = running.processes.procs['daemon']
    daemon.kill()
    daemon.wait()
    # Clients learn at once (the IBEX GUI gives up after 500 ms) ...
    start = time.monotonic()
    with pytest.raises(ProxyError, match='daemon'):
        client.call('getstatus')
    assert time.monotonic() - start < 0.5
    with pytest.raises(ProxyError, match='the daemon is not reachable'):
        client.call('getstatus')
    # ... and are served again, still logged in, once it is back.
    running.processes.start_daemon()
    assert wait_until(lambda: status_or_none(client), timeout=30)['status']


def status_or_none(client):
    """The proxy's getstatus reply, or None while it cannot serve it."""
    try:
        return client.call('getstatus')
    except ProxyError:
        return None


def test_token_published_to_an_external_pv_server(server, tmp_path):
    """The block-server configuration: existing PVs, written over CA."""
    ports = free_instance_ports()
    me, pv_port, proxy_port = getpass.getuser(), ports['pv_port'], ports['proxy_port']
    started = []
    try:
        pvs = subprocess.Popen(
            [sys.executable, '-m', 'nicos_scriptserver.pvs', '--prefix', 'EXT:',
             '--port', str(pv_port), '--reader', me, '--writer', me,
             '--workdir', str(tmp_path)],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        started.append(pvs)
        wait_output_line(pvs, 'pvs ready')
        env = dict(os.environ, EPICS_CA_ADDR_LIST=f'127.0.0.1:{pv_port}',
                   EPICS_CA_AUTO_ADDR_LIST='NO')
        proxy = subprocess.Popen(
            [sys.executable, '-m', 'nicos_scriptserver.proxy', '--data',
             str(server.instance.datadir), '--listen', f'127.0.0.1:{proxy_port}',
             '--daemon', server.instance.daemon_address, '--pvs', 'external',
             '--pv-prefix', 'EXT:'],
            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True)
        started.append(proxy)
        wait_output_line(proxy, 'proxy ready')
        pvs_seen = read_pvs(server, 'USER', 'TOKEN', port=pv_port, prefix='EXT:')
        user, token = pvs_seen['USER']['value'], pvs_seen['TOKEN']['value']
        assert user == 'scriptserver' and token
        with ProxyClient('127.0.0.1', proxy_port) as client:
            assert client.login(user, token) == 10
            assert client.call('getstatus')['status']
    finally:
        for proc in started:
            proc.terminate()
            proc.wait(15)
