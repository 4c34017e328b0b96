"""A daemon link on the serving loop: a large request never makes the loop
wait for the daemon."""

import socket
import threading
import time

from nicos_scriptserver.proxy.classic import LinkError, encode_request
from nicos_scriptserver.proxy.daemonlink import DaemonLink
from nicos_scriptserver.proxy.loop import EventLoop

MIB = 1024 * 1024


def served_link(loop):
    """A link on *loop* whose daemon is the other end of socket pairs."""
    link = DaemonLink('127.0.0.1', 1, 'user', 'password')
    link.sock, daemon = socket.socketpair()
    link.event_sock, daemon_events = socket.socketpair()
    broken = []

    def on_broken(err):   # as the link's owners do
        broken.append(err)
        link.close()
    link.attach(loop, lambda: None, lambda: None, on_broken)
    return link, daemon, daemon_events, broken


def run_until(loop, done, timeout=10.0):
    stop = threading.Event()
    deadline = time.monotonic() + timeout

    def tick(now):
        if done() or now > deadline:
            stop.set()
    loop.run(stop, 0.01, tick)


def test_a_request_larger_than_the_socket_takes_is_written_as_the_daemon_reads():
    loop = EventLoop()
    link, daemon, _events, broken = served_link(loop)
    args = ['x' * (8 * MIB)]
    expected = encode_request('queue', args)
    started = time.monotonic()
    link.send('queue', args)   # the daemon reads nothing yet
    assert time.monotonic() - started < 1.0
    received = bytearray()

    def read():
        while len(received) < len(expected):
            received.extend(daemon.recv(MIB))
    reader = threading.Thread(target=read)
    reader.start()
    run_until(loop, lambda: not reader.is_alive())
    reader.join(1)
    assert received == expected and not broken
    link.close()


def test_a_daemon_that_goes_away_mid_request_breaks_the_link():
    loop = EventLoop()
    link, daemon, _events, broken = served_link(loop)
    link.send('queue', ['x' * (8 * MIB)])
    daemon.recv(MIB)
    daemon.close()
    run_until(loop, lambda: bool(broken))
    assert len(broken) == 1 and isinstance(broken[0], LinkError)
