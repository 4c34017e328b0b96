"""A listening socket on the proxy's loop that takes loopback connections
only (the request socket's and the event socket's).

A connection from any other address is closed before a byte is sent. A
burst of connects is taken a few dozen at a time, so that it does not
keep the loop from the others; when accepting fails (out of descriptors),
the socket rests instead of waking the loop again at once.
"""

from __future__ import annotations

import ipaddress
import logging
import select
import socket
from typing import Callable, Optional, Tuple

from nicos_scriptserver.proxy.logquota import LogQuota
from nicos_scriptserver.proxy.loop import EventLoop

log = logging.getLogger('nicos_scriptserver.proxy')

# Connections accepted per readiness of the listening socket, so that a
# burst of connects does not keep the loop from others.
ACCEPT_BURST = 64
# After accept() failed (out of descriptors, say), the listening socket
# rests this long instead of waking the loop again at once.
ACCEPT_REST = 1.0

#: What a listener hands on: the connection (non-blocking, no Nagle),
#: the client's (host, port) and ours.
Accepted = Callable[[socket.socket, Tuple, Tuple], None]


def is_loopback(address: str) -> bool:
    """Whether *address* (an IP address text) is a loopback address."""
    try:
        ip = ipaddress.ip_address(address.split('%')[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_loopback


class Listener:
    """Listens on the loop and hands on each loopback connection."""

    def __init__(self, loop: EventLoop, on_accept: Accepted, warnings: LogQuota):
        self.loop = loop
        self._on_accept = on_accept
        self._warnings = warnings
        self.sock: Optional[socket.socket] = None
        # Counts closings: a rest that ends after one does not watch again.
        self._listening = 0

    def listen(self, host: str, port: int) -> int:
        """Bind and listen on *host*:*port* (0: a free port); the port."""
        family = socket.AF_INET6 if ':' in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
            sock.listen(128)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self.sock = sock
        self.loop.watch(sock.fileno(), select.EPOLLIN, self._accept)
        return sock.getsockname()[1]

    def _accept(self, _events: int) -> None:
        for _ in range(ACCEPT_BURST):
            try:
                sock, remote = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue
            except OSError as err:   # e.g. out of descriptors: try later
                self._warnings.warning('accepting connections failed: %s', err)
                self._rest()
                return
            if not is_loopback(remote[0]):
                self._warnings.warning('refused a connection from '
                                       'non-loopback address %s', remote[0])
                sock.close()
                continue
            try:
                sock.setblocking(False)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                local = sock.getsockname()
            except OSError:   # reset by the client already
                sock.close()
                continue
            self._on_accept(sock, remote, local)

    def _rest(self) -> None:
        fd, listening = self.sock.fileno(), self._listening
        self.loop.forget(fd)

        def wake() -> None:
            if self._listening == listening:   # not closed meanwhile
                self.loop.watch(fd, select.EPOLLIN, self._accept)
        self.loop.call_later(ACCEPT_REST, wake)

    def close(self) -> None:
        self._listening += 1
        if self.sock is not None:
            self.loop.forget(self.sock.fileno())
            self.sock.close()
            self.sock = None
