"""The proxy's serving loop in-process, without a daemon: loopback rules,
real libzmq clients (REQ, DEALER, heartbeats) and the bounds."""

import errno
import socket
import sys
import threading
import time
from pathlib import Path

import pytest
import zmq
from hypothesis import given, strategies as st

from nicos_scriptserver.proxy.budget import Limits
from nicos_scriptserver.proxy.login import LoginPolicy, TokenLogin
from nicos_scriptserver.proxy.server import ConfigError, ProxyConfig, \
    ProxyServer, is_loopback
from nicos_scriptserver.proxy.transport import PAUSE_OUTPUT, RECV_BYTES

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'integration'))
from zmtp_raw import RawPeer, frame, message  # noqa: E402

KIB, MIB = 1024, 1024 * 1024


@pytest.mark.parametrize('address, loopback', [
    ('127.0.0.1', True), ('127.3.4.5', True), ('::1', True),
    ('::ffff:127.0.0.1', True), ('10.0.0.1', False), ('0.0.0.0', False),
    ('::', False), ('192.168.1.7', False), ('localhost', False), ('', False),
    ('::ffff:10.0.0.1', False), ('fe80::1%eth0', False)])
def test_is_loopback(address, loopback):
    assert is_loopback(address) is loopback


@given(st.ip_addresses())
def test_is_loopback_agrees_with_the_address_class(ip):
    mapped = getattr(ip, 'ipv4_mapped', None)
    assert is_loopback(str(ip)) == (mapped or ip).is_loopback


@pytest.mark.parametrize('host', ['0.0.0.0', '10.1.2.3', '::', 'example.org'])
def test_config_refuses_other_listen_addresses(host):
    with pytest.raises(ConfigError, match='loopback only'):
        ProxyConfig(accounts={'writer': ('user', 'pw')}, listen_host=host).check()


@pytest.fixture
def start_proxy():
    """Start proxies whose daemon links are never opened (no daemon here)."""
    started = []

    def start(**config):
        server = ProxyServer(ProxyConfig(accounts={'writer': ('user', 'pw')},
                                         listen_port=0, **config),
                             TokenLogin(LoginPolicy()))
        for pool in server.pools.values():
            pool.start = lambda: None
        server.feed.start = lambda: None
        server.bind()
        thread = threading.Thread(target=server.serve_forever)
        thread.start()
        started.append((server, thread))
        return server

    yield start
    for server, thread in started:
        server.stop()
        thread.join(10)


@pytest.fixture
def proxy(start_proxy):
    return start_proxy()


@pytest.fixture
def context():
    context = zmq.Context()
    yield context
    context.destroy(0)


def zmq_socket(context, proxy, kind=zmq.REQ, **options):
    sock = context.socket(kind)
    sock.linger = 0
    sock.rcvtimeo = 5000
    for name, value in options.items():
        setattr(sock, name, value)
    sock.connect(f'tcp://127.0.0.1:{proxy.port}')
    return sock


def in_loop(proxy, function):
    """*function*() evaluated on the serving thread."""
    result = []
    assert proxy.call_in_loop(lambda: result.append(function()))
    return result[0]


def connections(proxy):
    return in_loop(proxy, lambda: sorted(proxy.transport.peers))


def wait_for(condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, 'condition not met in time'
        time.sleep(0.02)


def test_requests_before_login_are_refused_and_the_banner_is_served(proxy, context):
    sock = zmq_socket(context, proxy)
    sock.send_multipart([b'ss_submit', b'', b'[{"source": "x = 1"}]'])
    assert sock.recv_multipart()[0::2] == [b'error', b'not logged in: send '
                                           b'getbanner and authenticate first']
    sock.send_multipart([b'getbanner', b'', b''])
    status, _, payload = sock.recv_multipart()
    assert status == b'ok' and b'"protocol_version":23' in payload


def test_a_dealer_gets_its_replies_without_a_delimiter(proxy, context):
    sock = zmq_socket(context, proxy, zmq.DEALER)
    # Pipelined: answered in order, one at a time.
    for _ in range(3):
        sock.send_multipart([b'getbanner', b'', b''])
    sock.send_multipart([b'getstatus'])
    for _ in range(3):
        assert sock.recv_multipart()[:2] == [b'ok', b'']
    assert sock.recv_multipart()[0] == b'error'


def test_libzmq_heartbeats_get_their_pongs(proxy, context):
    # libzmq closes a connection whose PINGs go unanswered for the timeout.
    sock = zmq_socket(context, proxy, heartbeat_ivl=100, heartbeat_timeout=1000,
                      heartbeat_ttl=3000)
    sock.send_multipart([b'getbanner', b'', b''])
    assert sock.recv_multipart()[0] == b'ok'
    first = connections(proxy)
    time.sleep(2.5)
    sock.send_multipart([b'getbanner', b'', b''])
    assert sock.recv_multipart()[0] == b'ok'
    assert connections(proxy) == first


class OneConnection:
    """Stands in for the listening socket: hands out one connection that
    seems to come from *address*."""

    def __init__(self, sock, address):
        self.pending = [(sock, (address, 40000))]

    def accept(self):
        if not self.pending:
            raise BlockingIOError
        return self.pending.pop()


@pytest.mark.parametrize('socket_of', ['transport', 'publisher'])
@pytest.mark.parametrize('address', ['10.231.7.2', '::ffff:10.0.0.1', '192.168.0.10'])
def test_connections_from_other_addresses_are_closed_at_accept(proxy, address,
                                                               socket_of):
    # The request socket and the event socket alike.
    ours, theirs = socket.socketpair()
    listener = getattr(proxy, socket_of).listener
    real = listener.sock

    def all_connections():
        return connections(proxy), in_loop(
            proxy, lambda: sorted(proxy.publisher.subscribers))
    before = all_connections()
    try:
        listener.sock = OneConnection(ours, address)
        in_loop(proxy, lambda: listener._accept(0))
    finally:
        listener.sock = real
    theirs.settimeout(5)
    assert theirs.recv(100) == b''   # closed, not even our greeting sent
    assert all_connections() == before


class Exhausted:
    """Stands in for the listening socket when the process is out of
    descriptors."""

    def __init__(self, listener):
        self.listener = listener

    def fileno(self):
        return self.listener.fileno()

    def accept(self):
        raise OSError(errno.EMFILE, 'Too many open files')


def test_out_of_descriptors_the_listener_rests_instead_of_spinning(proxy, context):
    listener = proxy.transport.listener.sock
    fd = listener.fileno()
    proxy.transport.listener.sock = Exhausted(listener)
    try:
        in_loop(proxy, lambda: proxy.transport.listener._accept(0))
        assert fd not in in_loop(proxy, lambda: set(proxy.loop._handlers))
    finally:
        proxy.transport.listener.sock = listener
    sock = zmq_socket(context, proxy)   # served once the rest is over
    sock.send_multipart([b'getbanner', b'', b''])
    assert sock.recv_multipart()[0] == b'ok'
    assert fd in in_loop(proxy, lambda: set(proxy.loop._handlers))


def test_half_greetings_and_silent_connections_are_closed(start_proxy, context):
    proxy = start_proxy(handshake_timeout=0.5)
    half = RawPeer(proxy.port)
    half.sock.sendall(b'\xff' + bytes(8) + b'\x7f\x03')
    silent = RawPeer(proxy.port)
    silent.handshake()
    started = time.monotonic()
    assert half.closed_by_server(5) is not None
    assert silent.closed_by_server(5) is not None
    assert time.monotonic() - started < 4
    wait_for(lambda: connections(proxy) == [])


def test_a_message_over_the_limit_closes_that_connection_only(proxy, context):
    gui = zmq_socket(context, proxy)
    attacker = RawPeer(proxy.port)
    attacker.handshake()
    chunk = frame(b'x' * MIB, more=True)
    sent = 0
    with pytest.raises(OSError):
        for _ in range(300):
            attacker.sock.sendall(chunk)
            sent += 1
            gui.send_multipart([b'getbanner', b'', b''])
            assert gui.recv_multipart()[0] == b'ok'
    assert sent < 10
    assert len(connections(proxy)) == 1
    assert in_loop(proxy, lambda: proxy.transport.budget.total) < 64 * KIB


def test_a_request_over_max_request_bytes_still_gets_an_error(proxy):
    peer = RawPeer(proxy.port)
    peer.handshake()
    peer.sock.sendall(message([b'getstatus', b'', b'x' * (MIB + 1)]))
    assert peer.read_message()[0::2] == [b'error', b'request of 1048586 bytes '
                                         b'is larger than the limit of '
                                         b'1048576 bytes']


def test_connections_before_login_share_one_bound(start_proxy, context):
    proxy = start_proxy(limits=Limits(before_login_total=MIB))
    peers = []
    for held in (400 * KIB, 800 * KIB, None):
        peer = RawPeer(proxy.port)
        peer.handshake()
        peer.sock.sendall(frame(b'x' * (400 * KIB), more=True))
        peers.append(peer)
        if held:   # taken in by the proxy before the next one sends
            wait_for(lambda held=held: in_loop(
                proxy, lambda: proxy.transport.budget.before_login_total) >= held)
    # The third crosses 1 MiB together: it is closed, the others not.
    assert peers[2].closed_by_server(5) is not None
    assert peers[0].closed_by_server(0.5) is None
    # Small requests of another client pass whatever the others hold.
    gui = zmq_socket(context, proxy)
    gui.send_multipart([b'getbanner', b'', b''])
    assert gui.recv_multipart()[0] == b'ok'


def test_a_client_that_does_not_read_is_not_read_from(proxy, context):
    greedy = RawPeer(proxy.port)
    greedy.handshake()
    request = message([b'getbanner', b'', b''])
    greedy.sock.settimeout(0.2)
    try:
        for _ in range(100000):
            greedy.sock.sendall(request)
    except socket.timeout:
        pass   # the proxy stopped reading, the kernel's buffers are full
    held = in_loop(proxy, lambda: max(peer.meter.used for peer in
                                      proxy.transport.peers.values()))
    assert held < PAUSE_OUTPUT + RECV_BYTES + 4 * KIB   # and one reply
    gui = zmq_socket(context, proxy)
    gui.send_multipart([b'getbanner', b'', b''])
    assert gui.recv_multipart()[0] == b'ok'


def test_beyond_max_sessions_new_connections_are_closed(start_proxy, context):
    proxy = start_proxy(max_sessions=2)
    first, second = RawPeer(proxy.port), RawPeer(proxy.port)
    first.handshake()
    second.handshake()
    third = RawPeer(proxy.port)
    assert third.closed_by_server(5) == b''
    first.close()
    wait_for(lambda: len(connections(proxy)) == 1)
    fourth = RawPeer(proxy.port)
    fourth.handshake()


def test_call_in_loop_runs_on_the_serving_thread(proxy):
    ran_on = []
    assert proxy.call_in_loop(lambda: ran_on.append(threading.current_thread()))
    assert ran_on and ran_on[0] is not threading.current_thread()
    assert ran_on[0].name != 'MainThread'
