"""The proxy's client connections as a state machine (sans-I/O).

Everything an IBEX-like client sees is decided here. The handshake
commands are answered (banner, tier-1 login, quit); every other request
is checked against the connection's role, answered from the mirror of the
daemon's state where it can be (``getstatus``, ``getmessages``) and
otherwise forwarded to a daemon link of that role, whose reply comes back
as plain JSON. A connection's state is its `Session` (role, failed logins,
whether a request of it is being served); the table of sessions bounds
and expires them.

The machine is fed what happened: a connection opened or closed, a
request came (its frames), a login check ended, a forwarded request
ended, time passed. It returns the actions the serving loop carries out:
`Reply`, `CheckLogin`, `Forward`, `LogIn`, `LogOut`, `Close`, `Doubt`.
Nothing here touches a socket, a thread or the daemon.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Hashable, List, Mapping, Optional, \
    Protocol, Tuple, Union

from nicos_scriptserver.proxy.classic import Reply as DaemonReply
from nicos_scriptserver.proxy.login import Handshake, LoginPolicy, login_fields
from nicos_scriptserver.proxy.logquota import LogQuota
from nicos_scriptserver.proxy.mirror import Mirror, message_count
from nicos_scriptserver.proxy.protocol import VIEWER_COMMANDS, \
    WRITER_COMMANDS, ProtocolError, banner, check_allowed, error_reply, \
    ok_reply, parse_request
from nicos_scriptserver.proxy.sessions import Session, SessionTable

log = logging.getLogger('nicos_scriptserver.proxy')

#: Commands that may change the daemon's state: after one, the mirror
#: asks the daemon before it answers again (the client's next getstatus
#: must show the change, whose events may still be on their way).
CHANGING_COMMANDS = WRITER_COMMANDS - VIEWER_COMMANDS


# -- actions ---------------------------------------------------------------

@dataclass(frozen=True)
class Reply:
    """Send *frames* to connection *to*: the reply to its request, after
    which it is read from again."""

    to: Hashable
    frames: List[bytes]


@dataclass(frozen=True)
class CheckLogin:
    """Check a tier-1 login off the loop (scrypt, and the client's account),
    after *delay* seconds; the result goes to `login_checked`."""

    session: Session
    login_name: str
    password: str
    delay: float


@dataclass(frozen=True)
class Forward:
    """Send a request to a daemon link of *role*; how it ended goes to
    `forwarded`."""

    session: Session
    role: str
    command: str
    args: list


@dataclass(frozen=True)
class LogIn:
    """*session* logged in: the bounds of a logged-in connection, and the
    events for its *account* (the client's uid, None if unknown)."""

    session: Session
    account: Optional[int]


@dataclass(frozen=True)
class LogOut:
    """*session* logged out, closed or expired: no more events for its
    account, and the bounds of a connection before login."""

    session: Session


@dataclass(frozen=True)
class Close:
    """Close connection *identity*."""

    identity: Hashable
    reason: str


@dataclass(frozen=True)
class Doubt:
    """The mirror asks the daemon before it answers again."""


Action = Union[Reply, CheckLogin, Forward, LogIn, LogOut, Close, Doubt]


# -- inputs from elsewhere -------------------------------------------------

@dataclass(frozen=True)
class Failed:
    """A forwarded request got no reply: the client's error text, and
    whether the request may have reached the daemon."""

    text: str
    reached: bool


#: How a forwarded request ended: the daemon's (ok, payload), or `Failed`.
Outcome = Union[DaemonReply, Failed]
#: How a login check ended: the uid of the client's account (None if
#: unknown) and the role, or why it failed.
LoginResult = Tuple[Optional[int], Union[str, ProtocolError]]


class Links(Protocol):
    """What a connection needs to know of a role's daemon links."""

    #: The NICOS level they logged in with (None: none ever did).
    user_level: Optional[int]
    #: Why the last link failed.
    last_error: str

    @property
    def banner(self) -> dict:
        """The daemon's banner ({} while there is no link)."""

    @property
    def unreachable(self) -> Optional[str]:
        """Why a request cannot go to the daemon now (None: it can)."""


# -- the machine -------------------------------------------------------------

@dataclass(eq=False)
class ConnectionMachine:
    """Every client connection of the proxy (see the module docstring)."""

    sessions: SessionTable
    #: The RSA key of the banner, for the passwords sent encrypted.
    handshake: Handshake
    policy: LoginPolicy
    #: Each role's daemon links.
    links: Mapping[str, Links]
    answers: MirrorAnswers
    clock: Callable[[], float] = time.monotonic
    # Whether the table was full at the last connection (warned once).
    _full: bool = field(default=False, init=False)
    _failed_logins: LogQuota = field(default_factory=lambda: LogQuota(log),
                                     init=False)

    def opened(self, identity: Hashable, address: str) -> Tuple[bool, List[Action]]:
        """A new connection: whether it is taken (not while the table is
        full), and what comes first (closing idle ones to make room)."""
        actions = self.expire() if len(self.sessions) >= self.sessions.max_sessions \
            else []
        try:
            self.sessions.touch(identity, address)
        except ProtocolError:
            if not self._full:
                log.warning('%d connections: refusing new ones until some '
                            'expire', len(self.sessions))
            self._full = True
            return False, actions
        self._full = False
        return True, actions

    def closed(self, identity: Hashable) -> List[Action]:
        """A connection has closed."""
        session = self.sessions.drop(identity)
        return [] if session is None else [LogOut(session)]

    def expire(self) -> List[Action]:
        """Time passed: connections idle for too long are closed."""
        gone = self.sessions.expire()
        if gone:
            log.debug('closing %d idle connections', len(gone))
        return [action for session in gone for action in
                (LogOut(session), Close(session.identity, 'idle too long'))]

    def request(self, identity: Hashable, address: str,
                frames: List[bytes]) -> List[Action]:
        """A client's message (a request, one at a time per connection)."""
        # A REQ client puts an empty delimiter before its three frames.
        delimiter = bool(frames) and not frames[0]
        try:
            session = self.sessions.touch(identity, address)
        except ProtocolError as err:
            return [Reply(identity, _framed(delimiter, error_reply(str(err))))]
        session.busy, session.delimiter = True, delimiter
        try:
            request = parse_request(frames[1:] if delimiter else frames)
            return self._handle(session, request.command, request.args)
        except ProtocolError as err:
            return [self._reply(session, error_reply(str(err)))]

    def _handle(self, session: Session, command: str, args: list) -> List[Action]:
        if command == 'getbanner':
            daemon_banner = next((links.banner for links in self.links.values()
                                  if links.banner), {})
            return [self._reply(session, ok_reply(
                banner(self.handshake.public_base64, daemon_banner)))]
        if command == 'authenticate':
            login_name, sent = login_fields(args)
            # Each failure on this connection delays its next answer more.
            return [CheckLogin(session, login_name, self.handshake.password(sent),
                               max(session.next_login - self.clock(), 0.0))]
        if command == 'quit':
            # Forgets the login, not the failures: a guesser gains nothing.
            session.role = None
            return [LogOut(session), self._reply(session, ok_reply(None))]
        if session.role is None:
            raise ProtocolError('not logged in: send getbanner and '
                                'authenticate first')
        check_allowed(command, session.role)
        frames = self.answers.answer(command, args)
        if frames is not None:
            return [self._reply(session, frames)]
        unreachable = self.links[session.role].unreachable
        if unreachable:
            raise ProtocolError(unreachable)
        return [Forward(session, session.role, command, args)]

    def login_checked(self, session: Session, login_name: str,
                      result: LoginResult) -> List[Action]:
        """The check of *session*'s login as *login_name* ended."""
        account, role = result
        if isinstance(role, ProtocolError):
            refusal = role
            session.failures += 1
            session.next_login = self.clock() + self.policy.delay(session.failures)
            self._failed_logins.warning(
                'failed login as %r by uid %s (connection %d): %s',
                login_name, account, session.identity, refusal)
            return [self._reply(session, error_reply(str(refusal)))]
        links = self.links.get(role)
        if links is None or links.user_level is None:
            return [self._reply(session, error_reply(
                f'logged in, but the proxy has no {role} link to the daemon: '
                f'{links.last_error if links else "not configured"}'))]
        session.role = role
        log.info('%s logged in as %r by uid %s (connection %d)', role,
                 login_name, account, session.identity)
        return [LogIn(session, account),
                self._reply(session, ok_reply({'user_level': links.user_level}))]

    def forwarded(self, forward: Forward, outcome: Outcome) -> List[Action]:
        """A forwarded request ended (its client may have gone meanwhile)."""
        if isinstance(outcome, Failed):
            reached, frames = outcome.reached, error_reply(outcome.text)
        else:
            reached, frames = True, _translated(forward.command, *outcome)
        # Seeds sent before it ended cannot show what it changed: the
        # mirror answers again once a seed sent from now on agrees. Before
        # the reply, so that the client's next request finds it.
        doubt = [Doubt()] if reached and forward.command in CHANGING_COMMANDS \
            else []
        return [*doubt, self._reply(forward.session, frames)]

    @staticmethod
    def _reply(session: Session, frames: List[bytes]) -> Reply:
        session.busy = False
        return Reply(session.identity, _framed(session.delimiter, frames))


def _framed(delimiter: bool, frames: List[bytes]) -> List[bytes]:
    """A reply as its client expects it: a REQ client gets its delimiter."""
    return [b'', *frames] if delimiter else frames


def _translated(command: str, ok: bool, payload: Any) -> List[bytes]:
    """The daemon's reply to *command* as its client gets it."""
    if not ok:
        return error_reply(str(payload))
    try:
        return ok_reply(payload)
    except ProtocolError as err:
        return error_reply(f'{command}: {err}')


class MirrorAnswers:
    """``getstatus`` and ``getmessages`` from the mirror, encoded once per
    version of it, or None: ask the daemon."""

    def __init__(self, mirror: Mirror):
        self.mirror = mirror
        self._cache: Dict[tuple, List[bytes]] = {}
        self._cache_version = -1

    def answer(self, command: str, args: list) -> Optional[List[bytes]]:
        """The reply frames to *command* from the mirror, or None."""
        if command == 'getstatus' and not args:
            key: tuple = ('getstatus',)
        elif command == 'getmessages' and len(args) == 1:
            understood, count = message_count(args[0])
            if not understood:
                return None
            key = ('getmessages', count)
        else:
            return None
        if self._cache_version != self.mirror.version:
            self._cache.clear()
            self._cache_version = self.mirror.version
        frames = self._cache.get(key)
        if frames is None:
            payload = self.mirror.status() if len(key) == 1 \
                else self.mirror.messages(key[1])
            if payload is None:
                return None
            try:
                frames = ok_reply(payload)
            except ProtocolError:
                return None
            if len(self._cache) > 16:
                self._cache.clear()   # many different counts: bounded
            self._cache[key] = frames
        return frames
