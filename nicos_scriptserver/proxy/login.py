"""Tier-1 login at the proxy: a token made at each start, kept hashed.

The proxy makes a fresh token at every start (the OS's CSPRNG) and keeps
only its salted scrypt hash; the clear token goes once to the PV
publisher, from which authorised GUIs read it, and is then forgotten. A
restart makes every previous token useless, and so does a rotation
(`make_token` + `install`), which the proxy does when the PV server that
holds the token restarted empty.

Failed logins are counted per local account (the uid on the other end of
the connection, `nicos_scriptserver.wire.peers`) and lock that account out for
a while: all clients of the proxy come from 127.0.0.1, so counting per
address would let one guessing account lock out the real GUI. Each
connection is slowed down as well: the server delays the next answer of
a connection by `LoginPolicy.delay` of its failures. What was attempted
is never kept or logged.
"""

from __future__ import annotations

import base64
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, Hashable, List, Optional, Tuple

import rsa

from nicos_scriptserver.instance.passwords import hash_secret, new_secret, verify_secret
from nicos_scriptserver.proxy.protocol import VIEWER, WRITER, ProtocolError

RSA_PREFIX = 'RSA:'


@dataclass
class LoginPolicy:
    """Who may log in at the proxy, and how failures are limited."""

    #: The login name that goes with the token (published beside it).
    user: str = 'scriptserver'
    #: If set, this login with any password may watch (read-only).
    viewer: Optional[str] = None
    #: Failures of one account within `window` seconds that lock it out.
    max_failures: int = 5
    #: Failures older than this are forgotten; a locked-out account waits it.
    window: float = 60.0
    #: After a connection's first failed login its next answer waits this
    #: long, doubling with each further failure up to `max_delay` seconds.
    first_delay: float = 0.25
    max_delay: float = 8.0

    def delay(self, failures: int) -> float:
        """How long a connection with *failures* failed logins waits for
        the answer to its next one."""
        if failures <= 0:
            return 0.0
        return min(self.first_delay * 2 ** min(failures - 1, 32), self.max_delay)


class TokenLogin:
    """Checks tier-1 logins against this start's token."""

    def __init__(self, policy: LoginPolicy,
                 clock: Callable[[], float] = time.monotonic):
        self.policy = policy
        self._clock = clock
        self._hash = ''
        self._failures: Dict[Hashable, List[float]] = {}
        self._lock = threading.Lock()

    def new_token(self) -> str:
        """Make this start's token; returns it in clear (once) and keeps
        only its hash."""
        token, digest = self.make_token()
        self.install(digest)
        return token

    @staticmethod
    def make_token() -> Tuple[str, str]:
        """A new (token, hash) pair; the slow part of a rotation, so it
        runs off the serving loop. Nothing is kept."""
        token = new_secret()
        return token, hash_secret(token)

    def install(self, digest: str) -> None:
        """Check logins against *digest* from now on; the previous token
        is refused. Sessions that logged in already are not touched (they
        live in the server's session table).

        Called on the serving loop. A check running in the login threads
        reads the hash once, as one reference, so it sees either the old
        or the new hash, never a mix.
        """
        self._hash = digest

    def check(self, account: Hashable, login: str, password: str) -> str:
        """The role (writer or viewer) of a login by *account* (the uid
        of the client, None if unknown), or `ProtocolError`."""
        with self._lock:
            failures = self._recent(account)
            if len(failures) >= self.policy.max_failures:
                wait = self.policy.window - (self._clock() - failures[0])
                raise ProtocolError(f'too many failed logins; try again in '
                                    f'{max(wait, 1):.0f} s')
        digest = self._hash   # one read: `install` may swap it meanwhile
        if login == self.policy.user and digest and \
                verify_secret(password, digest):
            return WRITER
        if self.policy.viewer is not None and login == self.policy.viewer:
            return VIEWER
        with self._lock:
            self._failures[account] = self._recent(account) + [self._clock()]
        raise ProtocolError('Invalid username or password!')

    def _recent(self, account: Hashable) -> List[float]:
        cutoff = self._clock() - self.policy.window
        # Accounts without recent failures are forgotten: the table stays
        # as small as the number of guessing accounts.
        recent = [t for t in self._failures.pop(account, []) if t > cutoff]
        if recent:
            self._failures[account] = recent
        return recent


@dataclass
class Handshake:
    """One client connection's RSA key, as NICOS makes one per connection."""

    public: rsa.PublicKey = field(repr=False)
    private: rsa.PrivateKey = field(repr=False)

    @classmethod
    def new(cls) -> 'Handshake':
        public, private = rsa.newkeys(512)
        return cls(public, private)

    @property
    def public_base64(self) -> str:
        return base64.b64encode(self.public.save_pkcs1()).decode('ascii')

    def password(self, sent: str) -> str:
        """The password as the client meant it: plain, or ``RSA:`` +
        base64 of it encrypted with this connection's key."""
        if not sent.startswith(RSA_PREFIX):
            return sent
        try:
            return rsa.decrypt(base64.b64decode(sent[len(RSA_PREFIX):]),
                               self.private).decode('utf-8')
        except (ValueError, rsa.DecryptionError, UnicodeDecodeError):
            raise ProtocolError('Invalid username or password!') from None


def login_fields(args: list) -> tuple:
    """(login, passwd) of an ``authenticate`` request, checked."""
    if len(args) != 1 or not isinstance(args[0], dict):
        raise ProtocolError('authenticate takes one object {login, passwd, '
                            'display}')
    login, passwd = args[0].get('login'), args[0].get('passwd')
    if not isinstance(login, str) or not isinstance(passwd, str):
        raise ProtocolError('authenticate needs login and passwd as text')
    return login, passwd
