"""Proxy sessions: expiry of abandoned handshakes, the size bound."""

import pytest

from nicos_scriptserver.proxy.protocol import WRITER, ProtocolError
from nicos_scriptserver.proxy.sessions import SessionTable


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def clock():
    return Clock()


def table(clock, **kwargs):
    return SessionTable(clock=clock, **kwargs)


def test_abandoned_handshake_expires_quickly_and_a_login_later(clock):
    sessions = table(clock, handshake_timeout=10, idle_timeout=600)
    sessions.touch(b'ibex-old', '127.0.0.1')
    sessions.touch(b'ibex-new', '127.0.0.1').role = WRITER
    clock.now += 11
    assert [s.identity for s in sessions.expire()] == [b'ibex-old']
    clock.now += 588  # 599 s idle
    assert sessions.expire() == []
    clock.now += 2
    assert [s.identity for s in sessions.expire()] == [b'ibex-new']
    assert len(sessions) == 0


def test_polling_keeps_a_session_alive(clock):
    sessions = table(clock, idle_timeout=5)
    session = sessions.touch(b'a', '127.0.0.1')
    session.role = WRITER
    for _ in range(10):
        clock.now += 4
        assert sessions.touch(b'a', '127.0.0.1') is session
        assert sessions.expire() == []


def test_a_session_being_served_a_login_check_say_is_not_expired(clock):
    sessions = table(clock, handshake_timeout=1)
    sessions.touch(b'a', '127.0.0.1').busy = True
    clock.now += 100
    assert sessions.expire() == []


def test_full_table_refuses_new_identities_until_some_expire(clock):
    sessions = table(clock, max_sessions=3, handshake_timeout=10)
    for identity in (b'a', b'b', b'c'):
        sessions.touch(identity, '127.0.0.1')
    with pytest.raises(ProtocolError, match='too many connections'):
        sessions.touch(b'd', '127.0.0.1')
    assert sessions.touch(b'a', '127.0.0.1')  # known identities still served
    clock.now += 11
    assert sessions.touch(b'd', '127.0.0.1').identity == b'd'
    assert len(sessions) == 1


def test_quit_drops_the_session(clock):
    sessions = table(clock)
    sessions.touch(b'a', '127.0.0.1')
    sessions.drop(b'a')
    sessions.drop(b'never seen')
    assert sessions.get(b'a') is None
