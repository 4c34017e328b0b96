"""A daemon link on the serving loop: a large request never makes the loop
wait for the daemon."""

import socket
import threading
import time

from nicos_scriptserver.proxy.classic import LinkError, encode_request
from nicos_scriptserver.proxy.daemonlink import (DaemonLink, Reopening,
                                                  open_later)
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


class DirectLoop:
    """A loop that runs what is posted to it at once (in the poster's thread)."""

    def post(self, callback):
        callback()


def test_a_link_waiting_out_its_backoff_tries_again_when_another_got_in():
    # After a daemon restart the mirror's link may get in first; the links
    # of clients' commands must follow at once, not after their backoff.
    reopening = Reopening(threading.Event())
    attempts, opened = [], threading.Event()

    def opener():
        attempts.append(time.monotonic())
        if len(attempts) < 4:   # 0.2 + 0.4 s of backoff, then 0.8 s
            raise LinkError('connection refused')
        return 'link'
    open_later(opener, 0.0, DirectLoop(), reopening,
               lambda link: opened.set(), lambda err: None, 'test opener')
    deadline = time.monotonic() + 10
    while len(attempts) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.05)   # well into the third wait, of 0.8 s
    reached = time.monotonic()
    reopening.reached()   # another link got in
    assert opened.wait(5)
    assert attempts[-1] - reached < 0.3
    reopening.stopping.set()


def test_stopping_ends_a_backoff_at_once():
    reopening = Reopening(threading.Event())
    attempts = []

    def opener():
        attempts.append(time.monotonic())
        raise LinkError('connection refused')
    open_later(opener, 0.0, DirectLoop(), reopening, lambda link: None,
               lambda err: None, 'stopping test opener')
    thread, = [t for t in threading.enumerate()
               if t.name == 'stopping test opener']
    while len(attempts) < 3:   # now in a wait of 0.8 s
        time.sleep(0.01)
    reopening.stopping.set()
    thread.join(0.5)
    assert not thread.is_alive() and len(attempts) == 3
