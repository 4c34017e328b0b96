"""EventFanout: every client's events, from the emitting thread or the
fan-out thread, whole and in order; clients that do not read are dropped."""

import socket
import threading

import pytest

from nicos_scriptserver.daemon.fanout import EventFanout
from waiting import wait_until


class Client:
    """One end of an event connection: the daemon's end goes to the fan-out."""

    def __init__(self, name, buffer=None):
        self.name = name
        self.daemon_end, self.end = socket.socketpair()
        if buffer:
            self.daemon_end.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, buffer)
            self.end.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, buffer)
        self.end.settimeout(10)
        self.got = bytearray()

    def read(self, size):
        while len(self.got) < size:
            data = self.end.recv(1 << 16)
            assert data, f'{self.name}: connection closed'
            self.got += data
        return bytes(self.got)

    def read_until(self, end):
        while not self.got.endswith(end):
            data = self.end.recv(1 << 16)
            assert data, f'{self.name}: connection closed'
            self.got += data
        return bytes(self.got)

    def close(self):
        self.daemon_end.close()
        self.end.close()


@pytest.fixture
def fanout():
    dropped = []
    fanout = EventFanout(lambda client, reason: dropped.append((client, reason)),
                         backlog=1 << 20, stall=0.5)
    fanout.dropped = dropped
    clients = []
    fanout.client = lambda name, buffer=None: clients.append(Client(name, buffer)) \
        or clients[-1]
    yield fanout
    for client in clients:
        client.close()


def connect(fanout, client):
    fanout.add(client)
    assert fanout.attach(client, client.daemon_end)


def test_every_client_gets_every_frame_in_order(fanout):
    clients = [fanout.client(i) for i in range(20)]
    for client in clients:
        connect(fanout, client)
    frames = [b'%03d' % i * 10 for i in range(100)]
    for frame in frames:
        fanout.post(clients, frame)
    for client in clients:
        assert client.read(3000) == b''.join(frames)
    assert fanout.dropped == []


def test_events_before_the_event_connection_wait_for_it(fanout):
    client = fanout.client('late')
    fanout.add(client)
    fanout.post([client], b'first ')
    fanout.post([client], b'second')
    fanout.attach(client, client.daemon_end)
    assert client.read(12) == b'first second'


def test_frames_of_concurrent_emits_stay_whole(fanout):
    client = fanout.client('one', buffer=4096)
    connect(fanout, client)
    size, count = 20_000, 20  # under the backlog even if nothing is read
    frames = {name: [name * size] * count for name in (b'a', b'b')}

    def emit(name):
        for frame in frames[name]:
            fanout.post([client], frame)
    threads = [threading.Thread(target=emit, args=(name,)) for name in frames]
    for thread in threads:
        thread.start()
    data = client.read(2 * size * count)
    for thread in threads:
        thread.join()
    # Each frame arrives whole (no bytes of the other inside it).
    chunks = [data[i:i + size] for i in range(0, len(data), size)]
    assert all(chunk in (b'a' * size, b'b' * size) for chunk in chunks)
    assert chunks.count(b'a' * size) == chunks.count(b'b' * size) == count


def test_a_client_that_does_not_read_is_dropped_and_the_others_still_served(fanout):
    frozen = fanout.client('frozen', buffer=4096)
    reader = fanout.client('reader')
    connect(fanout, frozen)
    connect(fanout, reader)
    frame = b'x' * 100_000
    count = 0
    while not fanout.dropped:
        fanout.post([frozen, reader], frame)
        count += 1
        reader.read(count * len(frame))
    assert fanout.dropped[0][0] is frozen
    assert 'not read' in fanout.dropped[0][1]
    fanout.post([frozen, reader], b'end')
    assert reader.read(count * len(frame) + 3).endswith(b'end')


def test_a_slow_client_gets_the_rest_when_it_reads(fanout):
    slow = fanout.client('slow', buffer=4096)
    connect(fanout, slow)
    frames = [bytes([65 + i]) * 30_000 for i in range(10)]
    for frame in frames:
        fanout.post([slow], frame)
    assert slow.read(300_000) == b''.join(frames)
    assert fanout.dropped == []


def test_a_client_whose_socket_takes_nothing_is_dropped_after_the_stall_time(fanout):
    stuck = fanout.client('stuck', buffer=4096)
    connect(fanout, stuck)
    fanout.post([stuck], b'x' * 200_000)
    wait_until(lambda: fanout.dropped, timeout=10)
    assert fanout.dropped == [(stuck, 'took no events for 0.5 s')]


def test_a_removed_client_gets_nothing_more(fanout):
    gone = fanout.client('gone')
    connect(fanout, gone)
    fanout.post([gone], b'one')
    assert gone.read(3) == b'one'
    fanout.remove(gone)
    fanout.post([gone], b'two')
    gone.end.settimeout(0.2)
    with pytest.raises(socket.timeout):
        gone.end.recv(10)
    assert fanout.dropped == []


def test_an_event_connection_closed_before_it_is_attached_is_refused(fanout):
    # The client logged out between its event connection's arrival and
    # attach: its handler closed the socket. Raising here ended the
    # daemon's accepting thread.
    client = fanout.client('gone')
    fanout.add(client)
    client.daemon_end.close()
    assert fanout.attach(client, client.daemon_end) is False
    fanout.post([client], b'frame')   # and the fan-out goes on
    other = fanout.client('other')
    connect(fanout, other)
    fanout.post([other], b'frame')
    assert other.read(5) == b'frame'


def test_an_event_connection_of_a_removed_client_is_refused(fanout):
    client = fanout.client('gone')
    fanout.add(client)
    fanout.remove(client)
    assert fanout.attach(client, client.daemon_end) is False


def test_deferred_frames_keep_their_place_behind_and_before_others(fanout):
    """A frame left to the fan-out thread goes out in the order posted,
    also when a frame sent at once follows it before the thread ran."""
    clients = [fanout.client(i) for i in range(3)]
    for client in clients:
        connect(fanout, client)
    frames = [b'%04d' % i for i in range(2000)]
    for index, frame in enumerate(frames):
        # Keys that never repeat: nothing is replaced.
        fanout.post(clients, frame, key=index if index % 3 else None)
    for client in clients:
        assert client.read(8000) == b''.join(frames)


def test_deferred_frames_alone_arrive(fanout):
    client = fanout.client('a')
    connect(fanout, client)
    for index in range(5):
        fanout.post([client], b'%d' % index, key=index)
    assert client.read(5) == b'01234'


def test_a_partly_sent_batch_goes_on_where_it_stopped(fanout):
    """Batches of frames go out in one call; a socket that takes part of
    one gets the rest, in order, once it is read."""
    client = fanout.client('slow', buffer=4096)
    connect(fanout, client)
    frames = [bytes([65 + i % 26]) * (100 + i) for i in range(300)]
    for index, frame in enumerate(frames):
        fanout.post([client], frame, key=index)
    expected = b''.join(frames)
    assert client.read(len(expected)) == expected
    assert not fanout.dropped


def patient_fanout():
    """A fan-out that does not drop a client for reading nothing while a
    test posts (a busy machine took longer than the fixture's half
    second), and the reasons of the clients it dropped."""
    dropped = []
    return EventFanout(lambda client, reason: dropped.append(reason),
                       backlog=1 << 20), dropped


def test_a_keyed_frame_replaces_an_unsent_one_of_its_key_only():
    """A client that does not read keeps one unsent frame of a key (the
    newest), not one per post: a job's lines do not fill its backlog."""
    fanout, dropped = patient_fanout()
    client = Client('frozen', buffer=4096)
    connect(fanout, client)
    outbox = fanout._outboxes[client]
    line = 0
    while outbox.stalled_since is None:   # until its socket is full
        line += 1
        fanout.post([client], b'<R%06d>' % line, key='running')
        wait_until(lambda: outbox.stalled_since is not None or not outbox.frames)
    for _ in range(20_000):
        line += 1
        fanout.post([client], b'<R%06d>' % line, key='running')
    fanout.post([client], b'<message>')
    fanout.post([client], b'<B%06d>' % line, key='in break')
    fanout.post([client], b'<R%06d>' % (line + 1), key='running')
    assert outbox.size < 100
    got = client.read_until(b'<R%06d>' % (line + 1))
    assert got.endswith(b'<R%06d><message><B%06d><R%06d>' % (line, line, line + 1))
    assert not dropped
    client.close()


def test_a_partly_sent_frame_is_not_replaced():
    """The client already has the start of it: it gets the rest, then the
    newer frame of the same key, each whole."""
    fanout, dropped = patient_fanout()
    client = Client('slow', buffer=4096)
    connect(fanout, client)
    outbox = fanout._outboxes[client]
    first, second = b'a' * 100_000, b'b' * 100_000
    fanout.post([client], first, key='running')
    wait_until(lambda: outbox.stalled_since is not None)
    assert outbox.partly_sent and len(outbox.frames) == 1
    fanout.post([client], second, key='running')
    assert client.read(200_000) == first + second
    assert not dropped
    client.close()
