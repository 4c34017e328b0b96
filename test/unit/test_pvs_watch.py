"""Republishing a new token after the external PV server was away
(`nicos_scriptserver.pvs.watch`), with fake channels: no EPICS here."""

import threading

import pytest

from nicos_scriptserver.pvs.external import PublishError
from nicos_scriptserver.pvs.watch import Backoff, Republisher


class FakeChannels:
    """Stands in for `ExternalPublisher`: a server that is up or not."""

    prefix = 'P:'

    def __init__(self):
        self.up = True
        self.refuse = False
        self.published = []
        self.renewed = 0
        self.on_change = None

    def watch(self, on_change):
        self.on_change = on_change

    def renew(self):
        self.renewed += 1

    def connected(self, timeout=0.0):
        return self.up

    def publish(self, user, token):
        if self.refuse:
            raise PublishError('no write access')
        self.published.append((user, token))

    def unwatch(self):
        self.on_change = None


@pytest.fixture
def parts():
    channels = FakeChannels()
    tokens = iter(f'token{i}' for i in range(100))
    rotated = []

    def rotate():
        rotated.append(next(tokens))
        return rotated[-1]
    watcher = Republisher(channels, 'ss', rotate, check_interval=5.0,
                          backoff=Backoff(0.5, 4.0))
    return channels, watcher, rotated


def test_backoff_doubles_up_to_the_maximum_and_resets():
    backoff = Backoff(0.5, 3.0)
    assert [backoff.next() for _ in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    backoff.reset()
    assert backoff.next() == 0.5


def test_nothing_happens_while_the_server_stays(parts):
    channels, watcher, rotated = parts
    channels.on_change = watcher.on_change
    watcher.on_change(True)
    assert watcher.step() == 5.0
    assert rotated == [] and channels.published == []


def test_a_disconnect_rotates_once_the_server_is_back(parts):
    channels, watcher, rotated = parts
    channels.up = False
    watcher.on_change(False)
    watcher.on_change(False)   # one callback per channel
    # Not back: no rotation (the old hash stays), retries back off, and
    # new channels are searched for at every try.
    assert [watcher.step() for _ in range(4)] == [0.5, 1.0, 2.0, 4.0]
    assert rotated == [] and channels.renewed == 4
    channels.up = True
    assert watcher.step() == 5.0
    assert channels.published == [('ss', 'token0')]
    assert not watcher.pending and watcher.rotations == 1
    # Answered: no further rotation until the next disconnect.
    assert watcher.step() == 5.0 and len(rotated) == 1


def test_a_failed_publish_retries_with_a_new_token(parts, caplog):
    channels, watcher, rotated = parts
    watcher.on_change(False)
    channels.refuse = True
    assert watcher.step() == 0.5
    assert watcher.step() == 1.0
    assert watcher.pending and channels.published == []
    channels.refuse = False
    assert watcher.step() == 5.0
    # Every try had its own token; the one published is the last one.
    assert rotated == ['token0', 'token1', 'token2']
    assert channels.published == [('ss', 'token2')]
    assert 'no write access' in caplog.text
    for token in rotated:
        assert token not in caplog.text


def test_a_rotation_that_raises_does_not_stop_the_watch(parts):
    channels, watcher, rotated = parts
    watcher.rotate = lambda: (_ for _ in ()).throw(RuntimeError('loop gone'))
    watcher.on_change(False)
    assert watcher.step() == 0.5 and watcher.pending


def test_a_disconnect_without_callback_is_found_by_the_check(parts):
    channels, watcher, rotated = parts
    channels.up = False
    assert watcher.step() == 0.5   # noticed, not back yet
    channels.up = True
    assert watcher.step() == 5.0
    assert rotated == ['token0']


def test_a_disconnect_during_a_publish_asks_for_another(parts):
    channels, watcher, rotated = parts
    publish = channels.publish

    def publish_and_lose(user, token):
        publish(user, token)
        if len(channels.published) == 1:
            watcher.on_change(False)   # the server died again meanwhile
    channels.publish = publish_and_lose
    watcher.on_change(False)
    watcher.step()
    assert watcher.pending
    watcher.step()
    assert not watcher.pending and len(channels.published) == 2


def test_the_thread_wakes_on_a_callback_and_stops(parts):
    channels, watcher, rotated = parts
    watcher.check_interval = 60.0   # only a callback can wake it in time
    published = threading.Event()
    publish = channels.publish
    channels.publish = lambda *a: (publish(*a), published.set())
    watcher.start()
    try:
        channels.on_change(False)
        assert published.wait(10)
    finally:
        watcher.stop()
    assert channels.on_change is None and not watcher._thread.is_alive()
