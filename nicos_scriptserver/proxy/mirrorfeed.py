"""The mirror's own daemon link, on the serving loop (I/O edge of `mirror`).

One daemon link, logged in as the viewers' NICOS account (the writers'
if there are no viewers), with the events the mirror needs and those the
event socket publishes unmasked. Each event is decoded as plain data
(`plainpickle`), applied to the mirror, then published. Its command
connection carries only the seeds: ``getstatus`` whenever the mirror
wants one (after a reconnect, a doubt, a seed that disagreed) and
``getmessages`` when it has no messages. A seed that disagrees is followed
by the next one at once, then after 2 ms doubling up to 0.5 s while they
keep disagreeing, so that a daemon whose state changes without events
costs the daemon little; clients are answered by the daemon meanwhile.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Optional, Tuple

from nicos_scriptserver.proxy.classic import LinkError, decode_event
from nicos_scriptserver.proxy.daemonlink import (DaemonLink, Reopening,
                                                  open_later)
from nicos_scriptserver.proxy.logquota import LogQuota
from nicos_scriptserver.proxy.loop import EventLoop
from nicos_scriptserver.proxy.mirror import MESSAGES_KEPT, MIRROR_EVENTS, \
    Mark, Mirror

log = logging.getLogger('nicos_scriptserver.proxy')

#: What proxy clients get on the event socket: what the mirror follows,
#: and prompts, watchdog and sample-environment notices. Not: ``cache``
#: (every value of every device), data sets and live data (plots; live
#: data carries blobs), and events the daemon sends to one client only.
PUBLISHED_EVENTS = MIRROR_EVENTS | frozenset({
    'prompt', 'promptdone', 'watchdog', 'plugplay', 'debugging'})
# After a seed that disagreed, the next waits this long, doubling.
FIRST_RETRY, LAST_RETRY = 0.002, 0.5
# After a seed that events overtook while the state changed, the next
# waits at most this long: clients get the mirror soon after a burst.
CHURN_RETRY = 0.02


class MirrorFeed:
    """Keeps `mirror` up to date over a link of its own."""

    def __init__(self, opener: Callable[[], DaemonLink], loop: EventLoop,
                 reopening: Reopening,
                 publish: Callable[[str, Any], None]):
        self._opener = opener
        self.loop = loop
        self._reopening = reopening
        self._stopping = reopening.stopping
        self._publish = publish
        self.mirror = Mirror()
        self.link: Optional[DaemonLink] = None
        # The seed on its way: ('status' | 'messages', its mark).
        self._pending: Optional[Tuple[str, Mark]] = None
        self._retry = 0.0
        self._retry_timer = False
        self._warnings = LogQuota(log)

    # -- the link -----------------------------------------------------------

    def start(self) -> None:
        """Open the link in the background (again after each break)."""
        self._open_later(0.0)

    def _open_later(self, delay: float) -> None:
        open_later(self._opener, delay, self.loop, self._reopening,
                   self._attach, lambda err: self._warnings.warning('mirror link: %s', err),
                   'proxy mirror link opener')

    def _attach(self, link: DaemonLink) -> None:
        link.attach(self.loop, lambda: self._reply_ready(link),
                    lambda: self._events_ready(link),
                    lambda err: self._broken(link, err))
        self.link = link
        log.info('mirror link logged into the daemon as %r', link.login)
        self.mirror.reset()
        self._pending, self._retry = None, 0.0
        self._seed()

    def _broken(self, link: DaemonLink, err: Exception) -> None:
        if link is not self.link:
            return
        log.warning('mirror link to the daemon broke: %s', err)
        link.close()
        self.link = None
        # Events may be lost from here on: answer nothing until reseeded.
        self.mirror.reset()
        self._pending = None
        if not self._stopping.is_set():
            self._open_later(0.2)

    def close(self) -> None:
        if self.link is not None:
            self.link.close()
            self.link = None

    # -- events -------------------------------------------------------------

    def _events_ready(self, link: DaemonLink) -> None:
        if link is not self.link:
            return
        try:
            events = link.read_events()
        except LinkError as err:
            self._broken(link, err)
            return
        for name, payload, _blobs in events:
            try:
                data = decode_event(payload)
            except ValueError as err:
                # Nothing of it is used; what it changed must be asked for.
                self._warnings.warning('mirror link: %s event: %s', name, err)
                self.mirror.doubt()
                continue
            self.mirror.apply(name, data)
            # Events of before the mask was set are not passed on.
            if name in PUBLISHED_EVENTS:
                self._publish(name, data)
        self._seed()

    # -- seeds --------------------------------------------------------------

    def doubt(self) -> None:
        """Something may have changed that the events did not bring yet
        (a client's request that changes the state): ask again."""
        self.mirror.doubt()
        self._retry = 0.0
        self._seed()

    def _seed(self) -> None:
        link = self.link
        if link is None or self._pending is not None or self._retry_timer:
            return
        mirror = self.mirror
        if mirror.wants_status:
            kind, command, args = 'status', 'getstatus', []
        elif mirror.wants_messages:
            kind, command, args = 'messages', 'getmessages', [str(MESSAGES_KEPT)]
        else:
            return
        mark = mirror.mark()
        try:
            link.send(command, args)
        except LinkError as err:
            self._broken(link, err)
            return
        self._pending = (kind, mark)

    def _reply_ready(self, link: DaemonLink) -> None:
        if link is not self.link:
            return
        try:
            reply = link.read_reply()
        except LinkError as err:
            self._broken(link, err)
            return
        if reply is None or self._pending is None:
            return
        (kind, mark), self._pending = self._pending, None
        ok, payload = reply
        try:
            if not ok:
                raise ValueError(str(payload))
            if kind == 'status':
                self._seeded(self.mirror.seed_status(mark, payload))
                return
            self.mirror.seed_messages(mark, payload, MESSAGES_KEPT)
        except ValueError as err:
            self._warnings.warning('mirror link: the %s seed failed: %s',
                                   kind, err)
            self._seeded(False)
            return
        self._seed()

    def _seeded(self, confirmed: bool) -> None:
        """After a status seed: go on at once, or wait a little longer
        each time seeds keep disagreeing. A seed that events overtook
        (or that a doubt made void) was compared with nothing: it says
        nothing about the mirror keeping up, so it does not lengthen the
        wait, and the next follows within `CHURN_RETRY`."""
        if confirmed or not self._retry:
            self._retry = 0.0 if confirmed else FIRST_RETRY / 2
            self._seed()
            return
        if not self.mirror.compared:
            self._seed_later(min(self._retry, CHURN_RETRY))
            return
        self._retry = min(self._retry * 2, LAST_RETRY)
        if self._retry == LAST_RETRY:
            # Something changes that no event tells: the daemon answers.
            self._warnings.warning(
                'the mirror keeps differing from the daemon in %s; getstatus '
                'goes to the daemon until they agree',
                ', '.join(self.mirror.differences))
        self._seed_later(self._retry)

    def _seed_later(self, delay: float) -> None:
        self._retry_timer = True

        def retry() -> None:
            self._retry_timer = False
            self._seed()
        self.loop.call_later(delay, retry)
