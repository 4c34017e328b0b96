"""The proxy's limits against a local attacker, with a real daemon.

An attacker here is anyone with a local account: they can reach the
proxy's loopback port but have no token. What they must not do is grow
the proxy's memory, or keep the real GUI from logging in.
"""

import os
import threading
import time

import psutil
import pytest

from local_account import NOBODY, run_probe
from test_proxy import connect, credentials
from zmtp_raw import RawPeer, frame

pytestmark = pytest.mark.integration

MIB = 1024 * 1024


@pytest.fixture(scope='module')
def server_args():
    return {'proxy': True}


def proxy_rss(server) -> int:
    return psutil.Process(server.processes.procs['proxy'].pid).memory_info().rss


def send_unfinished_message(port: int, frames: int, sent: list) -> None:
    """The attack of issue #14: frames of 1 MiB, each saying more follow,
    the message never finished. Appends to *sent* what the proxy took."""
    peer = RawPeer(port)
    try:
        peer.handshake()
        chunk = frame(b'x' * MIB, more=True)
        peer.sock.settimeout(10)
        for _ in range(frames):
            peer.sock.sendall(chunk)
            sent.append(len(chunk))
    except OSError as err:
        sent.append(err)
    finally:
        peer.sock.close()


def test_an_unfinished_huge_message_closes_that_connection_only(server):
    user, token = credentials(server)
    gui = connect(server)
    gui.login(user, token)
    gui.call('getstatus')
    time.sleep(0.5)
    before = proxy_rss(server)
    sent: list = []
    attacker = threading.Thread(target=send_unfinished_message,
                                args=(server.instance.proxy_port, 300, sent))
    attacker.start()
    peak, answers = before, 0
    while attacker.is_alive():
        assert gui.call('getstatus')['status']
        answers += 1
        peak = max(peak, proxy_rss(server))
        time.sleep(0.05)
    attacker.join()
    during = proxy_rss(server)
    time.sleep(2)
    after = proxy_rss(server)
    took = sum(n for n in sent if isinstance(n, int))
    print(f'\nproxy RSS {before / MIB:.0f} MB before, peak {peak / MIB:.0f} MB, '
          f'{during / MIB:.0f} MB when the attack ended, {after / MIB:.0f} MB '
          f'2 s after the attacker disconnected; the proxy took '
          f'{took / MIB:.0f} MiB of 300; {sent[-1] if sent else None!r}; '
          f'GUI answered {answers} times meanwhile')
    # Closed after at most one request's worth (plus what the kernel's
    # socket buffers hold), and the memory is back.
    assert isinstance(sent[-1], OSError), 'the proxy took all 300 MiB'
    assert took < 16 * MIB
    assert peak - before < 32 * MIB
    assert after - before < 8 * MIB
    assert gui.call('getstatus')['status']
    gui.close()


# Guesses tokens as another local account: three on one connection, then
# one per new connection. Locked out, an attempt is refused before the
# token is looked at, so it needs no right one to show the lockout.
GUESSER = r'''
import json, sys, time
import rsa
from local_account import become
from nicos_scriptserver.clients.proxyclient import ProxyClient, ProxyError
port, user = int(sys.argv[1]), sys.argv[2]
key = rsa.PublicKey.load_pkcs1(rsa.newkeys(512)[0].save_pkcs1())
rsa.encrypt(b'warm up the lazy imports of a login', key)
become()
out = []

def attempt(client):
    started = time.monotonic()
    try:
        client.login(user, 'guess')
        result = 'in'
    except ProxyError as err:
        result = str(err)
    out.append([round(time.monotonic() - started, 3), result])

with ProxyClient('127.0.0.1', port, timeout=30) as client:
    for _ in range(3):
        attempt(client)
for _ in range(4):
    with ProxyClient('127.0.0.1', port, timeout=30) as client:
        attempt(client)
print(json.dumps(out))
'''


@pytest.mark.skipif(os.geteuid() != 0, reason='needs root to guess as nobody')
def test_a_guesser_of_another_account_is_locked_out_but_not_the_gui(server):
    user, token = credentials(server)
    attempts = run_probe(GUESSER, str(server.instance.proxy_port), user,
                         uid=NOBODY, timeout=120)
    print('\nguesser (nobody):', attempts)
    # The real GUI, another account, logs in at once ...
    started = time.monotonic()
    with connect(server) as gui:
        try:
            level = gui.login(user, token)
        finally:
            print(f'GUI (root) login answered in '
                  f'{time.monotonic() - started:.3f} s')
        assert level == 10
        assert gui.call('getstatus')['status']
    assert time.monotonic() - started < 2
    results = [result for _, result in attempts]
    assert results[:5] == ['Invalid username or password!'] * 5
    # ... while the guesser is locked out ...
    assert all('too many failed logins' in r for r in results[5:])
    # ... and each failure on one connection delays its next answer more.
    one_connection = [seconds for seconds, _ in attempts[:3]]
    assert one_connection[0] < one_connection[1] < one_connection[2]


def hold_unfinished_messages(port: int, count: int) -> list:
    """*count* connections, each holding 1 MiB of a message it never
    finishes (each within its own bound)."""
    peers = []
    for _ in range(count):
        peer = RawPeer(port)
        peer.handshake()
        try:
            peer.sock.sendall(frame(b'x' * MIB, more=True))
        except OSError:
            pass   # closed already: the connections together are over
        peers.append(peer)
    return peers


def test_many_attackers_at_once_are_bounded_together(server):
    user, token = credentials(server)
    before = proxy_rss(server)
    peers = hold_unfinished_messages(server.instance.proxy_port, 60)
    time.sleep(1)
    during = proxy_rss(server)
    closed = sum(peer.closed_by_server(0.1) is not None for peer in peers)
    with connect(server) as gui:   # the GUI logs in meanwhile
        assert gui.login(user, token) == 10
        assert gui.call('getstatus')['status']
    for peer in peers:
        peer.close()
    time.sleep(2)
    after = proxy_rss(server)
    print(f'\n60 connections with 1 MiB each: proxy RSS {before / MIB:.0f} MB '
          f'before, {during / MIB:.0f} MB while they held it ({closed} of '
          f'them closed), {after / MIB:.0f} MB after they left')
    # Connections before login hold at most 32 MiB together.
    assert closed >= 60 - 33
    assert during - before < 48 * MIB
    assert after - before < 16 * MIB
