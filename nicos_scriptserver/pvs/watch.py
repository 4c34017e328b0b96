"""Publish a new token whenever the external PV server has been away.

A PV server that restarts (crash, SIGKILL, reboot) comes back with empty
PVs. The proxy keeps no clear token to write again, so it *rotates*:
makes a new token, swaps the hash its logins are checked against, and
publishes the new token. Logged-in sessions are not touched; the old
token is refused from the swap on.

How a restart is noticed (see `Republisher`):

* libca's connection callback on channels kept open to both PVs says at
  once when the TCP circuit to the server breaks (a killed server's
  sockets are closed by the kernel; a vanished host is found by libca's
  echo timeout). A disconnect is the evidence that the values may be gone.
* Reconnecting is not left to those old channels: libca searches for a
  disconnected channel with a growing period (about 10 s here, up to
  EPICS_CA_MAX_SEARCH_PERIOD, 5 min by default) and the PV servers we
  know send no beacons that would cut it short. While away, every retry
  replaces the channels with new ones, which libca searches for at once.
* A periodic check of the channels' state also catches a disconnect whose
  callback was lost.

Nothing here imports EPICS: the channel work is `ExternalPublisher`'s
(`Channels` is its interface), so the logic is unit-tested with fakes.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Optional, Protocol

log = logging.getLogger('nicos_scriptserver.proxy')


class Channels(Protocol):
    """What `Republisher` needs from the CA side (`ExternalPublisher`)."""

    prefix: str

    def watch(self, on_change: Callable[[bool], None]) -> None:
        """Keep channels to the PVs open; call *on_change(connected)* from
        libca's thread whenever one of them connects or disconnects."""

    def renew(self) -> None:
        """Replace the kept channels with new ones (searched at once)."""

    def connected(self, timeout: float = 0.0) -> bool:
        """Whether all kept channels are connected (waiting *timeout*)."""

    def publish(self, user: str, token: str) -> None:
        """Write both PVs; raises when that fails."""

    def unwatch(self) -> None:
        """Close the kept channels."""


class Backoff:
    """Delays between retries: *first*, doubling, at most *maximum*."""

    def __init__(self, first: float = 0.5, maximum: float = 10.0):
        self.first = first
        self.maximum = maximum
        self._next = first

    def next(self) -> float:
        """The delay before the next retry (and grow the one after)."""
        delay = self._next
        self._next = min(self._next * 2, self.maximum)
        return delay

    def reset(self) -> None:
        self._next = self.first


class Republisher:
    """Watches the external PV server; rotates and republishes the token
    after every disconnect, retrying with backoff until it succeeds.

    *rotate* makes the new token, installs its hash where logins are
    checked, and returns the clear token, which lives only until it is
    written. It and *channels* are called from this object's thread only.
    """

    def __init__(self, channels: Channels, user: str,
                 rotate: Callable[[], str], check_interval: float = 5.0,
                 connect_timeout: float = 2.0,
                 backoff: Optional[Backoff] = None,
                 clock: Callable[[], float] = time.monotonic):
        self.channels = channels
        self.user = user
        self.rotate = rotate
        self.check_interval = check_interval
        self.connect_timeout = connect_timeout
        self.backoff = backoff or Backoff()
        self._clock = clock
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        # Disconnects seen (by callback or check) and the count that the
        # last successful publish covers: a disconnect during a publish
        # must lead to another one, so no single "lost" flag.
        self._disconnects = 0
        self._handled = 0
        self._lost_since: Optional[float] = None
        self._reported = False
        #: Successful rotations so far (for logs and tests).
        self.rotations = 0
        self._thread: Optional[threading.Thread] = None

    # -- any thread ---------------------------------------------------------

    def on_change(self, connected: bool) -> None:
        """libca's connection callback: only record and wake (no CA calls
        are allowed in a callback, and it must not block libca)."""
        if not connected:
            self._note_disconnect()
        self._wake.set()

    def _note_disconnect(self) -> None:
        with self._lock:
            self._disconnects += 1
            if self._lost_since is None:
                self._lost_since = self._clock()

    @property
    def pending(self) -> bool:
        """Whether a disconnect has not been answered by a publish yet."""
        with self._lock:
            return self._disconnects > self._handled

    # -- lifecycle ----------------------------------------------------------

    def start(self) -> None:
        """Open the watch channels and start the watching thread."""
        self.channels.watch(self.on_change)
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name='pv-republisher')
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self.channels.unwatch()

    # -- the watching thread ------------------------------------------------

    def _run(self) -> None:
        delay = self.check_interval
        while not self._stopping.is_set():
            self._wake.wait(delay)
            self._wake.clear()
            if self._stopping.is_set():
                return
            delay = self.step()

    def step(self) -> float:
        """One round: check, and republish if needed; returns how long to
        wait for the next round (unless woken)."""
        if not self.pending and not self.channels.connected():
            # A disconnect whose callback did not arrive (or not yet).
            self._note_disconnect()
        if not self.pending:
            return self.check_interval
        if not self._reported:
            self._reported = True
            log.warning('lost the connection to the PV server of %sTOKEN; '
                        'a new token is published when it is back',
                        self.channels.prefix)
        try:
            done = self._republish()
        except Exception:   # noqa: B902 - never let the thread die
            log.exception('publishing a new token failed; retrying')
            done = False
        if done:
            self._reported = False
            self.backoff.reset()
            return self.check_interval
        return self.backoff.next()

    def _republish(self) -> bool:
        prefix = self.channels.prefix
        if not self.channels.connected():
            self.channels.renew()
            if not self.channels.connected(self.connect_timeout):
                log.debug('the PV server of %sTOKEN is not back yet',
                         prefix)
                return False
        # Counted only now that the channels are connected: the callbacks
        # of the outage (one per channel) came before, so this publish
        # answers all of them; a disconnect from here on asks for another.
        with self._lock:
            covers = self._disconnects
        # Rotate only once the server answers, so a long outage does not
        # swap hashes for nothing; swap before the publish, so a client
        # that reads the new token can log in with it at once.
        token = self.rotate()
        try:
            self.channels.publish(self.user, token)
        except Exception as err:   # noqa: B902 - PublishError, CA errors
            log.warning('the PV server of %sTOKEN is back, but publishing a '
                        'new token failed: %s', prefix, err)
            return False
        finally:
            del token   # the clear token is not kept beyond the write
        with self._lock:
            self._handled = max(self._handled, covers)
            away = self._clock() - (self._lost_since or self._clock())
            if self._handled >= self._disconnects:
                self._lost_since = None
        self.rotations += 1
        log.info('the PV server of %sTOKEN was away (%.1f s); published a '
                 'new token (rotation %d): the previous one is refused from '
                 'now on, logged-in clients stay', prefix, away,
                 self.rotations)
        return True
