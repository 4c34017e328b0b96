"""The proxy's serving loop: its own ZMTP ROUTER on loopback, one thread.

Every client message goes through the same steps: its connection came
from a loopback address (checked at accept, `transport`), it fits the
byte bounds (`budget`), its frames must parse (`protocol`), the handshake
commands are answered here (banner, tier-1 login, quit), and everything
else is checked against the session's role and forwarded over a daemon
link of that role (`links`). Replies always have three frames.

Slow work (the scrypt check of a login, opening daemon links) runs in
other threads and comes back through `post`, so one client's login never
delays another client's status poll. Failed logins slow down the
connection that made them (each next answer comes later) and lock out the
local account that made too many (`login`), not the other local clients.
"""

from __future__ import annotations

import logging
import select
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple, Union

from nicos_scriptserver.peers import tcp_owner
from nicos_scriptserver.proxy.budget import Limits
from nicos_scriptserver.proxy.daemonlink import DaemonLink, LinkError
from nicos_scriptserver.proxy.links import Forward, LinkPool
from nicos_scriptserver.proxy.logquota import LogQuota
from nicos_scriptserver.proxy.login import Handshake, TokenLogin, login_fields
from nicos_scriptserver.proxy.loop import EventLoop
from nicos_scriptserver.proxy.protocol import WRITER, ProtocolError, \
    banner, check_allowed, error_reply, ok_reply, parse_request
from nicos_scriptserver.proxy.sessions import Session, SessionTable
from nicos_scriptserver.proxy.transport import Peer, Route, Transport, \
    is_loopback

log = logging.getLogger('nicos_scriptserver.proxy')

#: What a login check gives back to the loop: the uid of the client's
#: account (None if unknown) and the role, or why it failed.
LoginResult = Tuple[Optional[int], Union[str, ProtocolError]]


class ConfigError(ValueError):
    """The proxy was asked for something it must not do."""


@dataclass
class ProxyConfig:
    """Where the proxy listens, which daemon it serves and how."""

    #: NICOS account (login, password) per role; no viewer entry: no viewers.
    accounts: Dict[str, Tuple[str, str]]
    listen_host: str = '127.0.0.1'
    #: The IBEX GUI connects to port 1301, hard-coded.
    listen_port: int = 1301
    daemon_host: str = '127.0.0.1'
    daemon_port: int = 1303
    #: The account the daemon runs as: the proxy sends its passwords to
    #: nothing else listening on that port (None: the proxy's own).
    daemon_uid: Optional[int] = None
    links_per_role: int = 4
    #: A connection with no login is closed after this many idle seconds
    #: (also one that never finishes its ZMTP handshake).
    handshake_timeout: float = 10.0
    #: A logged-in connection is closed after this many idle seconds.
    idle_timeout: float = 600.0
    #: Connections beyond this are closed at once until others expire.
    max_sessions: int = 1000
    #: A request that found no free daemon link within this time fails.
    queue_timeout: float = 30.0
    limits: Limits = field(default_factory=Limits)

    def check(self) -> None:
        if not is_loopback(self.listen_host):
            raise ConfigError(f'the proxy listens on loopback only, not on '
                              f'{self.listen_host!r}')
        if WRITER not in self.accounts:
            raise ConfigError('no NICOS account for token holders (writers)')


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
        self._link_fds: Dict[int, Tuple[LinkPool, DaemonLink, bool]] = {}
        self.pools = {
            role: LinkPool(role, self._opener(login_name, password),
                           config.links_per_role, self.post,
                           self._links_changed, self._stopping)
            for role, (login_name, password) in config.accounts.items()}
        self.port = 0

    def _opener(self, login_name: str, password: str) -> Callable[[], DaemonLink]:
        host, port = self.config.daemon_host, self.config.daemon_port
        uid = self.config.daemon_uid
        return lambda: DaemonLink(host, port, login_name, password,
                                  daemon_uid=uid).open()

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
        """Listen (and open the first daemon links); returns the port."""
        self.port = self.transport.listen(self.config.listen_host,
                                          self.config.listen_port)
        for pool in self.pools.values():
            pool.start()
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
        for pool in self.pools.values():
            pool.close()
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
        self.sessions.drop(peer.id)

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
            self.transport.log_in(peer.id, False)
            self._reply(route, ok_reply(None))
        elif session.role is None:
            raise ProtocolError('not logged in: send getbanner and '
                                'authenticate first')
        else:
            check_allowed(command, session.role)
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
        self.transport.log_in(route.peer)
        log.info('%s logged in as %r by uid %s (connection %d)', role,
                 login_name, account, route.peer)
        self._reply(route, ok_reply({'user_level': pool.user_level}))

    def _forward(self, role: str, forward: Forward) -> None:
        pool = self.pools[role]
        if not pool.available:
            raise ProtocolError(f'the daemon is not reachable: {pool.last_error}')
        pool.submit(forward)

    # -- daemon links -------------------------------------------------------

    def _links_changed(self) -> None:
        """Watch the sockets of the pools' links, and only those. Called
        before a dropped link's sockets close, so that no descriptor is
        forgotten after its number went to a new connection."""
        current = {}
        for pool in self.pools.values():
            for link in pool.links:
                for sock, is_events in ((link.sock, False), (link.event_sock, True)):
                    current[sock.fileno()] = (pool, link, is_events)
        for fd, (_, link, _) in list(self._link_fds.items()):
            if fd not in current or current[fd][1] is not link:
                self.loop.forget(fd)
                del self._link_fds[fd]
        for fd, entry in current.items():
            if fd not in self._link_fds:
                self._link_fds[fd] = entry
                self.loop.watch(fd, select.EPOLLIN,
                                  lambda _events, entry=entry: self._serve_link(*entry))

    def _serve_link(self, pool: LinkPool, link: DaemonLink, is_events: bool) -> None:
        if link not in pool.links:
            return
        try:
            if is_events:
                link.discard_events()
                return
            done = pool.reply_ready(link)
        except LinkError as err:
            failed = pool.broken(link, err)
            if failed:
                self._reply(failed.route, error_reply(
                    f'the connection to the daemon broke: {err}'))
            if not pool.links:
                for waiting in pool.drain():
                    self._reply(waiting.route, error_reply(
                        f'the daemon is not reachable: {err}'))
            return
        if done is None:
            return
        forward, (ok, payload) = done
        if not ok:
            self._reply(forward.route, error_reply(str(payload)))
            return
        try:
            frames = ok_reply(payload)
        except ProtocolError as err:
            frames = error_reply(f'{forward.command}: {err}')
        self._reply(forward.route, frames)

    # -- housekeeping -------------------------------------------------------

    def _expire_sessions(self) -> None:
        gone = self.sessions.expire()
        for session in gone:
            peer = self.transport.peers.get(session.identity)
            if peer is not None:
                self.transport.close(peer, 'idle too long')
        if gone:
            log.debug('closed %d idle connections', len(gone))

    def _sweep(self, now: float) -> None:
        self._expire_sessions()
        self.transport.trim()
        for pool in self.pools.values():
            for forward in pool.expired(now, self.config.queue_timeout):
                self._reply(forward.route, error_reply(
                    'the daemon is busy: no free connection to it within '
                    f'{self.config.queue_timeout:.0f} s'))
