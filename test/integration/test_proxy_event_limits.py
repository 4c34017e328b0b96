"""Attacks on the proxy's event socket (port + 1), with a real daemon and
proxy: without a login of its account a connection gets no event; huge,
garbage and endless subscriptions and a subscriber that never reads
cannot grow the proxy's memory, and others keep getting their events."""

import base64
import os
import struct
import threading

import psutil
import pytest

from local_account import NOBODY, run_probe
from test_proxy import connect, credentials
from test_proxy_events import Events
from waiting import wait_until
from zmtp_raw import RawPeer, command, frame, greeting, ready

pytestmark = pytest.mark.integration

MIB = 1024 * 1024


@pytest.fixture(scope='module')
def server_args():
    return {'proxy': True, 'dry_run_policy': 'off'}


def proxy_rss(server) -> int:
    return psutil.Process(server.processes.procs['proxy'].pid).memory_info().rss


def subscriber(server, topic=b'ALL') -> RawPeer:
    """A hand-written SUB (ZMTP 3.1) subscribed to *topic*."""
    peer = RawPeer(server.instance.proxy_port + 1)
    peer.handshake(b'SUB')
    peer.sock.sendall(command(b'SUBSCRIBE', topic))
    return peer


class EventSource:
    """Makes the daemon send events (a held job comes and goes) until
    stopped, from a thread of its own."""

    def __init__(self, server, script='pass'):
        self.client = server.client('user')
        self.client.call('ss_hold')
        self.script = script
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run)
        self.count = 0

    def _run(self):
        while not self.stopping.is_set():
            job, = self.client.call('ss_submit', {'kind': 'aware',
                                                  'source': self.script})
            self.client.call('ss_remove', job['id'])
            self.count += 1

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        self.thread.join(60)


def only_the_handshake(sent):
    """Whether *sent* (all a connection got) is at most our greeting and
    READY: no event."""
    assert sent is not None, 'not closed'
    return len(sent) <= 64 or sent[67:72] == b'READY' and len(sent) == 91


def test_without_any_login_a_subscriber_gets_nothing(server_factory):
    running = server_factory(proxy=True, dry_run_policy='off')
    with EventSource(running):
        peer = RawPeer(running.instance.proxy_port + 1)
        # Everything at once, as fast as it can, subscribed to everything.
        peer.sock.sendall(greeting() + ready(b'SUB') + command(b'SUBSCRIBE', b''))
        # Closed once the proxy found its account has no login.
        assert only_the_handshake(peer.closed_by_server(10))


# Subscribes to everything as another local account, and reports what
# came after the handshake and whether the proxy closed the connection.
OUTSIDER = r'''
import base64, json, os, sys
import local_account
sys.path.insert(0, os.path.join(os.path.dirname(local_account.__file__),
                                'integration'))
from zmtp_raw import RawPeer, command, greeting, ready
port = int(sys.argv[1])
local_account.become()
peer = RawPeer(port)
peer.sock.sendall(greeting() + ready(b'SUB') + command(b'SUBSCRIBE', b''))
sent = peer.closed_by_server(10)
print(json.dumps(sent and base64.b64encode(sent).decode()))
'''


@pytest.mark.skipif(os.geteuid() != 0, reason='needs root to connect as nobody')
def test_another_account_gets_no_events_while_the_gui_has_them(server):
    user, token = credentials(server)
    events = Events(server)
    with connect(server) as gui:
        gui.login(user, token)
        with EventSource(server):
            wait_until(lambda: events.receive(1))   # subscribed
            sent = run_probe(OUTSIDER, str(server.instance.proxy_port + 1),
                             uid=NOBODY)
            assert only_the_handshake(sent and base64.b64decode(sent))
            # The GUI's account got them all along.
            assert events.receive(5)
    events.close()


def test_huge_and_garbage_subscriptions_are_refused_or_forgotten(server):
    user, token = credentials(server)
    with connect(server) as gui:
        gui.login(user, token)
        before = proxy_rss(server)
        # A subscription message larger than a subscription: refused by
        # its header, before its body is sent.
        huge = subscriber(server, b'x')
        huge.sock.sendall(bytes([0x02]) + struct.pack('>Q', 2 ** 40))
        assert b'ERROR' in huge.closed_by_server(10)
        garbage = RawPeer(server.instance.proxy_port + 1)
        garbage.handshake(b'SUB')
        garbage.sock.sendall(b'\x08\xff' + os.urandom(64))
        assert b'ERROR' in garbage.closed_by_server(10)
        # 20,000 different subscriptions, 60 KiB ones among them: none
        # of them can ever match, so none is kept.
        many = subscriber(server, b'ALX')
        for i in range(20000):
            topic = b'%d' % i + (b'y' * 60000 if i % 1000 == 0 else b'')
            many.sock.sendall(command(b'SUBSCRIBE', topic) if i % 2
                              else frame(b'\x01' + topic[:4000]))
        control = subscriber(server, b'ALL')
        with EventSource(server):
            # The control subscriber gets events; the others' topics never match.
            assert control.read_message()[0] == b'ALL'
            many.sock.settimeout(1)
            with pytest.raises(OSError):   # a timeout: nothing for it
                many.read_message()
        grown = proxy_rss(server) - before
        print(f'\nproxy RSS grew {grown / MIB:.1f} MiB')
        assert grown < 8 * MIB
        for peer in (many, control):
            peer.close()


def test_a_subscriber_that_does_not_read_is_dropped_not_buffered(server):
    user, token = credentials(server)
    events = Events(server)
    with connect(server) as gui:
        gui.login(user, token)
        stalled = subscriber(server, b'ALL')
        before = proxy_rss(server)
        peak = before
        # Each job announced carries 400 KB of script.
        with EventSource(server, 'x = 1  # ' + 'y' * 400000) as source:
            wait_until(lambda: events.receive(1))   # subscribed

            ours = stalled.sock.getsockname()[:2]
            proxy = psutil.Process(server.processes.procs['proxy'].pid)

            def dropped():   # seen from the proxy: the stalled one reads nothing
                nonlocal peak
                peak = max(peak, proxy.memory_info().rss)
                return not any(conn.raddr and tuple(conn.raddr)[:2] == ours
                               for conn in proxy.net_connections('tcp'))
            wait_until(dropped, timeout=120)
            # The reading subscriber is still served.
            assert events.receive(10)
        print(f'\nproxy RSS {before / MIB:.0f} MiB before, peak '
              f'{peak / MIB:.0f} MiB, {source.count} jobs of 400 KB announced')
        assert peak - before < 48 * MIB
    log = (server.instance.logdir / 'proxy.log').read_text()
    assert f'from 127.0.0.1:{ours[1]}: does not read its events' in log
    events.close()
