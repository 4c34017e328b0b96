"""What the proxy is told at its start (`ProxyConfig`), checked."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Optional, Tuple

from nicos_scriptserver.proxy.budget import Limits
from nicos_scriptserver.proxy.listener import is_loopback
from nicos_scriptserver.proxy.protocol import WRITER


class ConfigError(ValueError):
    """The proxy was asked for something it must not do."""


@dataclass
class ProxyConfig:
    """Where the proxy listens, which daemon it serves and how."""

    #: NICOS account (login, password) per role; no viewer entry: no viewers.
    accounts: Dict[str, Tuple[str, str]]
    listen_host: str = '127.0.0.1'
    #: The IBEX GUI connects to port 1301, hard-coded; the event socket
    #: is the next port, where NICOS's ZeroMQ clients look for it.
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
    #: Event connections beyond this are closed at once.
    max_subscribers: int = 256
    #: A request that found no free daemon link within this time fails.
    queue_timeout: float = 30.0
    limits: Limits = field(default_factory=Limits)

    def check(self) -> None:
        if not is_loopback(self.listen_host):
            raise ConfigError(f'the proxy listens on loopback only, not on '
                              f'{self.listen_host!r}')
        if WRITER not in self.accounts:
            raise ConfigError('no NICOS account for token holders (writers)')
