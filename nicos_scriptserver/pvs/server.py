"""The token and user-name PVs, served from inside the current process.

A pcaspy `SimpleServer` runs in a background thread. pcaspy keeps its PVs
and drivers in process-wide tables and the CA server library is not
thread-safe, so:

* only one `CredentialPVs` may run per process;
* every call into pcaspy after `start` happens in the server thread:
  `publish` hands the values over and waits until that thread has
  applied them.

The server binds to 127.0.0.1 only; who may read or write which PV is
decided by EPICS access security (see `acf`). A CA write to ``TOKEN`` by
an allowed writer only changes the published value: the proxy checks
logins against its own hash, never against this PV.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from pathlib import Path
from typing import Optional, Tuple

from nicos_scriptserver.pvs.acf import (TOKEN_ASG, USER_ASG, AccessRules,
                                        render_acf)
from nicos_scriptserver.pvs.values import MAX_LENGTH, check_value

LOOPBACK = '127.0.0.1'
TOKEN = 'TOKEN'
USER = 'USER'
ACF_NAME = 'credentials.acf'

log = logging.getLogger(__name__)

# pcaspy's tables are global, so is this guard.
_running_lock = threading.Lock()
_running: Optional['CredentialPVs'] = None


def server_environment(port: int) -> dict:
    """The EPICS_CAS_* settings that keep a CA server on the loopback.

    Read by the CA server library when the server object is created.
    """
    return {
        # TCP and UDP listening sockets on 127.0.0.1 only.
        'EPICS_CAS_INTF_ADDR_LIST': LOOPBACK,
        'EPICS_CAS_SERVER_PORT': str(port),
        # No beacons: they would go to the broadcast addresses of every
        # interface, and even to 127.0.0.1 they need a caRepeater, without
        # which libcas prints an error every 15 s. Clients on loopback see
        # a restart anyway, as their TCP circuit breaks. An empty list
        # falls back to EPICS_CA_ADDR_LIST, so that is emptied too.
        'EPICS_CAS_BEACON_ADDR_LIST': '',
        'EPICS_CA_ADDR_LIST': '',
        'EPICS_CAS_AUTO_BEACON_ADDR_LIST': 'NO',
    }


class CredentialPVs:
    """Serve ``<prefix>TOKEN`` and ``<prefix>USER`` over Channel Access."""

    def __init__(self, prefix: str, port: int, rules: AccessRules,
                 workdir: Path):
        self.prefix = prefix
        self.port = port
        self.rules = rules
        self.workdir = Path(workdir)
        self._server = None
        self._driver = None
        self._thread: Optional[threading.Thread] = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._pending: Optional[Tuple[str, str]] = None
        self._applied = threading.Condition(self._lock)
        self._generation = 0
        self._done = 0
        self._failure: Optional[BaseException] = None

    @property
    def acf_path(self) -> Path:
        return self.workdir / ACF_NAME

    def start(self) -> None:
        """Write and load the ACF, create the PVs and start serving.

        Sets the EPICS_CAS_* variables of this process (see
        `server_environment`); they must be in place before the server
        object exists, and stay so for the life of the process.
        """
        global _running
        text = render_acf(self.rules)   # ValueError before anything starts
        with _running_lock:
            if _running is not None:
                raise RuntimeError('a CredentialPVs server was already '
                                   'started in this process (pcaspy allows '
                                   'only one)')
            _running = self
        try:
            self._start(text)
        except BaseException:
            with _running_lock:
                _running = None
            raise

    def _start(self, text: str) -> None:
        os.environ.update(server_environment(self.port))
        # pcaspy logs every value it sets (DEBUG) or a client writes
        # (INFO); that would put the token into the proxy's log.
        for name in ('pcaspy.Driver.setParam', 'pcaspy.SimplePV.writeValue'):
            logging.getLogger(name).setLevel(logging.WARNING)
        # Imported only now: pcaspy loads the CA library at import time,
        # and nothing else in this package needs it.
        from pcaspy import Driver, SimpleServer, cas

        self.workdir.mkdir(parents=True, exist_ok=True)
        _write_private(self.acf_path, text)
        # Not SimpleServer.initAccessSecurityFile: it ignores the status,
        # and serving without access security would publish the token to
        # everyone.
        status = cas.asInitFile(str(self.acf_path), '')
        if status != 0:
            raise RuntimeError(f'EPICS refused the access-security file '
                               f'{self.acf_path} (status {status})')
        # No cas.asCaStart(): it only serves INP links in an ACF (none
        # here) and would open a CA client context with a UDP socket on
        # 0.0.0.0.
        # The CA server would quietly take another TCP port if this one is
        # taken, and clients would then not find it (or find another).
        _check_port_free(self.port)
        server = SimpleServer()
        info = {'type': 'string', 'count': 1, 'value': ''}
        server.createPV(self.prefix, {
            TOKEN: dict(info, asg=TOKEN_ASG),
            USER: dict(info, asg=USER_ASG),
        })

        class _Driver(Driver):
            def write(self, reason, value):
                # Access security already refused clients that are not
                # writers; this only keeps the values well-formed.
                try:
                    check_value(value)
                except ValueError:
                    return False
                self.setParam(reason, value)
                return True

        self._server = server
        self._driver = _Driver()
        self._thread = threading.Thread(target=self._serve,
                                        name='credential-pvs', daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        try:
            while not self._stopping.is_set():
                self._server.process(0.1)
                self._apply_pending()
        except BaseException as err:   # noqa: B902 - reported to publish()
            log.exception('credential PV server failed')
            with self._lock:
                self._failure = err
                self._applied.notify_all()

    def _apply_pending(self) -> None:
        with self._lock:
            pending, generation = self._pending, self._generation
            self._pending = None
        if pending is None:
            return
        user, token = pending
        self._driver.setParam(USER, user)
        self._driver.setParam(TOKEN, token)
        self._driver.updatePVs()
        with self._lock:
            self._done = max(self._done, generation)
            self._applied.notify_all()

    def publish(self, user: str, token: str, timeout: float = 5.0) -> None:
        """Set both PVs; returns once CA clients can read the new values.

        `ValueError` if a value does not fit a CA string (at most
        MAX_LENGTH printable ASCII characters).
        """
        check_value(user, 'user name')
        check_value(token, 'token')
        if self._thread is None or not self._thread.is_alive():
            raise RuntimeError('the credential PV server is not running')
        with self._lock:
            self._generation += 1
            generation = self._generation
            self._pending = (user, token)
            if not self._applied.wait_for(
                    lambda: self._done >= generation or self._failure,
                    timeout):
                raise TimeoutError('the credential PV server did not take '
                                   'the new values in time')
            if self._failure is not None:
                raise RuntimeError('the credential PV server failed') \
                    from self._failure

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving; the process cannot start another server."""
        global _running
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
        # Dropping the server object closes its sockets; pcaspy's tables
        # still name the PVs, so `_running` stays set (see `start`).
        self._server = None


def _check_port_free(port: int) -> None:
    """`OSError` unless *port* on the loopback is free for TCP and UDP."""
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        with socket.socket(socket.AF_INET, kind) as sock:
            if kind == socket.SOCK_STREAM:
                # As libcas does for its listener: connections of a killed
                # server linger in TIME_WAIT for a minute and would fail a
                # plain bind, though nothing listens (they inherited
                # SO_REUSEADDR from libcas's listener, which Linux wants
                # on both sides). Another listener still fails it.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((LOOPBACK, port))
            except OSError as err:
                raise OSError(err.errno, f'port {port} on {LOOPBACK} is in '
                              f'use; the credential PVs need it for TCP '
                              f'and UDP') from err


def _write_private(path: Path, text: str) -> None:
    """Write *path* readable by its owner only (it names the readers)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    # O_CREAT leaves the mode of an existing file alone.
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, 'w') as fp:
        fp.write(text)


__all__ = ['CredentialPVs', 'LOOPBACK', 'MAX_LENGTH', 'TOKEN', 'USER',
           'server_environment']
