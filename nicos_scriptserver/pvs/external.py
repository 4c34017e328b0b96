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
from typing import Any

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
