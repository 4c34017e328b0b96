"""The proxy's serving loop: its own ZMTP ROUTER on loopback, one thread.

Every client message goes through the same steps: its connection came
from a loopback address (checked at accept, `transport`), it fits the
byte bounds (`budget`), its frames must parse (`protocol`), the handshake
commands are answered here (banner, tier-1 login, quit), and everything
else is checked against the session's role, answered from the mirror of
the daemon's state where it can be (``getstatus``, ``getmessages``:
`mirrorfeed`) and otherwise forwarded over a daemon link of that role
(`links`). Replies always have three frames. The daemon's events go out
on the event socket, port + 1 (`publisher`), to accounts with a login.

Slow work (the scrypt check of a login, opening daemon links) runs in
other threads and comes back through `post`, so one client's login never
delays another client's status poll. Failed logins slow down the
connection that made them (each next answer comes later) and lock out the
local account that made too many (`login`), not the other local clients.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Iterable, List, Optional, Tuple, Union

from nicos_scriptserver.peers import tcp_owner
from nicos_scriptserver.proxy.config import ConfigError, ProxyConfig
from nicos_scriptserver.proxy.daemonlink import DaemonLink
from nicos_scriptserver.proxy.links import Forward, LinkPool
from nicos_scriptserver.proxy.logquota import LogQuota
from nicos_scriptserver.proxy.login import Handshake, TokenLogin, login_fields
from nicos_scriptserver.proxy.loop import EventLoop
from nicos_scriptserver.proxy.mirrorfeed import PUBLISHED_EVENTS, MirrorFeed
from nicos_scriptserver.proxy.protocol import VIEWER, VIEWER_COMMANDS, \
    WRITER, WRITER_COMMANDS, ProtocolError, banner, check_allowed, \
    error_reply, ok_reply, parse_request
from nicos_scriptserver.proxy.publisher import EventAccess, Publisher
from nicos_scriptserver.proxy.sessions import Session, SessionTable
from nicos_scriptserver.proxy.listener import is_loopback
from nicos_scriptserver.proxy.transport import Peer, Route, Transport

log = logging.getLogger('nicos_scriptserver.proxy')

#: What a login check gives back to the loop: the uid of the client's
#: account (None if unknown) and the role, or why it failed.
LoginResult = Tuple[Optional[int], Union[str, ProtocolError]]
#: Commands that may change the daemon's state: after one, the mirror
#: asks the daemon before it answers again (the client's next getstatus
#: must show the change, whose events may still be on their way).
CHANGING_COMMANDS = WRITER_COMMANDS - VIEWER_COMMANDS
# With port 0 (any), ports are tried until one whose next is free too.
BIND_ATTEMPTS = 20

__all__ = ['ConfigError', 'ProxyConfig', 'ProxyServer', 'is_loopback']


class ProxyServer:
    """Serves IBEX-like clients on loopback and forwards to the daemon."""

    def __init__(self, config: ProxyConfig, login: TokenLogin):
        config.check()
        self.config = config
        self.login = login
        self.handshake = Handshake.new()
        self.sessions = SessionTable(config.max_sessions,
                                     config.handshake_timeout,
                                     config.idle_timeout)
        self._stopping = threading.Event()
        self._login_checks = ThreadPoolExecutor(2, 'proxy login check')
        self._full = False
        self._failed_logins = LogQuota(log)
        self.loop = EventLoop()
        self.transport = Transport(self.loop, config.limits, self._opened,
                                   self._serve_message, self._closed)
        self.pools = {role: LinkPool(role, self._opener(login_name, password),
                                     config.links_per_role, self.loop,
                                     self._stopping, self._reply,
                                     self._request_done)
                      for role, (login_name, password) in config.accounts.items()}
        self.access = EventAccess(self.post)
        self.publisher = Publisher(self.loop, self.access,
                                   config.max_subscribers,
                                   config.handshake_timeout)
        # The mirror only reads: the viewers' account if there is one.
        mirror_account = config.accounts.get(VIEWER, config.accounts[WRITER])
        self.feed = MirrorFeed(self._opener(*mirror_account, PUBLISHED_EVENTS),
                               self.loop, self._stopping, self.publisher.publish)
        self.port = 0
        self.events_port = 0

    def _opener(self, login_name: str, password: str,
                events: Iterable[str] = ()) -> Callable[[], DaemonLink]:
        host, port = self.config.daemon_host, self.config.daemon_port
        uid = self.config.daemon_uid
        return lambda: DaemonLink(host, port, login_name, password,
                                  daemon_uid=uid).open(events)

    def post(self, callback: Callable[[], None]) -> None:
        """Run *callback* in the serving thread (callable from any thread)."""
        self.loop.post(callback)

    def call_in_loop(self, callback: Callable[[], None],
                     timeout: float = 10.0) -> bool:
        """Run *callback* in the serving thread and wait until it ran
        (from another thread only); False if it did not run in time."""
        return self.loop.call_in_loop(callback, timeout)

    # -- lifecycle ----------------------------------------------------------

    def bind(self) -> int:
        """Listen on the port and the event socket on the next one (and
        open the first daemon links); returns the port."""
        host, wanted = self.config.listen_host, self.config.listen_port
        for attempt in range(1 if wanted else BIND_ATTEMPTS):
            port = self.transport.listen(host, wanted)
            try:
                self.events_port = self.publisher.listen(host, port + 1)
                break
            except (OSError, OverflowError) as err:
                self.transport.listener.close()
                if wanted or attempt == BIND_ATTEMPTS - 1:
                    raise OSError(f'the event port {port + 1} (the port + 1) '
                                  f'is not free: {err}') from err
        self.port = port
        for pool in self.pools.values():
            pool.start()
        self.feed.start()
        return self.port

    def stop(self) -> None:
        """Ask `serve_forever` to return (callable from any thread)."""
        self._stopping.set()
        self.post(lambda: None)

    def serve_forever(self) -> None:
        """Serve until `stop`; closes every socket on the way out."""
        try:
            self.loop.run(self._stopping, 1.0, self._sweep)
        finally:
            self._close()

    def _close(self) -> None:
        self._login_checks.shutdown(wait=False, cancel_futures=True)
        self.access.close()
        for pool in self.pools.values():
            pool.close()
        self.feed.close()
        self.publisher.close_all()
        self.transport.close_all()
        self.loop.close()

    # -- clients ------------------------------------------------------------

    def _opened(self, peer: Peer) -> bool:
        if len(self.sessions) >= self.config.max_sessions:
            self._expire_sessions()
        try:
            self.sessions.touch(peer.id, peer.address)
        except ProtocolError:
            if not self._full:
                log.warning('%d connections: refusing new ones until some '
                            'expire', len(self.sessions))
            self._full = True
            return False
        self._full = False
        return True

    def _closed(self, peer: Peer) -> None:
        session = self.sessions.drop(peer.id)
        if session is not None:
            self.access.logged_out(session)

    def _serve_message(self, peer: Peer, frames: List[bytes]) -> None:
        # A REQ client puts an empty delimiter before its three frames.
        delimiter = bool(frames) and not frames[0]
        route = Route(peer.id, delimiter)
        try:
            session = self.sessions.touch(peer.id, peer.address)
            session.busy = True
            request = parse_request(frames[1:] if delimiter else frames)
            self._handle(peer, session, route, request.command, request.args)
        except ProtocolError as err:
            self._reply(route, error_reply(str(err)))

    def _reply(self, route: Route, frames: List[bytes]) -> None:
        session = self.sessions.get(route.peer)
        if session is not None:
            session.busy = False
        if not self.transport.send(route, frames):
            log.debug('dropped a reply to connection %d, which has closed',
                      route.peer)

    def _handle(self, peer: Peer, session: Session, route: Route,
                command: str, args: list) -> None:
        if command == 'getbanner':
            self._reply(route, ok_reply(self._banner()))
        elif command == 'authenticate':
            self._authenticate(peer, session, route, args)
        elif command == 'quit':
            # Forgets the login, not the failures: a guesser gains nothing.
            session.role = None
            self.access.logged_out(session)
            self.transport.log_in(peer.id, False)
            self._reply(route, ok_reply(None))
        elif session.role is None:
            raise ProtocolError('not logged in: send getbanner and '
                                'authenticate first')
        else:
            check_allowed(command, session.role)
            frames = self.feed.answer(command, args)
            if frames is not None:
                self._reply(route, frames)
                return
            self._forward(session.role, Forward(route, command, args))

    def _banner(self) -> dict:
        daemon_banner = next((link.banner for pool in self.pools.values()
                              for link in pool.links), {})
        return banner(self.handshake.public_base64, daemon_banner)

    # -- logins -------------------------------------------------------------

    def _authenticate(self, peer: Peer, session: Session, route: Route,
                      args: list) -> None:
        login_name, sent = login_fields(args)
        password = self.handshake.password(sent)
        remote, local = peer.remote, peer.local

        def check() -> None:
            if route.peer not in self.transport.peers:
                return   # closed while it waited: no scrypt for nobody
            future = self._login_checks.submit(self._check_login, remote,
                                               local, login_name, password)
            future.add_done_callback(lambda done: self.post(
                lambda: self._login_checked(session, route, login_name, done)))
        # Each failure on this connection delays its next answer more.
        delay = session.next_login - time.monotonic()
        if delay > 0:
            self.loop.call_later(delay, check)
        else:
            check()

    def _check_login(self, remote: Tuple, local: Tuple, login_name: str,
                     password: str) -> LoginResult:
        """In a login thread: whose the connection is, and the check."""
        # The client's end of the connection is bound to its *remote*
        # address and connected to our *local* one.
        account = tcp_owner(remote, local)
        try:
            return account, self.login.check(account, login_name, password)
        except ProtocolError as err:
            return account, err

    def _login_checked(self, session: Session, route: Route, login_name: str,
                       done: Future) -> None:
        account, result = done.result()
        if isinstance(result, ProtocolError):
            session.failures += 1
            session.next_login = time.monotonic() + \
                self.login.policy.delay(session.failures)
            self._failed_logins.warning(
                'failed login as %r by uid %s (connection %d): %s',
                login_name, account, route.peer, result)
            self._reply(route, error_reply(str(result)))
            return
        role = result
        pool = self.pools.get(role)
        if pool is None or pool.user_level is None:
            self._reply(route, error_reply(
                f'logged in, but the proxy has no {role} link to the daemon: '
                f'{pool.last_error if pool else "not configured"}'))
            return
        session.role = role
        self.access.logged_in(session, account)
        self.transport.log_in(route.peer)
        log.info('%s logged in as %r by uid %s (connection %d)', role,
                 login_name, account, route.peer)
        self._reply(route, ok_reply({'user_level': pool.user_level}))

    def _forward(self, role: str, forward: Forward) -> None:
        pool = self.pools[role]
        if not pool.available:
            raise ProtocolError(f'the daemon is not reachable: {pool.last_error}')
        pool.submit(forward)

    def _request_done(self, forward: Forward) -> None:
        """A forwarded request was answered or failed (called before its
        reply is sent, so that the client's next request finds it)."""
        if forward.command in CHANGING_COMMANDS:
            # Seeds sent before it ended cannot show what it changed: the
            # mirror answers again once a seed sent from now on agrees.
            self.feed.doubt()

    # -- housekeeping -------------------------------------------------------

    def _expire_sessions(self) -> None:
        gone = self.sessions.expire()
        for session in gone:
            self.access.logged_out(session)
            peer = self.transport.peers.get(session.identity)
            if peer is not None:
                self.transport.close(peer, 'idle too long')
        if gone:
            log.debug('closed %d idle connections', len(gone))

    def _sweep(self, now: float) -> None:
        self._expire_sessions()
        self.publisher.sweep(now)
        self.transport.trim()
        for pool in self.pools.values():
            for forward in pool.expired(now, self.config.queue_timeout):
                self._reply(forward.route, error_reply(
                    'the daemon is busy: no free connection to it within '
                    f'{self.config.queue_timeout:.0f} s'))
