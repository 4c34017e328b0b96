"""Who is connected to the proxy: one session per connection (sans-I/O).

The IBEX GUI never says ``quit``: on every reconnect it opens a new REQ
socket, i.e. a new connection, and may leave the old one behind. So
sessions expire (and the server closes their connections): quickly while
nobody has logged in on them, later once they have (the GUI polls every
second, so a live session is never idle for long). The table is bounded,
so a flood of new connections cannot grow it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Dict, Hashable, List, Optional

from nicos_scriptserver.proxy.protocol import ProtocolError


@dataclass
class Session:
    """One client connection's state at the proxy."""

    #: The connection's key (the server numbers its connections).
    identity: Hashable
    peer: str
    last_seen: float
    #: ``viewer`` or ``writer`` once logged in.
    role: Optional[str] = None
    #: A request of it is being served (a login check, the daemon): it
    #: does not expire meanwhile.
    busy: bool = False
    #: Whether that request came after an empty delimiter frame (from a
    #: REQ socket), which its reply needs too.
    delimiter: bool = False
    #: Failed logins on this connection, and when it may have the next
    #: answer to a login (each failure puts that later).
    failures: int = 0
    next_login: float = 0.0
    #: The uid of the client's account while it is logged in (and known):
    #: what ties event connections to logins (`publisher`).
    account: Optional[int] = None


class SessionTable:
    """Sessions by connection, with expiry and a size bound."""

    def __init__(self, max_sessions: int = 1000, handshake_timeout: float = 10.0,
                 idle_timeout: float = 600.0,
                 clock: Callable[[], float] = time.monotonic):
        self.max_sessions = max_sessions
        self.handshake_timeout = handshake_timeout
        self.idle_timeout = idle_timeout
        self._clock = clock
        self._sessions: Dict[Hashable, Session] = {}

    def __len__(self) -> int:
        return len(self._sessions)

    def touch(self, identity: Hashable, peer: str) -> Session:
        """The session of *identity*, new if needed; `ProtocolError` if the
        table is full even after dropping expired sessions."""
        now = self._clock()
        session = self._sessions.get(identity)
        if session is None:
            if len(self._sessions) >= self.max_sessions:
                self.expire()
            if len(self._sessions) >= self.max_sessions:
                raise ProtocolError('too many connections to the proxy; '
                                    'try again later')
            session = self._sessions[identity] = Session(identity, peer, now)
        session.last_seen = now
        return session

    def get(self, identity: Hashable) -> Optional[Session]:
        return self._sessions.get(identity)

    def drop(self, identity: Hashable) -> Optional[Session]:
        """Forget the session of *identity*; it, if there was one."""
        return self._sessions.pop(identity, None)

    def _timeout(self, session: Session) -> float:
        return self.idle_timeout if session.role else self.handshake_timeout

    def expire(self) -> List[Session]:
        """Drop and return the sessions idle for longer than their timeout."""
        now = self._clock()
        gone = [s for s in self._sessions.values()
                if not s.busy and now - s.last_seen > self._timeout(s)]
        for session in gone:
            del self._sessions[session.identity]
        return gone
