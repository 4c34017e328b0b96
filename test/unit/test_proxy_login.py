"""Tier-1 login: this start's token only, hashed; failures limited per
account, and per connection by a growing delay."""

import base64

import pytest
import rsa

from nicos_scriptserver.proxy.login import (Handshake, LoginPolicy,
                                            TokenLogin, login_fields)
from nicos_scriptserver.proxy.protocol import VIEWER, WRITER, ProtocolError


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


@pytest.fixture
def clock():
    return Clock()


def test_token_logs_in_as_writer_and_is_kept_only_hashed(clock):
    login = TokenLogin(LoginPolicy(user='ss'), clock)
    token = login.new_token()
    assert login.check('127.0.0.1', 'ss', token) == WRITER
    assert token not in repr(vars(login))
    assert login._hash.startswith('scrypt$')


def test_previous_token_and_wrong_names_are_refused(clock):
    login = TokenLogin(LoginPolicy(user='ss'), clock)
    old = login.new_token()
    new = login.new_token()   # a restart
    for name, secret in (('ss', old), ('ss', 'wrong'), ('other', new),
                         ('ibex', 'dECJ_2Fa')):
        with pytest.raises(ProtocolError, match='Invalid username or password'):
            login.check('127.0.0.1', name, secret)


def test_no_token_no_login(clock):
    with pytest.raises(ProtocolError):
        TokenLogin(LoginPolicy(user='ss'), clock).check('p', 'ss', '')


def test_viewers_only_when_configured(clock):
    closed = TokenLogin(LoginPolicy(user='ss'), clock)
    closed.new_token()
    with pytest.raises(ProtocolError):
        closed.check('p', 'viewer', '')
    opened = TokenLogin(LoginPolicy(user='ss', viewer='viewer'), clock)
    assert opened.check('p', 'viewer', 'anything') == VIEWER


def test_failures_lock_out_that_peer_only_for_a_while(clock):
    login = TokenLogin(LoginPolicy(user='ss', max_failures=3, window=60), clock)
    token = login.new_token()
    for _ in range(3):
        with pytest.raises(ProtocolError, match='Invalid'):
            login.check('peer-a', 'ss', 'guess')
    with pytest.raises(ProtocolError, match='too many failed logins; try again in 60 s'):
        login.check('peer-a', 'ss', token)
    assert login.check('peer-b', 'ss', token) == WRITER
    clock.now += 61
    assert login.check('peer-a', 'ss', token) == WRITER


def test_rsa_and_plain_passwords():
    handshake = Handshake.new()
    key = rsa.PublicKey.load_pkcs1(base64.b64decode(handshake.public_base64))
    sent = 'RSA:' + base64.b64encode(rsa.encrypt(b's3cret', key)).decode()
    assert handshake.password(sent) == 's3cret'
    assert handshake.password('s3cret') == 's3cret'
    with pytest.raises(ProtocolError):
        handshake.password('RSA:bm90IGVuY3J5cHRlZA==')


@pytest.mark.parametrize('args', [[], ['ss'], [{'login': 'ss'}],
                                  [{'login': 1, 'passwd': 'x'}], [1, 2]])
def test_malformed_authenticate_is_refused(args):
    with pytest.raises(ProtocolError, match='authenticate'):
        login_fields(args)


def test_rotation_refuses_the_old_token_and_takes_the_new(clock):
    """What the proxy does when the external PV server restarted."""
    login = TokenLogin(LoginPolicy(user='ss'), clock)
    old = login.new_token()
    new, digest = login.make_token()
    # Made, not installed: the old token still logs in.
    assert login.check('127.0.0.1', 'ss', old) == WRITER
    with pytest.raises(ProtocolError, match='Invalid'):
        login.check('127.0.0.1', 'ss', new)
    login.install(digest)
    assert login.check('127.0.0.1', 'ss', new) == WRITER
    with pytest.raises(ProtocolError, match='Invalid'):
        login.check('127.0.0.1', 'ss', old)
    assert new not in repr(vars(login))


def test_a_connections_delay_grows_with_its_failures_and_is_capped():
    policy = LoginPolicy(first_delay=0.25, max_delay=8.0)
    assert [policy.delay(n) for n in range(8)] == [0, 0.25, 0.5, 1, 2, 4, 8, 8]
    assert policy.delay(10 ** 6) == 8.0


def test_failures_are_counted_per_account_and_forgotten_after_the_window(clock):
    login = TokenLogin(LoginPolicy(user='ss', max_failures=2, window=60), clock)
    token = login.new_token()
    for account in (65534, 65534, None, None):
        with pytest.raises(ProtocolError, match='Invalid'):
            login.check(account, 'ss', 'guess')
    for account in (65534, None):
        with pytest.raises(ProtocolError, match='too many'):
            login.check(account, 'ss', token)
    assert login.check(0, 'ss', token) == WRITER
    clock.now += 61
    assert login.check(65534, 'ss', token) == WRITER
    assert 65534 not in login._failures   # forgotten once it has none recent
