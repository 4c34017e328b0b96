"""The proxy's loopback rules: bind address, ZAP answers, peer checks."""

import threading

import pytest
import zmq
from hypothesis import given, strategies as st

from nicos_scriptserver.proxy.login import LoginPolicy, TokenLogin
from nicos_scriptserver.proxy.server import ZAP_ENDPOINT, ConfigError, \
    ProxyConfig, ProxyServer, is_loopback


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
def proxy():
    """A proxy whose daemon links are never opened (no daemon here)."""
    server = ProxyServer(ProxyConfig(accounts={'writer': ('user', 'pw')},
                                     listen_port=0),
                         TokenLogin(LoginPolicy()), zmq.Context())
    for pool in server.pools.values():
        pool.start = lambda: None
    server.bind()
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    yield server
    server.stop()
    thread.join(10)
    server.context.term()


def zap_status(context, address):
    sock = context.socket(zmq.REQ)
    sock.rcvtimeo = 5000
    sock.connect(ZAP_ENDPOINT)
    sock.send_multipart([b'1.0', b'7', b'nicos-scriptserver', address.encode(),
                         b'', b'NULL'])
    reply = sock.recv_multipart()
    sock.close(0)
    assert reply[:2] == [b'1.0', b'7']
    return reply[2]


def test_zap_accepts_loopback_and_refuses_other_peers(proxy):
    assert zap_status(proxy.context, '127.0.0.1') == b'200'
    assert zap_status(proxy.context, '::1') == b'200'
    assert zap_status(proxy.context, '10.231.7.2') == b'400'
    assert zap_status(proxy.context, '192.168.0.10') == b'400'


def test_requests_before_login_are_refused_and_the_banner_is_served(proxy):
    sock = proxy.context.socket(zmq.REQ)
    sock.rcvtimeo = 5000
    sock.connect(f'tcp://127.0.0.1:{proxy.port}')
    sock.send_multipart([b'ss_submit', b'', b'[{"source": "x = 1"}]'])
    assert sock.recv_multipart()[0::2] == [b'error', b'not logged in: send '
                                           b'getbanner and authenticate first']
    sock.send_multipart([b'getbanner', b'', b''])
    status, _, payload = sock.recv_multipart()
    assert status == b'ok' and b'"protocol_version":23' in payload
    sock.close(0)


def test_call_in_loop_runs_on_the_serving_thread(proxy):
    ran_on = []
    assert proxy.call_in_loop(lambda: ran_on.append(threading.current_thread()))
    assert ran_on and ran_on[0] is not threading.current_thread()
    assert ran_on[0].name != 'MainThread'
