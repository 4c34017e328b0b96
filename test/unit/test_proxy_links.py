"""A pool of daemon links across a daemon restart: a command sent while
another link (the mirror's) is already back waits for the pool's own link
instead of failing; with the daemon down it fails at once."""

import queue
import socket
import threading
import time

from nicos_scriptserver.proxy.classic import LinkError, encode_request
from nicos_scriptserver.proxy.connection import Failed, Forward
from nicos_scriptserver.proxy.daemonlink import DaemonLink, Reopening
from nicos_scriptserver.proxy.links import LinkPool
from nicos_scriptserver.proxy.loop import EventLoop


def link_pair():
    """A link and the daemon's ends of its two connections."""
    link = DaemonLink('127.0.0.1', 1, 'user', 'password')
    link.sock, daemon = socket.socketpair()
    link.event_sock, daemon_events = socket.socketpair()
    return link, daemon, daemon_events


class ScriptedOpener:
    """Opens the links the test hands it, one per attempt, in order: a
    `LinkError` is raised, a link is returned; it waits for the next one."""

    def __init__(self):
        self.next = queue.Queue()
        self.attempts = 0

    def __call__(self):
        self.attempts += 1
        outcome = self.next.get(timeout=30)
        if isinstance(outcome, LinkError):
            raise outcome
        return outcome


def run_until(loop, done, timeout=10.0):
    stop = threading.Event()
    deadline = time.monotonic() + timeout

    def tick(now):
        if done() or now > deadline:
            stop.set()
    loop.run(stop, 0.01, tick)
    assert done()


def test_a_command_sent_when_the_mirror_is_back_waits_for_its_own_link():
    loop = EventLoop()
    reopening = Reopening(threading.Event())
    opener = ScriptedOpener()
    outcomes = []
    pool = LinkPool('user', opener, 1, loop, reopening,
                    lambda forward, outcome: outcomes.append(outcome))
    first, first_daemon, first_events = link_pair()
    opener.next.put(first)
    pool.start()

    # The daemon is killed: the link breaks, and reopening it is refused.
    opener.next.put(LinkError('[Errno 111] Connection refused'))
    first_daemon.close()
    first_events.close()
    run_until(loop, lambda: 'refused' in pool.last_error)
    assert pool.unreachable == ('the daemon is not reachable: '
                                '[Errno 111] Connection refused')

    # The daemon is back: the mirror's link gets in, this pool's opener
    # tries at once and is still logging in when a person presses continue.
    attempts = opener.attempts
    reopening.reached()
    deadline = time.monotonic() + 10
    while opener.attempts == attempts and time.monotonic() < deadline:
        time.sleep(0.01)
    assert pool.unreachable is None
    pool.submit(Forward(None, 'user', 'continue', []))

    second, second_daemon, _second_events = link_pair()
    opener.next.put(second)
    expected = encode_request('continue', [])
    received = bytearray()

    def daemon_read():
        second_daemon.settimeout(0.01)
        try:
            received.extend(second_daemon.recv(65536))
        except TimeoutError:
            pass
        return len(received) >= len(expected)
    run_until(loop, daemon_read)
    assert bytes(received) == expected and outcomes == []
    pool.close()
    loop.close()
    reopening.stopping.set()


def test_a_command_waiting_for_a_link_fails_when_the_link_is_refused():
    loop = EventLoop()
    reopening = Reopening(threading.Event())
    opener = ScriptedOpener()
    outcomes = []
    pool = LinkPool('user', opener, 1, loop, reopening,
                    lambda forward, outcome: outcomes.append(outcome))
    first, first_daemon, first_events = link_pair()
    opener.next.put(first)
    pool.start()
    opener.next.put(LinkError('[Errno 111] Connection refused'))
    first_daemon.close()
    first_events.close()
    run_until(loop, lambda: 'refused' in pool.last_error)

    attempts = opener.attempts
    reopening.reached()
    deadline = time.monotonic() + 10
    while opener.attempts == attempts and time.monotonic() < deadline:
        time.sleep(0.01)
    pool.submit(Forward(None, 'user', 'continue', []))
    opener.next.put(LinkError('login failed: invalid credentials'))
    run_until(loop, lambda: bool(outcomes))
    assert outcomes == [Failed('the daemon is not reachable: login failed: '
                               'invalid credentials', reached=False)]
    assert pool.unreachable is not None
    pool.close()
    loop.close()
    reopening.stopping.set()
