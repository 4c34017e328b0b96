"""One `call(command, *args)` for both ways of reaching the script server.

Through the proxy (ZeroMQ/JSON, token login) or straight to the daemon
(classic transport, NICOS account). Both raise `RequestRefused` with the
server's text, so the subcommands need not know which one they use.
"""

from __future__ import annotations

import os
import socket
from typing import Any, Callable, Tuple

from nicos_scriptserver.clients.cli.errors import CannotConnect, LoginFailed, \
    RequestRefused

# Seconds to wait for a TCP connection or a reply.
TIMEOUT = 10.0


def parse_address(text: str) -> Tuple[str, int]:
    """``HOST:PORT`` as a (host, port) pair; ValueError if malformed."""
    host, sep, port = text.rpartition(':')
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f'{text!r} is not HOST:PORT')
    return host, int(port)


def check_listening(host: str, port: int, what: str) -> None:
    """Raise `CannotConnect` unless something accepts TCP at the address.

    Checked before the credentials are read, so that a server that is not
    running is reported as such rather than as an unreadable token PV.

    A ZeroMQ socket connects lazily and would only time out on the first
    request; a plain TCP probe says at once that the server is not running.
    """
    try:
        socket.create_connection((host, port), timeout=TIMEOUT).close()
    except OSError as err:
        raise CannotConnect(
            f'cannot connect to the {what} at {host}:{port}: '
            f'{err.strerror or err}; is the script server running?') from None


class Connection:
    """A logged-in connection: `call` and `close`, whatever the transport."""

    def __init__(self, call: Callable[..., Any], error: type,
                 close: Callable[[], None]):
        self._call = call
        self._error = error
        self._close = close

    def call(self, command: str, *args: Any) -> Any:
        """Send *command*; its reply, or `RequestRefused` with the reason."""
        try:
            return self._call(command, *args)
        except self._error as err:
            raise RequestRefused(str(err)) from None

    def close(self) -> None:
        self._close()


def via_proxy(host: str, port: int, user: str, token: str) -> Connection:
    """Log in at the proxy with the user name and token of the PVs."""
    from nicos_scriptserver.clients.proxyclient import ProxyClient, ProxyError

    client = ProxyClient(host, port, timeout=TIMEOUT)
    try:
        client.login(user, token)
    except ProxyError as err:
        client.close()
        raise LoginFailed(f'login at the proxy {host}:{port} as {user!r} '
                          f'failed: {err}') from None

    def close() -> None:
        try:
            client.call('quit')
        except ProxyError:
            pass  # the proxy forgets idle sessions anyway
        client.close()

    return Connection(client.call, ProxyError, close)


def via_daemon(host: str, port: int, user: str, password: str) -> Connection:
    """Log in at the daemon with a NICOS account."""
    # NICOS reads its instrument configuration on import.
    os.environ.setdefault('INSTRUMENT', 'nicos_scriptserver.demo')
    from nicos_scriptserver.clients.daemonclient import ScriptServerClient, ServerError

    client = ScriptServerClient(keep_events=False)
    try:
        client.login(host, port, user, password)
    except ServerError as err:
        raise LoginFailed(f'login at the daemon {host}:{port} as {user!r} '
                          f'failed: {err}') from None
    return Connection(client.call, ServerError, client.disconnect)
