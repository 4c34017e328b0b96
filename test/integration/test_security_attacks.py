"""Attacks on a running script server by local processes without a login,
and by guests (issue #14).

Each attack is made as a local process on the instrument PC would make it
(raw sockets, another account where the account matters) against real
cache, daemon and proxy processes, and each payload would create a marker
file if it ran: the tests assert that it did not, that the attack got a
clear refusal, and that nothing changed.
"""

import base64
import os
import pickle
import socket
import threading
import uuid

import psutil
import pytest
import zmq
from nicos.core.sessions.simulation import SIM_MESSAGE
from nicos.protocols.daemon.classic import ENQ, LENGTH, NAK, STX, command2code

from local_account import NOBODY, run_probe
from test_proxy import connect, credentials, status_or_none
from waiting import wait_until

pytestmark = pytest.mark.integration

needs_root = pytest.mark.skipif(os.geteuid() != 0,
                                reason='needs root to attack as another account')


class Call:
    """Unpickling this calls *func* with *args* (a marker file: `open`)."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def payload(marker, protocol=2) -> bytes:
    return pickle.dumps(Call(open, str(marker), 'w'), protocol)


def read_reply(sock):
    start = sock.recv(1)
    if start not in (STX, NAK):
        return start
    length, = LENGTH.unpack(_exactly(sock, LENGTH.size))
    return start == STX, pickle.loads(_exactly(sock, length))


def _exactly(sock, size):
    data = b''
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        assert chunk, 'connection closed'
        data += chunk
    return data


def sync_daemon_with_cache(server, user_client):
    """Write a key as the cache's own account and wait until the daemon
    has it: everything written to the cache before is processed then."""
    stamp = uuid.uuid4().hex
    with socket.create_connection(('127.0.0.1', server.instance.cache_port), 10) as sock:
        sock.sendall(f'nicos/probe_sync/value={stamp!r}\n'.encode())
        wait_until(lambda: user_client.eval_value(
            "session.cache.get('probe_sync', 'value')") == stamp)


# -- the daemon's port, before any password ---------------------------------

def test_a_pickle_sent_before_login_runs_nothing(server, tmp_path):
    marker = tmp_path / 'ran'
    address = (server.instance.host, server.instance.daemon_port)
    with socket.create_connection(address, 10) as sock:
        sock.sendall(uuid.uuid4().bytes)
        ok, banner = read_reply(sock)
        data = pickle.dumps([Call(open, str(marker), 'w')], 2)
        sock.sendall(ENQ + command2code['authenticate'] + LENGTH.pack(len(data))
                     + data)
        reply = read_reply(sock)
    assert ok and banner['serializer'] == 'classic'
    assert reply == (False, 'invalid command or garbled data')
    assert not marker.exists()
    assert server.client('guest').call('getstatus')['status']


def test_a_huge_frame_before_login_is_refused_unread(server):
    address = (server.instance.host, server.instance.daemon_port)
    with socket.create_connection(address, 10) as sock:
        sock.settimeout(10)
        sock.sendall(uuid.uuid4().bytes)
        read_reply(sock)
        # announces 1 GiB; NICOS would wait for it and keep it all
        sock.sendall(ENQ + command2code['authenticate'] + LENGTH.pack(1 << 30)
                     + b'x' * 1024)
        reply = read_reply(sock)
        assert sock.recv(1) == b''
    assert reply == (False, 'request of 1073741824 bytes is larger than the '
                            'limit of 65536 bytes before login')
    assert server.client('guest').call('getstatus')['status']


def login_in_thread(server, user):
    """Log *user* in from another thread; the outcome appears in the
    returned dict as 'client' or 'error'."""
    outcome = {}

    def login():
        try:
            outcome['client'] = server.client(user)
        except Exception as err:  # reported by the test's assertion
            outcome['error'] = err

    threading.Thread(target=login, daemon=True).start()
    return outcome


@pytest.mark.parametrize('sent', [b'', b'half an id'],
                         ids=['nothing', 'a partial client id'])
def test_a_silent_connection_does_not_lock_others_out(server, sent):
    # Stock NICOS reads each new connection's client id in its only
    # accepting thread, without a time limit: a local process that
    # connected and said nothing kept every client out of the daemon.
    address = (server.instance.host, server.instance.daemon_port)
    with socket.create_connection(address, 10) as silent:
        silent.sendall(sent)
        outcome = login_in_thread(server, 'guest')
        wait_until(lambda: outcome, timeout=20)
        assert 'client' in outcome, outcome
        assert outcome['client'].call('getstatus')['status']


def test_events_go_to_logged_in_clients_only(server):
    # NICOS pairs an event connection with its control connection by the
    # client id alone: a local process that connected, sent no password
    # and opened its event connection got every event (scripts, log
    # messages, values).
    address = (server.instance.host, server.instance.daemon_port)
    client_id = uuid.uuid4().bytes
    with socket.create_connection(address, 10) as control, \
            socket.create_connection(address, 10) as events:
        control.sendall(client_id)
        ok, _ = read_reply(control)
        events.sendall(client_id)
        events.settimeout(10)
        marker = uuid.uuid4().hex
        user = server.client('user')
        user.call('ss_submit', {'source': f'# {marker}\n', 'name': marker})
        wait_until(lambda: any(name == 'ss_job' for name, _ in user.events))
        try:
            got = events.recv(1 << 16)
        except socket.timeout:
            got = b'(nothing, but still open)'
    assert ok
    assert got == b''


# -- the cache ---------------------------------------------------------------

CACHE_WRITER = r'''
import json, socket, sys
from local_account import become
port, line = int(sys.argv[1]), sys.argv[2]
become()
sock = socket.create_connection(('127.0.0.1', port), 10)
sock.settimeout(10)
sock.sendall(line.encode() + b'\nnicos/probe/value?\n')
got, error = b'', None
try:
    while b'\n' not in got:
        data = sock.recv(4096)
        if not data:
            break
        got += data
except OSError as err:
    error = str(err)
print(json.dumps({'answer': got.decode('latin1'), 'error': error}))
'''


def cache_line(marker) -> str:
    value = base64.b64encode(payload(marker, protocol=0)).decode()
    return f'nicos/probe/value=cache_unpickle("{value}")'


@needs_root
def test_the_cache_serves_no_other_account(server, tmp_path):
    marker = tmp_path / 'ran'
    got = run_probe(CACHE_WRITER, str(server.instance.cache_port),
                    cache_line(marker))
    sync_daemon_with_cache(server, server.client('user'))
    assert got['answer'] == '', 'the cache answered another account'
    assert not marker.exists()


def test_the_daemon_reads_cache_values_as_plain_data(server, tmp_path):
    # As the cache's own account, as a job could: the value reaches the
    # daemon, which must not run what it names.
    marker = tmp_path / 'ran'
    with socket.create_connection(('127.0.0.1', server.instance.cache_port), 10) as sock:
        sock.sendall(cache_line(marker).encode() + b'\n')
    user = server.client('user')
    sync_daemon_with_cache(server, user)
    assert not marker.exists()
    assert user.eval_value("session.cache.get('probe', 'value')") is None


# -- dry runs ------------------------------------------------------------------

class ChannelWatcher(threading.Thread):
    """Looks for the daemon's dry-run channels while dry runs happen, and
    sends a payload to every TCP port it finds."""

    def __init__(self, daemon_pid, known_ports, marker):
        super().__init__(daemon=True)
        self.daemon_proc = psutil.Process(daemon_pid)
        self.known = set(known_ports)
        self.marker = marker
        self.tcp_ports, self.unix_dirs = set(), {}
        self.stop = threading.Event()

    def run(self):
        context = zmq.Context()
        try:
            while not self.stop.is_set():
                self._look(context)
        finally:
            context.destroy(linger=0)

    def _look(self, context):
        try:
            connections = self.daemon_proc.connections('all')
        except psutil.Error:
            return
        for conn in connections:
            if conn.status == psutil.CONN_LISTEN and conn.laddr.port not in self.known \
                    and conn.laddr.port not in self.tcp_ports:
                self.tcp_ports.add(conn.laddr.port)
                sock = context.socket(zmq.DEALER)
                sock.connect(f'tcp://127.0.0.1:{conn.laddr.port}')
                sock.send(pickle.dumps((SIM_MESSAGE, Call(open, str(self.marker), 'w')), 2))
                sock.close(linger=1000)
            elif conn.family == socket.AF_UNIX and conn.laddr and \
                    os.path.basename(conn.laddr) in ('channel', 'sock'):
                directory = os.path.dirname(conn.laddr)
                try:
                    self.unix_dirs[directory] = os.stat(directory).st_mode & 0o777
                except FileNotFoundError:
                    pass


def test_dry_runs_talk_over_private_channels_only(server, tmp_path):
    marker = tmp_path / 'ran'
    user = server.client('user')
    inst = server.instance
    watcher = ChannelWatcher(server.processes.procs['daemon'].pid,
                             {inst.daemon_port}, marker)
    watcher.start()
    try:
        user.call('ss_hold')
        jobs = user.call('ss_submit', [{'name': f'dry {n}', 'source': f'maw(sample_x, {n})'}
                                       for n in range(3)])
        ids = {job['id'] for job in jobs}

        def final_states():
            # no estimate yet until the dry-run scheduler has seen the job
            states = [(job['estimate'] or {}).get('state')
                      for job in user.queue()['waiting'] if job['id'] in ids]
            return all(state in ('ok', 'failed') for state in states) and states
        assert wait_until(final_states, timeout=120) == ['ok'] * 3
        # NICOS's own dry run (the stock GUI editor's "simulate")
        reqid = str(uuid.uuid1())
        start = len(user.events)
        user.call('simulate', 'stock dry run', 'maw(sample_x, 2)', reqid)
        user.wait_for(lambda name, data: name == 'simresult' and data[2] == reqid,
                      timeout=120, start=start)
    finally:
        watcher.stop.set()
        watcher.join(10)
        user.call('ss_clear')
        user.call('ss_release')
    assert not marker.exists()
    assert watcher.tcp_ports == set(), 'a dry run listened on a TCP port'
    assert watcher.unix_dirs and set(watcher.unix_dirs.values()) == {0o700}


# -- the proxy's link to the daemon ---------------------------------------------

FAKE_DAEMON = r'''
import base64, json, pickle, socket, struct, sys, time
import rsa
from local_account import become
port, seconds = int(sys.argv[1]), float(sys.argv[2])
public, private = rsa.newkeys(512)
banner = pickle.dumps({'rsakey': base64.b64encode(public.save_pkcs1()),
                       'protocol_version': 24, 'serializer': 'classic',
                       'daemon_version': 'fake', 'pw_hashing': 'rsa,plain'}, 2)
rsa.decrypt(rsa.encrypt(b'warm up lazy imports', public), private)
become()
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(('127.0.0.1', port))
server.listen()
deadline = time.monotonic() + seconds
seen = []

def exactly(conn, size):
    data = b''
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            raise EOFError('closed')
        data += chunk
    return data

while time.monotonic() < deadline and not any('password' in s for s in seen if isinstance(s, dict)):
    server.settimeout(max(deadline - time.monotonic(), 0.1))
    try:
        conn, _ = server.accept()
    except OSError:
        break
    conn.settimeout(5)
    try:
        exactly(conn, 16)
        conn.sendall(b'\x03' + struct.pack('>I', len(banner)) + banner)
        head = exactly(conn, 7)
        creds = pickle.loads(exactly(conn, struct.unpack('>I', head[3:])[0]))[0]
        secret = creds['passwd']
        if secret.startswith('RSA:'):
            secret = rsa.decrypt(base64.b64decode(secret[4:]), private).decode()
        seen.append({'login': creds['login'], 'password': secret})
    except (OSError, EOFError) as err:
        seen.append(f'hung up: {err}')
    finally:
        conn.close()
print(json.dumps(seen))
'''


@needs_root
def test_the_proxy_logs_in_only_to_the_daemon_account(server_factory, tmp_path):
    running = server_factory(datadir=tmp_path / 'data', proxy=True)
    client = connect(running)
    client.login(*credentials(running))
    processes = running.processes
    daemon = processes.procs.pop('daemon')
    daemon.terminate()
    daemon.wait(30)
    seen = run_probe(FAKE_DAEMON, str(running.instance.daemon_port), '12',
                     uid=NOBODY, timeout=60)
    assert seen, 'the proxy never came to the fake daemon'
    assert not [s for s in seen if isinstance(s, dict)], \
        f'the proxy logged into a daemon of another account: {seen}'
    log = (running.instance.logdir / 'proxy.log').read_text()
    assert f'runs as uid {NOBODY}, not as the daemon' in log
    # the real daemon is back: the proxy serves its client again
    processes.start_daemon()
    assert wait_until(lambda: status_or_none(client), timeout=60)['status']
    client.close()


# -- guests ----------------------------------------------------------------------

def test_guest_expressions_that_run_code_are_refused(server, tmp_path):
    marker = tmp_path / 'ran'
    guest, user = server.client('guest'), server.client('user')
    escapes = [f"sorted(['open({str(marker)!r}, \"w\")'], key=eval)",
               "'{0.__class__.__init__.__globals__}'.format(sample_x)",
               "sample_x.read.__self__._cache"]
    for expr in escapes:
        with pytest.raises(Exception, match='read-only expressions'):
            guest.eval_value(expr)
    with pytest.raises(Exception, match='read-only expressions'):
        guest.call('watch', [f"open({str(marker)!r}, 'w'):probe"])
    # NICOS evaluates watch expressions every 0.2 s: once a user's
    # expression shows, a guest's would have been evaluated too
    start = len(user.events)
    user.call('watch', ['1 + 1:probe_sync'])
    user.wait_for(lambda name, data: name == 'watch' and '1 + 1:probe_sync' in data,
                  start=start)
    user.call('unwatch', ['1 + 1:probe_sync'])
    assert not marker.exists()
    assert guest.eval_value('sample_x.read()') == user.eval_value('sample_x.read()')


def test_completion_offers_no_private_names(server):
    for login in ('guest', 'user'):
        matches = server.client(login).call('complete', 'sample_x._', '_')
        assert matches == [], matches
    assert 'read(' in server.client('guest').call('complete',
                                                          'sample_x.re', 're')


def test_a_guest_cannot_stop_the_instrument(server):
    guest, user = server.client('guest'), server.client('user')
    for command in ('emergency', 'stop', 'exec', 'simulate'):
        args = {'stop': (2,), 'exec': ('1',), 'simulate': ('x', '1', 'u')}.get(command, ())
        with pytest.raises(Exception, match='guest logins can only watch'):
            guest.call(command, *args)
    assert user.queue()['held'] is False
