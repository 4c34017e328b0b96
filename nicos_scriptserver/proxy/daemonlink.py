"""The proxy's tier-2 connections: logged-in classic-protocol links to the daemon.

Why not NICOS's own clients: its ZeroMQ client mishandles error replies,
and `NicosClient` gives each request a blocking call. The proxy serves
every client from one thread, so a link here is split in two: setting it
up (connect, banner, login, event connection) blocks and happens outside
the serving loop; then the sockets turn non-blocking: requests are sent
whole (a large one waits at most the link's timeout for the daemon to
take it) and replies are read as they arrive, whenever the loop's poller
says the socket is readable.

Replies are pickles (the classic serializer) and are read as plain data
only: the daemon runs users' scripts, so a reply must not be able to run
code in the proxy, which holds the tier-2 passwords. For the same reason
the proxy logs in only to a daemon of the expected account: while the
daemon is down, another local account could bind its port and collect
the passwords. What is sent to the daemon are arguments the proxy has
already checked to be plain JSON data.
"""

from __future__ import annotations

import base64
import os
import pickle
import socket
import uuid
from typing import Any, Iterable, List, Optional, Tuple

import rsa
from nicos.protocols.daemon import DAEMON_EVENTS
from nicos.protocols.daemon.classic import ACK, ENQ, LENGTH, NAK, STX, \
    code2event, command2code

from nicos_scriptserver import plainpickle, protocol
from nicos_scriptserver.peers import peer_uid

protocol.register()

#: (ok, payload) of one daemon reply.
Reply = Tuple[bool, Any]
#: One daemon event as it arrived: its name, its pickled payload, blobs.
RawEvent = Tuple[str, bytes, List[bytes]]

#: Bytes of one event (payload and blobs) the proxy takes; a larger one
#: breaks the link (the daemon's own limit on a command frame, which an
#: event carrying a script never needs).
MAX_EVENT_BYTES = 16 * 1024 * 1024
# An event frame starts with STX, the event code, the number of blobs and
# the payload's length.
_EVENT_HEADER = 1 + 2 + 1 + LENGTH.size


class LinkError(ConnectionError):
    """The daemon cannot be reached, refused the login or broke the link."""


class ReplyReader:
    """Splits the daemon's byte stream into replies (sans-I/O)."""

    def __init__(self):
        self._buffer = bytearray()

    def feed(self, data: bytes) -> List[Tuple[bool, bytes]]:
        """Add received bytes; return the (ok, raw payload) replies completed."""
        self._buffer += data
        replies = []
        while self._buffer:
            start = self._buffer[:1]
            if start == ACK:
                del self._buffer[:1]
                replies.append((True, b''))
                continue
            if start not in (STX, NAK):
                raise LinkError(f'the daemon sent an invalid reply start {bytes(start)!r}')
            if len(self._buffer) < 1 + LENGTH.size:
                break
            length, = LENGTH.unpack_from(self._buffer, 1)
            end = 1 + LENGTH.size + length
            if len(self._buffer) < end:
                break
            replies.append((start == STX, bytes(self._buffer[1 + LENGTH.size:end])))
            del self._buffer[:end]
        return replies


class EventReader:
    """Splits the daemon's event stream into events (sans-I/O), as NICOS's
    classic server sends them (``send_event``): STX, event code (2), blob
    count (1), payload length (4), payload, then each blob with its length.
    """

    def __init__(self, limit: int = MAX_EVENT_BYTES):
        self.limit = limit
        self._buffer = bytearray()

    def feed(self, data: bytes) -> List[RawEvent]:
        """Add received bytes; return the events completed."""
        self._buffer += data
        events = []
        while (event := self._next()) is not None:
            events.append(event)
        return events

    def _next(self) -> Optional[RawEvent]:
        buffer = self._buffer
        if len(buffer) < _EVENT_HEADER:
            if buffer[:1] not in (b'', STX):
                raise LinkError(f'the daemon sent an invalid event start '
                                f'{bytes(buffer[:1])!r}')
            return None
        if buffer[:1] != STX:
            raise LinkError(f'the daemon sent an invalid event start '
                            f'{bytes(buffer[:1])!r}')
        name = code2event.get(bytes(buffer[1:3]))
        if name is None:
            raise LinkError(f'the daemon sent an unknown event code '
                            f'{bytes(buffer[1:3]).hex()}')
        blobs = buffer[3]
        # Walk the lengths without copying; each is checked before waiting
        # for what it announces.
        pos, parts = 4, []
        for _ in range(1 + blobs):
            if len(buffer) < pos + LENGTH.size:
                return None
            length, = LENGTH.unpack_from(buffer, pos)
            pos += LENGTH.size
            if pos + length > self.limit:
                raise LinkError(f'the daemon sent an event {name!r} of more '
                                f'than {self.limit} bytes')
            parts.append((pos, length))
            pos += length
        if len(buffer) < pos:
            return None
        payload, *blob_data = [bytes(buffer[start:start + length])
                               for start, length in parts]
        del buffer[:pos]
        return name, payload, blob_data


def decode_event(payload: bytes) -> Any:
    """An event's payload as plain data (`plainpickle`); ValueError if it
    is not plain data."""
    try:
        return plainpickle.loads(payload)
    except (plainpickle.UnpicklingError, ValueError, TypeError, EOFError) as err:
        raise ValueError(f'an event that is not plain data: {err}') from None


def encode_request(command: str, args: list) -> bytes:
    """One classic-protocol request frame."""
    try:
        code = command2code[command]
    except KeyError:
        raise LinkError(f'{command} is not a daemon command') from None
    data = pickle.dumps(list(args), 2)
    return ENQ + code + LENGTH.pack(len(data)) + data


def decode_reply(ok: bool, raw: bytes) -> Reply:
    """One reply: its payload read as plain data only. A payload that is
    not plain data becomes an error reply (the link itself is fine)."""
    if not raw:
        return ok, None
    try:
        return ok, plainpickle.loads(raw)
    except (plainpickle.UnpicklingError, ValueError, TypeError, EOFError) as err:
        return False, f'the daemon\'s reply is not plain data: {err}'


def check_daemon_account(sock: socket.socket, expected_uid: int) -> None:
    """`LinkError` unless the process that accepted *sock* runs as
    *expected_uid* (the daemon's account)."""
    uid = peer_uid(sock)
    if uid != expected_uid:
        host, port = sock.getpeername()[:2]
        raise LinkError(f'the process listening on {host}:{port} runs as '
                        f'uid {uid}, not as the daemon\'s account (uid '
                        f'{expected_uid}): not sending it a password')


class DaemonLink:
    """One logged-in connection to the daemon, with one request at a time."""

    def __init__(self, host: str, port: int, login: str, password: str,
                 timeout: float = 10.0, daemon_uid: Optional[int] = None):
        self.address = (host, port)
        #: The account the daemon must run as (default: the proxy's own).
        self.daemon_uid = os.geteuid() if daemon_uid is None else daemon_uid
        self.login = login
        self._password = password
        self.timeout = timeout
        self.sock: Optional[socket.socket] = None
        self.event_sock: Optional[socket.socket] = None
        self.banner: dict = {}
        self.user_level: int = -1
        self.busy = False
        self._reader = ReplyReader()
        self._events = EventReader()

    # -- setting up (blocking) ---------------------------------------------

    def open(self, events: Iterable[str] = ()) -> 'DaemonLink':
        """Connect, log in, open the event connection and mask every event
        but *events*."""
        client_id = uuid.uuid4().bytes
        try:
            self.sock = socket.create_connection(self.address, self.timeout)
            check_daemon_account(self.sock, self.daemon_uid)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.sock.sendall(client_id)
            ok, self.banner = self._blocking_reply()
            key = rsa.PublicKey.load_pkcs1(base64.b64decode(self.banner['rsakey']))
            secret = base64.b64encode(rsa.encrypt(self._password.encode(), key))
            ok, reply = self.call('authenticate', [{
                'login': self.login, 'passwd': 'RSA:' + secret.decode(),
                'display': 'nicos-scriptserver proxy'}])
            if not ok:
                raise LinkError(f'the daemon refused the proxy\'s login as '
                                f'{self.login!r}: {reply}')
            self.user_level = reply['user_level']
            # The daemon queues events for every handler until its event
            # connection exists; without one it would stall and drop us.
            self.event_sock = socket.create_connection(self.address, self.timeout)
            check_daemon_account(self.event_sock, self.daemon_uid)
            self.event_sock.sendall(client_id)
            ok, reply = self.call('eventmask', [sorted(set(DAEMON_EVENTS)
                                                      - set(events))])
            if not ok:
                raise LinkError(f'the daemon refused the event mask: {reply}')
        except (OSError, KeyError, ValueError, TypeError) as err:
            self.close()
            raise LinkError(f'cannot log into the daemon at '
                            f'{self.address[0]}:{self.address[1]}: {err}') from err
        except LinkError:
            self.close()
            raise
        return self

    def call(self, command: str, args: list) -> Reply:
        """Send a request and wait for its reply (setup and tests only)."""
        self.send(command, args)
        return self._blocking_reply()

    def _blocking_reply(self) -> Reply:
        while True:
            data = self.sock.recv(65536)
            if not data:
                raise LinkError('the daemon closed the connection')
            replies = self._reader.feed(data)
            if replies:
                self.busy = False
                return decode_reply(*replies[0])

    # -- serving: read only when the poller says the socket is readable ---

    def serve(self) -> None:
        """Switch to serving: non-blocking reads (a timeout would cost a
        poll() call before every read and write)."""
        self.sock.setblocking(False)
        self.event_sock.setblocking(False)

    def send(self, command: str, args: list) -> None:
        """Send one request; its reply comes through `read_reply`."""
        data = encode_request(command, args)
        try:
            if self.sock.gettimeout() == 0.0:
                sent = self.sock.send(data)
                if sent < len(data):
                    # Larger than the socket buffer: wait for the daemon
                    # to take the rest, within the timeout.
                    self.sock.settimeout(self.timeout)
                    self.sock.sendall(data[sent:])
                    self.sock.setblocking(False)
            else:
                self.sock.sendall(data)
        except OSError as err:
            raise LinkError(f'sending to the daemon failed: {err}') from err
        self.busy = True

    def read_reply(self) -> Optional[Reply]:
        """Read what is available; the reply once it is complete."""
        try:
            data = self.sock.recv(65536)
        except (BlockingIOError, TimeoutError):
            return None
        except OSError as err:
            raise LinkError(f'the daemon connection broke: {err}') from err
        if not data:
            raise LinkError('the daemon closed the connection')
        replies = self._reader.feed(data)
        if not replies:
            return None
        if len(replies) > 1:
            raise LinkError('the daemon sent a reply nobody asked for')
        self.busy = False
        return decode_reply(*replies[0])

    def read_events(self) -> List[RawEvent]:
        """Read what is available of the event connection; the events
        completed (undecoded)."""
        return self._events.feed(self._read_event_bytes())

    def discard_events(self) -> None:
        """Read and drop event bytes (everything is masked; a few arrive
        before the mask is set)."""
        self._read_event_bytes()

    def _read_event_bytes(self) -> bytes:
        try:
            data = self.event_sock.recv(1 << 16)
        except (BlockingIOError, TimeoutError):
            return b''
        except OSError as err:
            raise LinkError(f'the daemon event connection broke: {err}') from err
        if not data:
            raise LinkError('the daemon closed the event connection')
        return data

    def close(self) -> None:
        for sock in (self.sock, self.event_sock):
            if sock is not None:
                try:
                    sock.close()
                except OSError:
                    pass
        self.sock = self.event_sock = None
        self.busy = False
