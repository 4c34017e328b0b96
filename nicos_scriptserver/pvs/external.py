"""Publish the token and user name to PVs hosted by another PV server.

For sites where an existing server (e.g. IBEX's block server) hosts
``<prefix>TOKEN`` and ``<prefix>USER`` and decides who may read them;
this process is only a CA client that writes both.

The CA client library reads its configuration once, when it initialises
(at the first channel this process creates), so the caller sets it in
``os.environ`` before the first `ExternalPublisher.publish`:

* ``EPICS_CA_ADDR_LIST=127.0.0.1`` (or ``127.0.0.1:<port>``) and
  ``EPICS_CA_AUTO_ADDR_LIST=NO``, so searches for the PVs, and the token
  written to them, never leave the host;
* ``EPICS_CA_SERVER_PORT`` if the server does not use the default port.

The server sees the user name of this process (libca sends the login
name of the effective user), which must be a writer in its ACF.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from typing import Any, Callable, Dict, Optional

from nicos_scriptserver.pvs.server import TOKEN, USER
from nicos_scriptserver.pvs.values import check_value


class PublishError(RuntimeError):
    """The PVs could not be written (no connection, no access, refused)."""


def _is_loopback(host_port: str) -> bool:
    """Whether libca's ``host:port`` of a channel names this host."""
    host = host_port.rsplit(':', 1)[0].strip('[]')
    if host == 'localhost':
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ExternalPublisher:
    """Writes the user name and token to ``<prefix>USER``/``<prefix>TOKEN``."""

    def __init__(self, prefix: str, timeout: float = 5.0,
                 require_loopback: bool = True):
        self.prefix = prefix
        self.timeout = timeout
        #: Refuse to write to a server that is not on this host: a forged
        #: search reply could otherwise point the token at another machine.
        self.require_loopback = require_loopback
        # Channels kept open by `watch`, by PV name, and their callback.
        self._watched: Dict[str, Any] = {}
        self._on_change: Optional[Callable[[bool], None]] = None
        self._watch_lock = threading.Lock()

    def publish(self, user: str, token: str) -> None:
        """Write both values, waiting for the server to complete the puts.

        `ValueError` for values that do not fit a CA string, `PublishError`
        when a PV does not connect, is not writable, or does not hold the
        value afterwards.
        """
        check_value(user, 'user name')
        check_value(token, 'token')
        # Imported here: importing pyepics is cheap, but it must not happen
        # in processes that never publish (and so never set the CA env).
        import epics

        for suffix, value in ((USER, user), (TOKEN, token)):
            pv = epics.PV(self.prefix + suffix, auto_monitor=False,
                          connection_timeout=self.timeout)
            try:
                self._put(epics.ca, pv, value)
            finally:
                pv.disconnect()

    def _put(self, ca: Any, pv: Any, value: str) -> None:
        name = pv.pvname
        if not pv.wait_for_connection(timeout=self.timeout):
            raise PublishError(f'PV {name} did not connect within '
                               f'{self.timeout} s (is its server running, '
                               f'and EPICS_CA_ADDR_LIST set?)')
        # The channel-level calls, not the PV properties: those read the
        # value first, which raises where this user may not read.
        host = ca.host_name(pv.chid) or ''
        if self.require_loopback and not _is_loopback(host):
            raise PublishError(f'PV {name} is served from {host}, not from '
                               f'this host; the token is not sent there')
        if not ca.write_access(pv.chid):
            raise PublishError(f'no write access to PV {name} (is this '
                               f'process\'s user a writer in the server\'s '
                               f'access security?)')
        try:
            status = pv.put(value, wait=True, timeout=self.timeout)
        except Exception as err:   # pyepics raises its own exception types
            raise PublishError(f'writing PV {name} failed: {err}') from err
        if status is None or status < 0:
            raise PublishError(f'writing PV {name} did not complete within '
                               f'{self.timeout} s')
        # A put that completes may still have been refused by the server's
        # driver; read it back where this user may read.
        if ca.read_access(pv.chid):
            readback = pv.get(use_monitor=False, timeout=self.timeout,
                              as_string=True)
            if readback != value:
                raise PublishError(f'PV {name} does not hold the written '
                                   f'value after the put')

    # -- watching the server (see `watch.Republisher`) -----------------------

    def watch(self, on_change: Callable[[bool], None]) -> None:
        """Keep channels to both PVs open; *on_change(connected)* is called
        from libca's thread at every connection change of either."""
        self._on_change = on_change
        self._open_channels()

    def renew(self) -> None:
        """Close the kept channels and open new ones.

        libca searches for a new channel at once, while for a channel that
        lost its server it backs off (10 s and more between searches).
        """
        ca = _ca()
        with self._watch_lock:
            old, self._watched = self._watched, {}
        for chid in old.values():
            ca.clear_channel(chid)
        self._open_channels()

    def connected(self, timeout: float = 0.0) -> bool:
        """Whether every kept channel is connected, waiting up to
        *timeout* seconds for it."""
        ca = _ca()
        deadline = time.monotonic() + timeout
        while True:
            with self._watch_lock:
                chids = list(self._watched.values())
            if chids and all(ca.isConnected(c) for c in chids):
                return True
            if time.monotonic() >= deadline:
                return False
            # pyepics' own connect wait polls too; libca connects in its
            # own threads (preemptive context), so this only waits.
            time.sleep(0.05)

    def unwatch(self) -> None:
        """Close the kept channels."""
        self._on_change = None
        if not self._watched:
            return
        ca = _ca()
        with self._watch_lock:
            old, self._watched = self._watched, {}
        for chid in old.values():
            ca.clear_channel(chid)

    def _open_channels(self) -> None:
        ca = _ca()
        for suffix in (USER, TOKEN):
            name = self.prefix + suffix
            # pyepics reuses a channel it already has for the name (the one
            # `publish` left open), so the watch shares `publish`'s
            # channels, and `renew` renews both.
            chid = ca.create_channel(name, callback=self._connection)
            with self._watch_lock:
                self._watched[name] = chid

    def _connection(self, conn: bool = False, **_: Any) -> None:
        callback = self._on_change
        if callback is not None:
            callback(bool(conn))


def _ca() -> Any:
    """pyepics' ``ca`` module, with this thread attached to the context
    that the first publish made: the watch runs in a thread of its own,
    where libca would otherwise make a second, separate context."""
    import epics.ca
    epics.ca.use_initial_context()
    return epics.ca
