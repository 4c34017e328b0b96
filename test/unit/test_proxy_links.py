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

from test_proxy_daemonlink import run_until

REFUSED = LinkError('[Errno 111] Connection refused')


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


class Restart:
    """A user pool whose daemon was killed (reopening its link was
    refused) and is back: the mirror's link got in, and the pool's opener
    is trying again, waiting for what the test hands it."""

    def __init__(self):
        self.loop = EventLoop()
        self.reopening = Reopening(threading.Event())
        self.opener = ScriptedOpener()
        self.outcomes = []
        self.pool = LinkPool(
            'user', self.opener, 1, self.loop, self.reopening,
            lambda forward, outcome: self.outcomes.append(outcome))
        first, daemon, events = link_pair()
        self.opener.next.put(first)
        self.pool.start()
        self.opener.next.put(REFUSED)
        daemon.close()
        events.close()
        run_until(self.loop, lambda: 'refused' in self.pool.last_error)
        self.unreachable_while_down = self.pool.unreachable
        attempts = self.opener.attempts
        self.reopening.reached()
        deadline = time.monotonic() + 10
        while self.opener.attempts == attempts and time.monotonic() < deadline:
            time.sleep(0.01)

    def close(self):
        self.pool.close()
        self.loop.close()
        self.reopening.stopping.set()


def test_a_command_sent_when_the_mirror_is_back_waits_for_its_own_link():
    restart = Restart()
    assert restart.unreachable_while_down == \
        'the daemon is not reachable: [Errno 111] Connection refused'
    # A person presses continue while the pool's link is still logging in.
    assert restart.pool.unreachable is None
    restart.pool.submit(Forward(None, 'user', 'continue', []))

    link, daemon, _events = link_pair()
    restart.opener.next.put(link)
    expected = encode_request('continue', [])
    received = bytearray()

    def daemon_read():
        daemon.settimeout(0.01)
        try:
            received.extend(daemon.recv(65536))
        except TimeoutError:
            pass
        return len(received) >= len(expected)
    run_until(restart.loop, daemon_read)
    assert bytes(received) == expected and restart.outcomes == []
    restart.close()


def test_a_command_waiting_for_a_link_fails_when_the_link_is_refused():
    restart = Restart()
    restart.pool.submit(Forward(None, 'user', 'continue', []))
    restart.opener.next.put(LinkError('login failed: invalid credentials'))
    run_until(restart.loop, lambda: bool(restart.outcomes))
    assert restart.outcomes == [Failed('the daemon is not reachable: login '
                                       'failed: invalid credentials',
                                       reached=False)]
    assert restart.pool.unreachable is not None
    restart.close()
