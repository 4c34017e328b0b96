"""Where the login name and secret come from: PVs, a prompt, a file, env.

Through the proxy the default is what an authorised GUI does: read the user
name and this start's token from the PVs. Scripts can pass the token in the
environment or a file instead; people can type it at a prompt.
"""

from __future__ import annotations

import contextlib
import getpass
import io
import os
import sys
import warnings
from typing import Iterator, Optional, Tuple

from nicos_scriptserver.clients.cli.errors import LoginFailed, UsageError

TOKEN_ENV = 'NICOS_SCRIPTSERVER_TOKEN'
PASSWORD_ENV = 'NICOS_SCRIPTSERVER_PASSWORD'
# Seconds to wait for a PV to connect and answer.
PV_TIMEOUT = 5.0


def configure_channel_access(pv_port: int) -> None:
    """Point pyepics at the local CA server unless the user already did.

    libca reads these variables once, when pyepics first initialises it,
    so this must run before the first `epics` call.
    """
    if 'EPICS_CA_ADDR_LIST' not in os.environ:
        os.environ['EPICS_CA_ADDR_LIST'] = f'127.0.0.1:{pv_port}'
        os.environ['EPICS_CA_AUTO_ADDR_LIST'] = 'NO'


@contextlib.contextmanager
def quiet_channel_access() -> Iterator[None]:
    """Silence libca and pyepics meanwhile.

    libca complains on stderr that it cannot start a "caRepeater" (pyepics
    ships none for Linux, and we need none: we only read two PVs once), and
    pyepics prints "cannot connect to ..." on stdout, which would spoil
    --json output. A failed read is reported by `read_pv` itself.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, 'wb') as devnull:
            os.dup2(devnull.fileno(), 2)
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def read_pv(name: str) -> str:
    """The PV's value as text; `LoginFailed` saying why if unreadable."""
    with quiet_channel_access():
        import epics

        value = epics.caget(name, as_string=True, timeout=PV_TIMEOUT,
                            connection_timeout=PV_TIMEOUT)
    if value is None:
        raise LoginFailed(
            f'cannot read {name}: not connected / no read access; '
            f'is the server running? are you allowed to read it?')
    return value


def read_secret_file(path: str) -> str:
    """The first line of *path* ('-' for standard input), without newline."""
    try:
        if path == '-':
            line = sys.stdin.readline()
        else:
            with open(path, encoding='utf-8') as stream:
                line = stream.readline()
    except OSError as err:
        raise UsageError(f'cannot read the token file {path}: '
                         f'{err.strerror}') from None
    return line.rstrip('\r\n')


def proxy_credentials(prefix: str, user: Optional[str], prompt: bool,
                      token_file: Optional[str]) -> Tuple[str, str]:
    """(user name, token) for the proxy login.

    The token comes from --token-file, --token-prompt, $NICOS_SCRIPTSERVER_TOKEN
    or the TOKEN PV, in that order; the name from --user or the USER PV.
    """
    if token_file is not None:
        token = read_secret_file(token_file)
    elif prompt:
        token = ask_secret('token', '--token-file or $' + TOKEN_ENV)
    else:
        token = os.environ.get(TOKEN_ENV) or read_pv(prefix + 'TOKEN')
    return user or read_pv(prefix + 'USER'), token


def daemon_password(user: str) -> str:
    """The password of *user* from $NICOS_SCRIPTSERVER_PASSWORD or a prompt."""
    return os.environ.get(PASSWORD_ENV) or ask_secret(
        f'password for {user}', '$' + PASSWORD_ENV)


def ask_secret(what: str, instead: str) -> str:
    """Ask for *what* at the terminal; `UsageError` naming *instead*
    (where else it may come from) if there is no terminal to ask at.

    Without a terminal getpass would read standard input with echo on
    (and a warning), or fail with EOFError when there is none.
    """
    with warnings.catch_warnings():
        warnings.simplefilter('error', getpass.GetPassWarning)
        try:
            return getpass.getpass(f'{what}: ')
        except (getpass.GetPassWarning, EOFError):
            raise UsageError(f'{what}: not given and no terminal to ask on; '
                             f'give it with {instead}') from None
