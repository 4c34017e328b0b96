"""A client of the proxy, speaking what the IBEX GUI speaks.

A ZeroMQ REQ socket, three-frame JSON requests, and the NICOS handshake
(banner, then ``authenticate`` with the password RSA-encrypted to the
banner's key). Errors raise `ProxyError` with the proxy's text. Used by
the tests and benchmarks, and by anything that wants to drive the script
server the way IBEX does.
"""

from __future__ import annotations

import base64
import json
from typing import Any, List, Optional

import rsa
import zmq


class ProxyError(Exception):
    """The proxy replied with an error, or did not reply in time."""


class ProxyClient:
    """One connection to the proxy (a new REQ socket, as IBEX makes)."""

    def __init__(self, host: str, port: int, timeout: float = 5.0,
                 context: Optional[zmq.Context] = None):
        self.address = f'tcp://{host}:{port}'
        self.timeout = timeout
        self.context = context or zmq.Context.instance()
        self.banner: dict = {}
        self._socket: Optional[zmq.Socket] = None
        self.reconnect()

    def reconnect(self) -> None:
        """Drop the socket and open a new one (a new identity)."""
        self.close()
        self._socket = self.context.socket(zmq.REQ)
        self._socket.linger = 0
        self._socket.rcvtimeo = int(self.timeout * 1000)
        self._socket.connect(self.address)

    def exchange(self, frames: List[bytes]) -> List[bytes]:
        """Send raw request frames, return the raw reply frames."""
        self._socket.send_multipart(frames)
        try:
            return self._socket.recv_multipart()
        except zmq.Again:
            self.reconnect()
            raise ProxyError(f'no reply from {self.address} within '
                             f'{self.timeout} s') from None

    def call(self, command: str, *args: Any) -> Any:
        """Send one command; its reply data, or `ProxyError`."""
        reply = self.exchange([command.encode('ascii'), b'',
                               json.dumps(list(args)).encode('utf-8')])
        if len(reply) != 3:
            raise ProxyError(f'a reply of {len(reply)} frames, not 3')
        status, _, payload = reply
        if status != b'ok':
            raise ProxyError(payload.decode('utf-8', 'replace'))
        return json.loads(payload) if payload else None

    def login(self, user: str, password: str, encrypt: bool = True) -> int:
        """Banner and tier-1 login; returns the user level granted."""
        self.banner = self.call('getbanner')
        if encrypt:
            key = rsa.PublicKey.load_pkcs1(
                base64.b64decode(self.banner['rsakey']['pkcs1_base64']))
            password = 'RSA:' + base64.b64encode(
                rsa.encrypt(password.encode('utf-8'), key)).decode('ascii')
        reply = self.call('authenticate', {'login': user, 'passwd': password,
                                           'display': 'ProxyClient'})
        return reply['user_level']

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close(0)
            self._socket = None

    def __enter__(self) -> 'ProxyClient':
        return self

    def __exit__(self, *exc) -> None:
        self.close()
