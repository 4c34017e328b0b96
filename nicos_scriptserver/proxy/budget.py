"""How many bytes the proxy holds for its clients, and the bounds (sans-I/O).

Every connection has a `Meter`: the bytes it holds now (received and not
yet handed on, plus replies not yet sent). A connection that has not
logged in may hold one request; a logged-in one also a large reply. The
connections that have not logged in share a pool, and all connections
another, larger one, so that many connections cannot add up to what one
may not hold. A connection over a bound is closed (only that one), which
gives its memory back.

The totals never refuse a connection's first `Limits.reserved` bytes: a
status poll of the real GUI is served however much the others hold.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from nicos_scriptserver.proxy.protocol import MAX_REQUEST_BYTES

KIB, MIB = 1024, 1024 * 1024
#: Room beyond a request's own bytes: frame headers, the REQ delimiter,
#: what one read takes in ahead, the small replies before login.
FRAMING_BYTES = 64 * KIB


@dataclass(frozen=True)
class Limits:
    """The bounds, in bytes."""

    #: One incoming message (frames plus their per-frame cost); larger
    #: ones close the connection before their body is read. Up to here a
    #: request larger than MAX_REQUEST_BYTES still gets an error reply.
    message: int = MAX_REQUEST_BYTES + FRAMING_BYTES
    #: One connection that has not logged in: one request, small replies.
    before_login: int = MAX_REQUEST_BYTES + 2 * FRAMING_BYTES
    #: One logged-in connection: one request and a reply of the daemon's
    #: (a status with many long scripts in the queue is large).
    logged_in: int = 64 * MIB
    #: All connections that have not logged in, together.
    before_login_total: int = 32 * MIB
    #: All connections, together.
    total: int = 256 * MIB
    #: What a connection may hold whatever the totals.
    reserved: int = 64 * KIB


@dataclass
class Meter:
    """The bytes one connection holds."""

    used: int = 0
    logged_in: bool = False


class Budget:
    """The meters of all connections and their totals."""

    def __init__(self, limits: Limits):
        self.limits = limits
        self.total = 0
        self.before_login_total = 0

    def update(self, meter: Meter, used: int) -> Optional[str]:
        """Record that *meter*'s connection holds *used* bytes now; the
        bound it broke (a reason to close it), or None."""
        delta = used - meter.used
        meter.used = used
        self.total += delta
        if not meter.logged_in:
            self.before_login_total += delta
        limits = self.limits
        own = limits.logged_in if meter.logged_in else limits.before_login
        if used > own:
            return (f'holds {used} bytes, more than the {own} of a '
                    f'{"logged-in " if meter.logged_in else ""}connection'
                    f'{"" if meter.logged_in else " before login"}')
        if delta <= 0 or used <= limits.reserved:
            return None
        if self.total > limits.total:
            return f'all connections hold more than {limits.total} bytes'
        if not meter.logged_in and self.before_login_total > limits.before_login_total:
            return (f'connections before login hold more than '
                    f'{limits.before_login_total} bytes')
        return None

    def log_in(self, meter: Meter, logged_in: bool = True) -> None:
        """Move *meter* to the bounds of a logged-in connection (or back,
        after a quit)."""
        if meter.logged_in != logged_in:
            self.before_login_total += -meter.used if logged_in else meter.used
            meter.logged_in = logged_in

    def release(self, meter: Meter) -> None:
        """Forget *meter* (its connection closed)."""
        self.update(meter, 0)
