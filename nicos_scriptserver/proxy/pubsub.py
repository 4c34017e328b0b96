"""The event socket's messages and its subscribers' subscriptions (sans-I/O).

NICOS's ZeroMQ daemon transport publishes each event as the frames
``[topic, event name, payload, *blobs]``, where the topic is ``ALL`` or
the id of the one client the event is for, and its clients subscribe to
``ALL``. The proxy publishes what the daemon sends to all its clients, as
plain JSON, under ``ALL`` only: an event the daemon sends to one client
(``showhelp``, ``clientexec``, ``simresult``) belongs to the daemon
connection whose command caused it, one of the proxy's own links, and no
client of the proxy has a daemon connection of its own to be named by.

ZeroMQ delivers by prefix: a subscription gets every message whose topic
starts with it. So a subscriber gets the events when one of its
subscriptions is a prefix of ``ALL`` (``""``, ``A``, ``AL``, ``ALL``);
any other subscription can never match and is not even kept, so that
a subscriber cannot grow the proxy's memory with subscriptions.
"""

from __future__ import annotations

import collections
from typing import Any, List

from nicos_scriptserver.proxy.protocol import encode_json
from nicos_scriptserver.proxy.zmtpwire import encode_message

#: The only topic the proxy publishes.
TOPIC = b'ALL'


class Subscriptions:
    """What one subscriber asked for, as far as it can match ``TOPIC``.

    Subscribing twice to a topic takes two cancels to undo, as in ZeroMQ.
    """

    def __init__(self):
        self._counts: collections.Counter = collections.Counter()

    def feed(self, message: List[bytes]) -> None:
        """One message of the subscriber. Subscriptions (ZMTP 3.0 form,
        `zmtpwire.subscription`; SUBSCRIBE and CANCEL commands come as these
        too) are counted; anything else is ignored, as ZeroMQ's PUB does."""
        if len(message) != 1 or not message[0] or message[0][0] > 1:
            return
        topic = message[0][1:]
        if not TOPIC.startswith(topic):
            return
        if message[0][0]:
            self._counts[topic] += 1
        elif self._counts[topic] > 1:
            self._counts[topic] -= 1
        else:
            self._counts.pop(topic, None)

    @property
    def wanted(self) -> bool:
        """Whether the subscriber gets what is published."""
        return bool(self._counts)


def event_message(name: str, data: Any) -> bytes:
    """An event as the wire carries it to every subscriber: ZMTP frames
    ``[ALL, name, JSON payload]`` (`ProtocolError` if the payload is not
    plain data)."""
    return encode_message([TOPIC, name.encode('ascii'), encode_json(data)])
