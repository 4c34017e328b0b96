"""The proxy's serving loop: a ZeroMQ ROUTER on loopback, one thread.

Every client message goes through the same steps: its peer must be a
loopback address (a ZAP handler refuses other peers at the handshake, and
each message is checked again), its frames must parse (`protocol`), the
handshake commands are answered here (banner, tier-1 login, quit), and
everything else is checked against the session's role and forwarded over
a daemon link of that role (`links`). Replies always have three frames.

Slow work (the scrypt check of a login, opening daemon links) runs in
other threads and comes back through `post`, so one client's login never
delays another client's status poll.
"""

from __future__ import annotations

import collections
import ipaddress
import logging
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Deque, Dict, List, Optional, Tuple

import zmq

from nicos_scriptserver.proxy.daemonlink import DaemonLink, LinkError
from nicos_scriptserver.proxy.links import Forward, LinkPool
from nicos_scriptserver.proxy.login import Handshake, TokenLogin, login_fields
from nicos_scriptserver.proxy.protocol import WRITER, ProtocolError, \
    banner, check_allowed, error_reply, ok_reply, parse_request
from nicos_scriptserver.proxy.sessions import Session, SessionTable

log = logging.getLogger('nicos_scriptserver.proxy')

ZAP_ENDPOINT = 'inproc://zeromq.zap.01'
ZAP_DOMAIN = b'nicos-scriptserver'
# Messages taken from the ROUTER per poll round, so links and logins are
# served between bursts.
BURST = 64


class ConfigError(ValueError):
    """The proxy was asked for something it must not do."""


def is_loopback(address: str) -> bool:
    """Whether *address* (an IP address text) is a loopback address."""
    try:
        ip = ipaddress.ip_address(address.split('%')[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_loopback


@dataclass
class ProxyConfig:
    """Where the proxy listens, which daemon it serves and how."""

    #: NICOS account (login, password) per role; no viewer entry: no viewers.
    accounts: Dict[str, Tuple[str, str]]
    listen_host: str = '127.0.0.1'
    #: The IBEX GUI connects to port 1301, hard-coded.
    listen_port: int = 1301
    daemon_host: str = '127.0.0.1'
    daemon_port: int = 1302
    links_per_role: int = 4
    #: A connection with no login is forgotten after this many idle seconds.
    handshake_timeout: float = 10.0
    #: A logged-in connection is forgotten after this many idle seconds.
    idle_timeout: float = 600.0
    max_sessions: int = 1000
    #: A request that found no free daemon link within this time fails.
    queue_timeout: float = 30.0

    def check(self) -> None:
        if not is_loopback(self.listen_host):
            raise ConfigError(f'the proxy listens on loopback only, not on '
                              f'{self.listen_host!r}')
        if WRITER not in self.accounts:
            raise ConfigError('no NICOS account for token holders (writers)')


class ProxyServer:
    """Serves IBEX-like clients on loopback and forwards to the daemon."""

    def __init__(self, config: ProxyConfig, login: TokenLogin,
                 context: Optional[zmq.Context] = None):
        config.check()
        self.config = config
        self.login = login
        self.context = context or zmq.Context.instance()
        self.handshake = Handshake.new()
        self.sessions = SessionTable(config.max_sessions,
                                     config.handshake_timeout,
                                     config.idle_timeout)
        self._stopping = threading.Event()
        self._posted: Deque[Callable[[], None]] = collections.deque()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._login_checks = ThreadPoolExecutor(2, 'proxy login check')
        self._fds_changed = True
        self.pools = {
            role: LinkPool(role, self._opener(login_name, password),
                           config.links_per_role, self.post,
                           self._mark_fds_changed, self._stopping)
            for role, (login_name, password) in config.accounts.items()}
        self.router: Optional[zmq.Socket] = None
        self.port = 0

    def _opener(self, login_name: str, password: str) -> Callable[[], DaemonLink]:
        host, port = self.config.daemon_host, self.config.daemon_port
        return lambda: DaemonLink(host, port, login_name, password).open()

    def _mark_fds_changed(self) -> None:
        self._fds_changed = True

    def post(self, callback: Callable[[], None]) -> None:
        """Run *callback* in the serving thread (callable from any thread)."""
        self._posted.append(callback)
        try:
            self._wake_w.send(b'x')
        except (BlockingIOError, OSError):
            pass

    def call_in_loop(self, callback: Callable[[], None],
                     timeout: float = 10.0) -> bool:
        """Run *callback* in the serving thread and wait until it ran
        (from another thread only); False if it did not run in time,
        e.g. because the loop is stopping."""
        ran = threading.Event()

        def run() -> None:
            try:
                callback()
            finally:
                ran.set()
        self.post(run)
        return ran.wait(timeout)

    # -- lifecycle ----------------------------------------------------------

    def bind(self) -> int:
        """Bind the ROUTER socket (and the ZAP handler); returns the port."""
        self.zap = self.context.socket(zmq.REP)
        self.zap.bind(ZAP_ENDPOINT)
        self.router = self.context.socket(zmq.ROUTER)
        self.router.zap_domain = ZAP_DOMAIN
        self.router.linger = 0
        # A client that does not read its replies loses them instead of
        # growing the proxy's memory.
        self.router.sndhwm = 100
        self.router.rcvhwm = 1000
        self.router.maxmsgsize = 2 * 1024 * 1024
        host = self.config.listen_host
        endpoint = f'tcp://{"[%s]" % host if ":" in host else host}'
        if ':' in host:
            self.router.ipv6 = True
        if self.config.listen_port:
            self.router.bind(f'{endpoint}:{self.config.listen_port}')
            self.port = self.config.listen_port
        else:
            self.port = self.router.bind_to_random_port(endpoint)
        for pool in self.pools.values():
            pool.start()
        return self.port

    def stop(self) -> None:
        """Ask `serve_forever` to return (callable from any thread)."""
        self._stopping.set()
        self.post(lambda: None)

    def serve_forever(self) -> None:
        """Serve until `stop`; closes every socket on the way out."""
        next_sweep = time.monotonic() + 1.0
        try:
            while not self._stopping.is_set():
                if self._fds_changed:
                    poller, fd_links = self._new_poller()
                    self._fds_changed = False
                ready = dict(poller.poll(1000))
                if self.router in ready:
                    self._serve_clients()
                if self.zap in ready:
                    self._answer_zap()
                if self._wake_r.fileno() in ready:
                    self._run_posted()
                for fd, (pool, link, is_events) in fd_links.items():
                    if fd in ready:
                        self._serve_link(pool, link, is_events)
                now = time.monotonic()
                if now >= next_sweep:
                    self._sweep(now)
                    next_sweep = now + 1.0
        finally:
            self._close()

    def _new_poller(self) -> Tuple[zmq.Poller, Dict[int, Tuple[LinkPool, DaemonLink, bool]]]:
        poller = zmq.Poller()
        poller.register(self.router, zmq.POLLIN)
        poller.register(self.zap, zmq.POLLIN)
        poller.register(self._wake_r.fileno(), zmq.POLLIN)
        fd_links = {}
        for pool in self.pools.values():
            for link in pool.links:
                for sock, is_events in ((link.sock, False), (link.event_sock, True)):
                    poller.register(sock.fileno(), zmq.POLLIN)
                    fd_links[sock.fileno()] = (pool, link, is_events)
        return poller, fd_links

    def _close(self) -> None:
        self._login_checks.shutdown(wait=False, cancel_futures=True)
        for pool in self.pools.values():
            pool.close()
        self.router.close(0)
        self.zap.close(0)
        self._wake_r.close()
        self._wake_w.close()

    # -- clients ------------------------------------------------------------

    def _serve_clients(self) -> None:
        for _ in range(BURST):
            try:
                frames = self.router.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            self._serve_message(frames)

    def _serve_message(self, frames: List[zmq.Frame]) -> None:
        identity = frames[0].bytes
        peer = frames[0].get('Peer-Address') or ''
        if not is_loopback(peer):
            log.warning('dropped a message from non-loopback peer %r', peer)
            return
        # A REQ client puts an empty delimiter before its three frames.
        body = [frame.bytes for frame in frames[1:]]
        envelope = [identity]
        if body and not body[0]:
            envelope.append(b'')
            body = body[1:]
        try:
            request = parse_request(body)
            session = self.sessions.touch(identity, peer)
            self._handle(session, envelope, request.command, request.args)
        except ProtocolError as err:
            self._reply(envelope, error_reply(str(err)))

    def _reply(self, envelope: List[bytes], frames: List[bytes]) -> None:
        try:
            self.router.send_multipart(envelope + frames, zmq.NOBLOCK)
        except zmq.Again:
            log.info('dropped a reply to a client that does not read')

    def _handle(self, session: Session, envelope: List[bytes], command: str,
                args: list) -> None:
        if session.login_pending:
            raise ProtocolError('a login is still being checked on this '
                                'connection')
        if command == 'getbanner':
            self._reply(envelope, ok_reply(self._banner()))
        elif command == 'authenticate':
            self._authenticate(session, envelope, args)
        elif command == 'quit':
            self.sessions.drop(session.identity)
            self._reply(envelope, ok_reply(None))
        elif session.role is None:
            raise ProtocolError('not logged in: send getbanner and '
                                'authenticate first')
        else:
            check_allowed(command, session.role)
            self._forward(session.role, Forward(envelope, command, args))

    def _banner(self) -> dict:
        daemon_banner = next((link.banner for pool in self.pools.values()
                              for link in pool.links), {})
        return banner(self.handshake.public_base64, daemon_banner)

    def _authenticate(self, session: Session, envelope: List[bytes],
                      args: list) -> None:
        login_name, sent = login_fields(args)
        password = self.handshake.password(sent)
        session.login_pending = True
        future = self._login_checks.submit(self.login.check, session.peer,
                                           login_name, password)
        future.add_done_callback(lambda done: self.post(
            lambda: self._login_checked(session, envelope, login_name, done)))

    def _login_checked(self, session: Session, envelope: List[bytes],
                       login_name: str, done) -> None:
        session.login_pending = False
        try:
            role = done.result()
        except ProtocolError as err:
            log.warning('failed login as %r from %s: %s', login_name,
                        session.peer, err)
            self._reply(envelope, error_reply(str(err)))
            return
        pool = self.pools.get(role)
        if pool is None or pool.user_level is None:
            self._reply(envelope, error_reply(
                f'logged in, but the proxy has no {role} link to the daemon: '
                f'{pool.last_error if pool else "not configured"}'))
            return
        session.role = role
        log.info('%s logged in from %s as %r', role, session.peer, login_name)
        self._reply(envelope, ok_reply({'user_level': pool.user_level}))

    def _forward(self, role: str, forward: Forward) -> None:
        pool = self.pools[role]
        if not pool.available:
            raise ProtocolError(f'the daemon is not reachable: {pool.last_error}')
        pool.submit(forward)

    # -- daemon links -------------------------------------------------------

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
                self._reply(failed.envelope, error_reply(
                    f'the connection to the daemon broke: {err}'))
            if not pool.links:
                for waiting in pool.drain():
                    self._reply(waiting.envelope, error_reply(
                        f'the daemon is not reachable: {err}'))
            return
        if done is None:
            return
        forward, (ok, payload) = done
        if not ok:
            self._reply(forward.envelope, error_reply(str(payload)))
            return
        try:
            frames = ok_reply(payload)
        except ProtocolError as err:
            frames = error_reply(f'{forward.command}: {err}')
        self._reply(forward.envelope, frames)

    # -- housekeeping -------------------------------------------------------

    def _run_posted(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except BlockingIOError:
            pass
        while self._posted:
            self._posted.popleft()()

    def _sweep(self, now: float) -> None:
        gone = self.sessions.expire()
        if gone:
            log.debug('forgot %d idle connections', len(gone))
        for pool in self.pools.values():
            for forward in pool.expired(now, self.config.queue_timeout):
                self._reply(forward.envelope, error_reply(
                    'the daemon is busy: no free connection to it within '
                    f'{self.config.queue_timeout:.0f} s'))

    def _answer_zap(self) -> None:
        request = self.zap.recv_multipart()
        version, request_id, _domain, address = request[:4]
        if is_loopback(address.decode('ascii', 'replace')):
            self.zap.send_multipart([version, request_id, b'200', b'OK', b'', b''])
        else:
            log.warning('refused a connection from non-loopback address %s',
                        address.decode('ascii', 'replace'))
            self.zap.send_multipart([version, request_id, b'400',
                                     b'loopback clients only', b'', b''])
