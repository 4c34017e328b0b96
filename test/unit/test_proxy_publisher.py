"""The event socket in-process, without a daemon: who gets events (the
account of a login), subscriptions, and the bounds; real libzmq SUB
sockets and a hand-written ZMTP peer as clients."""

import os
import sys
import threading
from pathlib import Path

import pytest
import zmq

from nicos_scriptserver.proxy.budget import Limits
from nicos_scriptserver.proxy.loop import EventLoop
from nicos_scriptserver.proxy.publisher import EventAccess, Publisher
from nicos_scriptserver.proxy.sessions import Session
from waiting import wait_until

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'integration'))
from zmtp_raw import RawPeer, command, greeting, ready  # noqa: E402

KIB = 1024
ME = os.geteuid()


class Running:
    """A publisher on its own loop thread."""

    def __init__(self, **options):
        self.loop = EventLoop()
        self.stopping = threading.Event()
        self.access = EventAccess(self.loop.post)
        self.publisher = Publisher(self.loop, self.access, **options)
        self.port = self.publisher.listen('127.0.0.1', 0)
        self.thread = threading.Thread(target=self.loop.run, args=(
            self.stopping, 0.1, self.publisher.sweep))
        self.thread.start()
        self.sessions = []

    def call(self, function):
        result = []
        assert self.loop.call_in_loop(lambda: result.append(function()))
        return result[0]

    def log_in(self, uid=ME):
        session = Session(len(self.sessions), '127.0.0.1', 0.0)
        self.sessions.append(session)
        self.call(lambda: self.access.logged_in(session, uid))
        return session

    def publish(self, name='status', data=(0, 1)):
        self.call(lambda: self.publisher.publish(name, data))

    def subscribers(self):
        return self.call(lambda: len(self.publisher.subscribers))

    def served(self):
        """How many subscribers may have events and asked for them."""
        return self.call(lambda: sum(
            sub.account is not None and sub.subscriptions.wanted
            for sub in self.publisher.subscribers.values()))

    def stop(self):
        self.stopping.set()
        self.loop.post(lambda: None)
        self.thread.join(10)
        self.publisher.close_all()
        self.access.close()
        self.loop.close()


@pytest.fixture
def start():
    started = []

    def start(**options):
        started.append(Running(**options))
        return started[-1]
    yield start
    for running in started:
        running.stop()


@pytest.fixture
def context():
    context = zmq.Context()
    yield context
    context.destroy(0)


def sub_socket(context, running, topic=b'ALL'):
    sock = context.socket(zmq.SUB)
    sock.linger = 0
    sock.connect(f'tcp://127.0.0.1:{running.port}')
    sock.setsockopt(zmq.SUBSCRIBE, topic)
    return sock


def received(running, sock, timeout=10.0):
    """Publish until *sock* gets something (its subscription reaches the
    publisher a moment after it connects); what it got."""
    deadline = threading.Event()
    timer = threading.Timer(timeout, deadline.set)
    timer.start()
    try:
        while not deadline.is_set():
            running.publish()
            if sock.poll(50):
                return sock.recv_multipart()
        return None
    finally:
        timer.cancel()


def raw_subscriber(running, topic=b'ALL'):
    """A hand-written SUB, once the publisher took its subscription (and,
    with a login of its account, its account)."""
    served = running.served()
    peer = RawPeer(running.port)
    peer.handshake(b'SUB')
    peer.sock.sendall(command(b'SUBSCRIBE', topic))
    if b'ALL'.startswith(topic) and running.sessions:
        wait_until(lambda: running.served() > served, timeout=10)
    return peer


def test_a_logged_in_account_gets_events_as_nicos_sends_them(start, context):
    running = start()
    running.log_in()
    sock = sub_socket(context, running)
    assert received(running, sock) == [b'ALL', b'status', b'[0,1]']
    running.publish('message', ['daemon', 1.5, 20, 'hello\n', None, None])
    assert sock.recv_multipart()[1:] == [
        b'message', b'["daemon",1.5,20,"hello\\n",null,null]']


def test_without_a_login_of_its_account_a_connection_is_closed(start, context):
    running = start()
    running.log_in(uid=ME + 1)   # someone else's login does not count
    peer = RawPeer(running.port)
    peer.sock.sendall(greeting() + ready(b'SUB') + command(b'SUBSCRIBE', b''))
    running.publish()
    sent = peer.closed_by_server(10)
    assert sent is not None and b'ALL' not in sent
    assert running.subscribers() == 0


def test_the_last_logout_of_the_account_closes_its_event_connections(start, context):
    running = start()
    first, second = running.log_in(), running.log_in()
    peer = raw_subscriber(running)
    running.publish()
    assert peer.read_message() == [b'ALL', b'status', b'[0,1]']
    running.call(lambda: running.access.logged_out(first))
    running.publish()
    assert peer.read_message()[1] == b'status'   # another login is left
    running.call(lambda: running.access.logged_out(second))
    running.call(lambda: running.access.logged_out(second))   # once counts
    assert peer.closed_by_server(10) is not None


def test_only_subscriptions_to_all_get_events_and_cancel_stops_them(start):
    running = start()
    running.log_in()
    other, prefix, twice = (raw_subscriber(running, topic)
                            for topic in (b'ALLx', b'A', b'ALL'))
    twice.sock.sendall(command(b'SUBSCRIBE', b'ALL'))
    twice.sock.sendall(command(b'CANCEL', b'ALL'))
    running.publish('mode', 'slave')
    assert prefix.read_message() == [b'ALL', b'mode', b'"slave"']
    assert twice.read_message() == [b'ALL', b'mode', b'"slave"']
    # A cancel in the ZMTP 3.0 form, as an XSUB sends it.
    twice.sock.sendall(bytes([0, 4]) + b'\x00ALL')
    wait_until(lambda: running.served() == 1, timeout=10)
    running.publish('mode', 'master')
    assert prefix.read_message()[2] == b'"master"'
    for peer in (other, twice):
        peer.sock.settimeout(0.5)
        with pytest.raises(OSError):   # a timeout: nothing for them
            peer.read_message()


def test_beyond_max_subscribers_new_connections_are_closed(start):
    running = start(max_subscribers=2)
    running.log_in()
    kept = [raw_subscriber(running) for _ in range(2)]
    refused = RawPeer(running.port)
    assert refused.closed_by_server(10) == b''
    assert running.subscribers() == 2
    for peer in kept:
        peer.close()


def test_a_subscriber_that_does_not_read_is_closed_at_its_bound(start, context):
    limits = Limits(message=4 * KIB, before_login=128 * KIB, logged_in=256 * KIB,
                    before_login_total=1024 * KIB, total=4096 * KIB,
                    reserved=16 * KIB)
    running = start(limits=limits)
    running.log_in()
    reader = sub_socket(context, running)
    assert received(running, reader)
    raw_subscriber(running)   # never reads
    payload = 'x' * 100 * KIB
    for _ in range(200):   # 20 MB: more than socket buffers and the bound
        running.publish('request', {'script': payload})
        while reader.poll(0):
            reader.recv_multipart()
        if running.subscribers() == 1:
            break
    assert running.subscribers() == 1   # the reader is left
    assert running.call(lambda: running.publisher.budget.total) < 256 * KIB


def test_an_unfinished_handshake_is_closed_after_the_timeout(start):
    running = start(handshake_timeout=0.3)
    running.log_in()
    half = RawPeer(running.port)
    half.sock.sendall(greeting()[:20])
    assert half.closed_by_server(10) is not None
    assert running.subscribers() == 0


def test_an_event_that_is_not_json_is_left_out(start, context):
    running = start()
    running.log_in()
    sock = sub_socket(context, running)
    assert received(running, sock)
    running.publish('watch', {'x': complex(1, 2)})
    running.publish('mode', 'slave')
    assert sock.recv_multipart()[1] == b'mode'
