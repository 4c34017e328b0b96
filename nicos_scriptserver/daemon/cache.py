"""Cache server that keeps its UDP socket on the configured host."""

from nicos.services.cache.server import CacheServer


class LoopbackCacheServer(CacheServer):
    """NICOS cache server binding its UDP socket to the TCP server's host.

    Stock NICOS binds the UDP broadcast socket to all interfaces; a script
    server must listen on loopback only, so UDP follows ``server``.
    """

    def _bind_to(self, address, proto='tcp'):
        if proto == 'udp' and not address:
            address = self.server
        return CacheServer._bind_to(self, address, proto)
