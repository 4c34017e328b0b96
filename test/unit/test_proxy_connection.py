"""The proxy's client connections as a state machine (sans-I/O): what it
answers, what it asks the loop to do, in which order."""

import json

import pytest

from nicos_scriptserver.proxy.connection import CheckLogin, Close, \
    ConnectionMachine, Doubt, Failed, Forward, LogIn, LogOut, MirrorAnswers, \
    Reply
from nicos_scriptserver.proxy.login import Handshake, LoginPolicy
from nicos_scriptserver.proxy.mirror import Mirror
from nicos_scriptserver.proxy.protocol import VIEWER, WRITER, ProtocolError
from nicos_scriptserver.proxy.sessions import SessionTable


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


class Links:
    """A role's daemon links as the machine sees them."""

    def __init__(self, user_level=10, unreachable=None):
        self.user_level = user_level
        self.last_error = 'the daemon is down'
        self.banner = {'daemon_version': '3.12.2'} if user_level is not None else {}
        self.unreachable = unreachable


@pytest.fixture(scope='module')
def handshake():
    return Handshake.new()


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def machine(handshake, clock):
    return ConnectionMachine(SessionTable(max_sessions=2, clock=clock),
                             handshake, LoginPolicy(), {WRITER: Links(10),
                                                        VIEWER: Links(0)},
                             MirrorAnswers(Mirror()), clock)


def request(machine, command, *args, identity=1, req=True):
    frames = [command.encode(), b'', json.dumps(list(args)).encode()]
    return machine.request(identity, '127.0.0.1', [b''] * req + frames)


def reply(actions):
    """The one reply among *actions*: (status, payload) without the
    REQ delimiter."""
    replies = [action for action in actions if isinstance(action, Reply)]
    assert len(replies) == 1
    empty, status, _, payload = replies[0].frames
    assert empty == b''
    return status.decode(), payload.decode()


def log_in(machine, role=WRITER, identity=1, account=1000):
    check, = request(machine, 'authenticate', {'login': 'x', 'passwd': 'y'},
                     identity=identity)
    return machine.login_checked(check.session, 'x', (account, role))


def test_banner_and_nothing_else_before_login(machine):
    status, payload = reply(request(machine, 'getbanner'))
    assert status == 'ok' and json.loads(payload)['protocol_version'] == 23
    assert json.loads(payload)['daemon_version'] == '3.12.2'
    assert reply(request(machine, 'getstatus')) == (
        'error', 'not logged in: send getbanner and authenticate first')


def test_a_dealer_gets_no_delimiter_and_bad_frames_an_error(machine):
    actions = machine.request(1, '127.0.0.1', [b'getbanner', b'', b''])
    assert actions[0].to == 1 and actions[0].frames[0] == b'ok'
    assert reply(machine.request(1, '127.0.0.1', [b'', b'getbanner'])) == (
        'error', 'a request has 3 frames [command, "", arguments], not 1')


def test_a_login_is_checked_off_the_loop_and_opens_the_role(machine):
    check, = request(machine, 'authenticate', {'login': 'scriptserver',
                                               'passwd': 'token'})
    assert isinstance(check, CheckLogin)
    assert (check.login_name, check.password, check.delay) == \
        ('scriptserver', 'token', 0.0)
    assert check.session.busy
    actions = machine.login_checked(check.session, 'scriptserver', (1000, WRITER))
    assert actions[0] == LogIn(check.session, 1000)
    assert reply(actions) == ('ok', '{"user_level":10}')
    assert check.session.role == WRITER and not check.session.busy


def test_failed_logins_slow_the_connection_down(machine, clock):
    delays = []
    for _ in range(3):
        check, = request(machine, 'authenticate', {'login': 'x', 'passwd': 'y'})
        delays.append(check.delay)
        assert reply(machine.login_checked(check.session, 'x', (
            1000, ProtocolError('Invalid username or password!')))) == \
            ('error', 'Invalid username or password!')
    assert delays == [0.0, 0.25, 0.5]
    clock.now += 10
    check, = request(machine, 'authenticate', {'login': 'x', 'passwd': 'y'})
    assert check.delay == 0.0


def test_a_login_without_a_link_of_its_role_is_refused(handshake, clock):
    machine = ConnectionMachine(SessionTable(clock=clock), handshake,
                                LoginPolicy(), {WRITER: Links(None)},
                                MirrorAnswers(Mirror()), clock)
    assert reply(log_in(machine)) == ('error', 'logged in, but the proxy has '
                                      'no writer link to the daemon: the '
                                      'daemon is down')
    assert reply(log_in(machine, VIEWER)) == ('error', 'logged in, but the '
                                              'proxy has no viewer link to the '
                                              'daemon: not configured')


def test_quit_logs_out(machine):
    log_in(machine)
    actions = request(machine, 'quit')
    session = actions[0].session
    assert actions[0] == LogOut(session) and session.role is None
    assert reply(actions) == ('ok', 'null')


def test_requests_go_to_the_daemon_as_the_role_allows(machine):
    log_in(machine, VIEWER)
    assert reply(request(machine, 'ss_submit', {})) == (
        'error', 'ss_submit: read-only logins can only watch')
    assert reply(request(machine, 'exec', 'x')) == (
        'error', 'exec is not a command this proxy passes on')
    forward, = request(machine, 'getstatus')   # the mirror does not know yet
    assert (forward.role, forward.command, forward.args) == (VIEWER, 'getstatus', [])
    machine.links[VIEWER].unreachable = 'the daemon is not reachable: gone'
    assert reply(request(machine, 'ss_queue')) == (
        'error', 'the daemon is not reachable: gone')


def test_the_daemon_s_reply_goes_back_after_a_doubt_if_it_changed_something(machine):
    log_in(machine)
    change, = request(machine, 'ss_clear')
    actions = machine.forwarded(change, (True, None))
    assert actions[0] == Doubt() and reply(actions) == ('ok', 'null')
    read, = request(machine, 'ss_queue')
    assert reply(machine.forwarded(read, (True, {'jobs': (1, 2)}))) == \
        ('ok', '{"jobs":[1,2]}')
    read, = request(machine, 'ss_queue')
    assert reply(machine.forwarded(read, (True, object()))) == (
        'error', 'ss_queue: the daemon replied with a object, which cannot '
        'be sent as JSON')
    read, = request(machine, 'ss_queue')
    assert reply(machine.forwarded(read, (False, 'no such job'))) == \
        ('error', 'no such job')


def test_a_request_that_failed_doubts_only_if_it_may_have_reached_the_daemon(machine):
    log_in(machine)
    for reached, doubts in ((True, [Doubt()]), (False, [])):
        change, = request(machine, 'ss_clear')
        actions = machine.forwarded(change, Failed('broke', reached))
        assert actions[:-1] == doubts and reply(actions) == ('error', 'broke')


def test_the_mirror_answers_once_confirmed(machine):
    log_in(machine)
    mirror = machine.answers.mirror
    for _ in range(2):
        mirror.seed_status(mirror.mark(), {'status': [0, 1], 'requests': []})
    mirror.seed_messages(mirror.mark(), [], 1000)
    status, payload = reply(request(machine, 'getstatus'))
    assert status == 'ok' and json.loads(payload)['status'] == [0, 1]
    assert reply(request(machine, 'getmessages', '5')) == ('ok', '[]')
    assert isinstance(request(machine, 'getmessages', 'x')[0], Forward)


def test_idle_connections_are_closed_and_a_full_table_refuses(machine, clock):
    assert machine.opened(1, '127.0.0.1') == (True, [])
    assert machine.opened(2, '127.0.0.1') == (True, [])
    assert machine.opened(3, '127.0.0.1') == (False, [])
    clock.now += 5
    log_in(machine, identity=2)
    clock.now += 6
    taken, actions = machine.opened(3, '127.0.0.1')
    first = actions[0].session
    assert taken and actions == [LogOut(first), Close(1, 'idle too long')]
    clock.now += 1000
    assert [type(action) for action in machine.expire()] == [LogOut, Close] * 2
    assert machine.closed(3) == []
