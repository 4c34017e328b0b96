"""Which local account is on the other end of a loopback connection.

TCP on loopback carries no credentials, but the kernel knows who owns
both ends: ``/proc/net/tcp`` and ``/proc/net/tcp6`` list every TCP socket
of the network namespace with its owner's uid (for an accepted socket,
the uid of the listening socket it came from). The peer of a connected
socket is the row whose local address is our remote one and whose remote
address is our local one. Unix sockets say it directly (SO_PEERCRED).

Used where NICOS gives no other way: the cache accepts only the server's
own processes, the proxy talks only to a daemon of the expected account
and slows down guessers per account.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from typing import Iterable, Optional, Tuple

_TABLES = ('/proc/net/tcp', '/proc/net/tcp6')
_UCRED = struct.Struct('3i')


def _hex_address(address: Tuple) -> str:
    """An (ip, port) as /proc/net/tcp{,6} writes it (host byte order words)."""
    ip = ipaddress.ip_address(address[0].split('%')[0])
    packed = ip.packed
    words = [packed[i:i + 4] for i in range(0, len(packed), 4)]
    text = ''.join('%08X' % struct.unpack('=I', word)[0] for word in words)
    return f'{text}:{address[1]:04X}'


def _candidates(address: Tuple) -> Iterable[str]:
    """The forms an address may take in the tables: IPv4 peers of an
    IPv6 socket appear there as IPv4-mapped IPv6 addresses."""
    yield _hex_address(address)
    ip = ipaddress.ip_address(address[0].split('%')[0])
    if isinstance(ip, ipaddress.IPv4Address):
        yield _hex_address((str(ipaddress.IPv6Address(f'::ffff:{ip}')), address[1]))
    elif ip.ipv4_mapped:
        yield _hex_address((str(ip.ipv4_mapped), address[1]))


def tcp_owner(local: Tuple, remote: Tuple) -> Optional[int]:
    """The uid owning the TCP socket bound to *local* and connected to
    *remote*, or None if there is no such socket (it closed)."""
    wanted_local = set(_candidates(local))
    wanted_remote = set(_candidates(remote))
    for table in _TABLES:
        try:
            with open(table, encoding='ascii') as fp:
                next(fp)
                for line in fp:
                    fields = line.split()
                    if fields[1] in wanted_local and fields[2] in wanted_remote:
                        return int(fields[7])
        except FileNotFoundError:
            continue
    return None


def peer_uid(sock: socket.socket) -> Optional[int]:
    """The uid of the process on the other end of *sock* (TCP on this
    host, or a Unix socket); None if it cannot be found."""
    if sock.family == socket.AF_UNIX:
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                _UCRED.size)
        return _UCRED.unpack(creds)[1]
    try:
        local, remote = sock.getsockname(), sock.getpeername()
    except OSError:
        return None
    return tcp_owner(remote, local)
