"""The proxy's serving loop: its own ZMTP ROUTER on loopback, one thread.

The I/O shell around the connections' state machine (`connection`): it
hands the machine what happens (a connection opened or closed, a client's
message, a login check or a forwarded request that ended, time passing)
and carries out the actions it returns: replies go out through the
transport, logins are checked in other threads, requests go to a daemon
link of the client's role (`links`), logins open the event socket to the
client's account (`publisher`). Connections came from a loopback address
(checked at accept, `transport`) and fit the byte bounds (`budget`).
The daemon's events go out on the event socket, port + 1, to accounts
with a login.

Slow work (the scrypt check of a login, opening daemon links) runs in
other threads and comes back through `post`, and daemon links are written
without waiting, so one client's login or large request never delays
another client's status poll.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, List, Tuple

from nicos_scriptserver.wire.peers import tcp_owner
from nicos_scriptserver.proxy.config import ConfigError, ProxyConfig
from nicos_scriptserver.proxy.connection import Action, CheckLogin, Close, \
    ConnectionMachine, Doubt, Forward, LogIn, LoginResult, LogOut, \
    MirrorAnswers, Outcome, Reply
from nicos_scriptserver.proxy.daemonlink import DaemonLink, Reopening
from nicos_scriptserver.proxy.links import LinkPool
from nicos_scriptserver.proxy.login import Handshake, TokenLogin
from nicos_scriptserver.proxy.loop import EventLoop
from nicos_scriptserver.proxy.mirrorfeed import PUBLISHED_EVENTS, MirrorFeed
from nicos_scriptserver.proxy.protocol import VIEWER, WRITER, ProtocolError
from nicos_scriptserver.proxy.publisher import EventAccess, Publisher
from nicos_scriptserver.proxy.sessions import SessionTable
from nicos_scriptserver.proxy.listener import is_loopback
from nicos_scriptserver.proxy.transport import Peer, Transport

log = logging.getLogger('nicos_scriptserver.proxy')

# With port 0 (any), ports are tried until one whose next is free too.
BIND_ATTEMPTS = 20

__all__ = ['ConfigError', 'ProxyConfig', 'ProxyServer', 'is_loopback']


class ProxyServer:
    """Serves IBEX-like clients on loopback and forwards to the daemon."""

    def __init__(self, config: ProxyConfig, login: TokenLogin):
        config.check()
        self.config = config
        self.login = login
        self._stopping = threading.Event()
        reopening = Reopening(self._stopping)
        self._login_checks = ThreadPoolExecutor(2, 'proxy login check')
        self.loop = EventLoop()
        self.transport = Transport(self.loop, config.limits, self._opened,
                                   self._serve_message, self._closed)
        self.pools = {role: LinkPool(role, self._opener(login_name, password),
                                     config.links_per_role, self.loop,
                                     reopening, self._forwarded)
                      for role, (login_name, password) in config.accounts.items()}
        self.access = EventAccess(self.post)
        self.publisher = Publisher(self.loop, self.access,
                                   config.max_subscribers,
                                   config.handshake_timeout)
        # The mirror only reads: the viewers' account if there is one.
        mirror_account = config.accounts.get(VIEWER, config.accounts[WRITER])
        self.feed = MirrorFeed(self._opener(*mirror_account, PUBLISHED_EVENTS),
                               self.loop, reopening, self.publisher.publish)
        self.connections = ConnectionMachine(
            SessionTable(config.max_sessions, config.handshake_timeout,
                         config.idle_timeout),
            Handshake.new(), login.policy, self.pools,
            MirrorAnswers(self.feed.mirror))
        self._actions = {Reply: self._send, CheckLogin: self._check_login,
                         Forward: self._forward, LogIn: self._log_in,
                         LogOut: self._log_out, Close: self._close_connection,
                         Doubt: lambda _doubt: self.feed.doubt()}
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

    # -- what happens, to the connections' machine ---------------------------

    def _opened(self, peer: Peer) -> bool:
        taken, actions = self.connections.opened(peer.id, peer.address)
        self._run(actions)
        return taken

    def _closed(self, peer: Peer) -> None:
        self._run(self.connections.closed(peer.id))

    def _serve_message(self, peer: Peer, frames: List[bytes]) -> None:
        self._run(self.connections.request(peer.id, peer.address, frames))

    def _forwarded(self, forward: Forward, outcome: Outcome) -> None:
        self._run(self.connections.forwarded(forward, outcome))

    def _sweep(self, now: float) -> None:
        self._run(self.connections.expire())
        self.publisher.sweep(now)
        self.transport.trim()
        for pool in self.pools.values():
            pool.expire(now, self.config.queue_timeout)

    # -- what it decided ------------------------------------------------------

    def _run(self, actions: Iterable[Action]) -> None:
        for action in actions:
            self._actions[type(action)](action)

    def _send(self, reply: Reply) -> None:
        if not self.transport.send(reply.to, reply.frames):
            log.debug('dropped a reply to connection %d, which has closed',
                      reply.to)

    def _forward(self, forward: Forward) -> None:
        self.pools[forward.role].submit(forward)

    def _log_in(self, login: LogIn) -> None:
        self.access.logged_in(login.session, login.account)
        self.transport.log_in(login.session.identity)

    def _log_out(self, logout: LogOut) -> None:
        self.access.logged_out(logout.session)
        self.transport.log_in(logout.session.identity, False)

    def _close_connection(self, close: Close) -> None:
        peer = self.transport.peers.get(close.identity)
        if peer is not None:
            self.transport.close(peer, close.reason)

    def _check_login(self, check: CheckLogin) -> None:
        session = check.session

        def start() -> None:
            peer = self.transport.peers.get(session.identity)
            if peer is None:
                return   # closed while it waited: no scrypt for nobody
            future = self._login_checks.submit(
                self._verify, peer.remote, peer.local, check.login_name,
                check.password)
            future.add_done_callback(lambda done: self.post(
                lambda: self._run(self.connections.login_checked(
                    session, check.login_name, done.result()))))
        if check.delay > 0:
            self.loop.call_later(check.delay, start)
        else:
            start()

    def _verify(self, remote: Tuple, local: Tuple, login_name: str,
                password: str) -> LoginResult:
        """In a login thread: whose the connection is, and the check."""
        # The client's end of the connection is bound to its *remote*
        # address and connected to our *local* one.
        account = tcp_owner(remote, local)
        try:
            return account, self.login.check(account, login_name, password)
        except ProtocolError as err:
            return account, err
