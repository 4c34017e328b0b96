"""Who is connected to the proxy: one session per ZeroMQ identity (sans-I/O).

The IBEX GUI never says ``quit``: on every reconnect it opens a new REQ
socket, i.e. a new identity, and leaves the old one behind. So sessions
expire: quickly while nobody has logged in on them, later once they have
(the GUI polls every second, so a live session is never idle for long).
The table is bounded, so a flood of new identities cannot grow it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional

from nicos_scriptserver.proxy.protocol import ProtocolError


@dataclass
class Session:
    """One client connection's state at the proxy."""

    identity: bytes
    peer: str
    last_seen: float
    #: ``viewer`` or ``writer`` once logged in.
    role: Optional[str] = None
    #: A login check is running for this session.
    login_pending: bool = False


class SessionTable:
    """Sessions by identity, with expiry and a size bound."""

    def __init__(self, max_sessions: int = 1000, handshake_timeout: float = 10.0,
                 idle_timeout: float = 600.0,
                 clock: Callable[[], float] = time.monotonic):
        self.max_sessions = max_sessions
        self.handshake_timeout = handshake_timeout
        self.idle_timeout = idle_timeout
        self._clock = clock
        self._sessions: Dict[bytes, Session] = {}

    def __len__(self) -> int:
        return len(self._sessions)

    def touch(self, identity: bytes, peer: str) -> Session:
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

    def get(self, identity: bytes) -> Optional[Session]:
        return self._sessions.get(identity)

    def drop(self, identity: bytes) -> None:
        self._sessions.pop(identity, None)

    def _timeout(self, session: Session) -> float:
        return self.idle_timeout if session.role else self.handshake_timeout

    def expire(self) -> List[Session]:
        """Drop and return the sessions idle for longer than their timeout."""
        now = self._clock()
        gone = [s for s in self._sessions.values()
                if not s.login_pending and now - s.last_seen > self._timeout(s)]
        for session in gone:
            del self._sessions[session.identity]
        return gone

    def count(self, role: Optional[str]) -> int:
        """How many sessions have *role* (None: not logged in)."""
        return sum(1 for s in self._sessions.values() if s.role == role)
