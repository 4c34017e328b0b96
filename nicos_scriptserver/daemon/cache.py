"""The NICOS cache of a script server: for the server's own processes only."""

import os
import socket

from nicos.services.cache.server import CacheServer

from nicos_scriptserver.wire.peers import peer_uid


class OwnAccountListener(socket.socket):
    """A listening TCP socket that hands out only connections from
    processes of its own account.

    NICOS's cache server accepts a connection and at once starts serving
    it; a connection from another account is instead swapped for one
    whose other end is already closed, so the server's worker reads
    nothing from it and ends, and the refused socket is closed unread.
    """

    def accept(self):
        conn, address = super().accept()
        uid = peer_uid(conn)
        if uid == os.geteuid():
            return conn, address
        conn.close()
        closed, other = socket.socketpair()
        other.close()
        return closed, address


class PrivateCacheServer(CacheServer):
    """NICOS cache server that serves only the script server's processes.

    Anything that can write to the cache can change what the daemon
    believes about devices, and the daemon reads pickled values from it.
    So only processes of the cache's own account (the daemon and its dry
    runs run as the same service account) may connect; the peer's account
    is looked up from the kernel's socket table (`peers.peer_uid`). Stock
    NICOS also serves UDP requests on all interfaces, from which no
    sender's account can be known; here there is no UDP socket at all.
    """

    def _bind_to(self, address, proto='tcp'):
        if proto == 'udp':
            return None, None
        sock, bound = CacheServer._bind_to(self, address, proto)
        if sock is None:
            return sock, bound
        return OwnAccountListener(sock.family, sock.type, sock.proto,
                                  sock.detach()), bound
