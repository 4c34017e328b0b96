"""The child's end of the bridge, against a daemon played by the test."""

import select
import socket
import threading

import pytest

from nicos_scriptserver.runner.bridgechild import (BridgeClosed, BridgedError,
                                                   Channel, Device,
                                                   remote_error,
                                                   script_globals)
from nicos_scriptserver.runner.bridgewire import FrameReader, encode

pytestmark = pytest.mark.timeout(10)


class Daemon:
    """Answers each request with ``answer(request)``; keeps the requests."""

    def __init__(self, sock, answer):
        self.sock, self.answer, self.pushes = sock, answer, []
        self.requests = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        reader = FrameReader()
        while True:
            try:
                data = self.sock.recv(65536)
            except OSError:   # closed at the end of the test
                return
            if not data:
                return
            for request in reader.feed(data):
                self.requests.append(request)
                for push in self.pushes:   # pushed before the reply
                    self.sock.sendall(encode(push))
                self.pushes = []
                self.sock.sendall(encode(dict(self.answer(request),
                                              id=request['id'])))


@pytest.fixture
def pair():
    ours, theirs = socket.socketpair()
    yield Channel(theirs, '/tmp/job.py'), ours
    ours.close()
    theirs.close()


def test_calls_send_plain_data_and_get_devices_back(pair):
    channel, ours = pair
    daemon = Daemon(ours, lambda r: {'result': [{'$device': 'det'}, 2.5]})
    names = script_globals(channel, {'commands': ['move'],
                                     'devices': ['sample_x'],
                                     'isolated': False})
    det, value = names['move'](names['sample_x'], 3, wait=(1, 2))
    assert isinstance(det, Device) and str(det) == 'det' and value == 2.5
    assert det is channel.device('det')
    request, = daemon.requests
    assert request['call'] == 'move'
    assert request['args'] == [{'$device': 'sample_x'}, 3]
    assert request['kwargs'] == {'wait': [1, 2]}
    assert 'pause_point' not in names


def test_device_methods_and_parameters(pair):
    channel, ours = pair
    daemon = Daemon(ours, lambda r: {'result': 7})
    device = channel.device('sample_x')
    assert device.read(0) == 7 and device.speed == 7
    assert [(r['device'], r['method'], r['args']) for r in daemon.requests] \
        == [('sample_x', 'read', [0]), ('sample_x', 'parameter', ['speed'])]
    with pytest.raises(AttributeError):
        device.__dict__   # never asked for
    with pytest.raises(AttributeError, match='cannot be set'):
        device.speed = 3
    assert len(daemon.requests) == 2


def test_errors_keep_their_type_name_and_message():
    err = remote_error({'type': 'LimitError', 'module': 'nicos.core.errors',
                        'message': '[sample_x] 500 is above the limit'})
    assert isinstance(err, BridgedError)
    assert type(err).__name__ == 'LimitError'
    assert type(err).__module__ == 'nicos.core.errors'
    assert str(err) == '[sample_x] 500 is above the limit'
    assert type(remote_error({'type': 'LimitError',
                              'module': 'nicos.core.errors'})) is type(err)
    builtin = remote_error({'type': 'ValueError', 'module': 'builtins',
                            'message': 'no'})
    assert type(builtin) is ValueError
    # a name of a builtin from elsewhere is not taken for the builtin
    assert type(remote_error({'type': 'ValueError', 'module': 'x'})) \
        is not ValueError


def test_a_failed_call_raises_in_the_child(pair):
    channel, ours = pair
    Daemon(ours, lambda r: {'error': {'type': 'AccessError',
                                      'module': 'nicos.core.errors',
                                      'message': 'admin access is required'}})
    with pytest.raises(BridgedError, match='admin access') as caught:
        script_globals(channel, {'commands': ['calibrate']})['calibrate']()
    assert type(caught.value).__name__ == 'AccessError'


def test_pause_point_asks_the_daemon_only_when_a_pause_is_wanted(pair):
    channel, ours = pair
    daemon = Daemon(ours, lambda r: {'result': None})
    names = script_globals(channel, {'commands': ['sleep'], 'isolated': True})
    pause_point = names['pause_point']
    for _ in range(100):
        pause_point()
    assert daemon.requests == []
    ours.sendall(encode({'pause': True}))
    wait_readable(channel)
    pause_point()
    assert [r['call'] for r in daemon.requests] == ['pause_point']
    ours.sendall(encode({'pause': False}))
    wait_readable(channel)
    pause_point()
    assert len(daemon.requests) == 1
    # a push that arrives while a call waits for its reply counts too
    daemon.pushes = [{'pause': True}]
    names['sleep'](1)
    assert channel.pause_wanted


def wait_readable(channel):
    assert select.select([channel.sock], [], [], 5)[0]


def test_a_closed_channel_raises_bridge_closed(pair):
    channel, ours = pair
    ours.close()
    with pytest.raises(BridgeClosed):
        channel.call({'call': 'move', 'args': [], 'kwargs': {}})
