"""The event socket's codec parts (sans-I/O): the ZMTP PUB side,
subscriptions, event messages; and the daemon's classic event frames."""

import json
import pickle
import struct
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st
from nicos.protocols.daemon.classic import LENGTH, STX, event2code

from nicos_scriptserver.proxy import zmtp, zmtpwire
from nicos_scriptserver.proxy.classic import EventReader, LinkError, \
    decode_event
from nicos_scriptserver.proxy.pubsub import Subscriptions, event_message
from nicos_scriptserver.proxy.zmtp import ServerConnection, ZmtpError

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'integration'))
import zmtp_raw  # noqa: E402 (the hand-written peer)

SUB_HELLO = zmtp_raw.greeting() + zmtp_raw.ready(b'SUB')


def pub(limit=4096):
    return ServerConnection(limit, zmtpwire.PUB)


def messages_of(conn, data):
    conn.receive(data)
    out = []
    while (message := conn.next_message()) is not None:
        out.append(message)
    return out


# -- ZMTP, the PUB side --------------------------------------------------------

def test_the_event_socket_says_pub_and_hands_on_both_forms_of_subscription():
    conn = pub()
    data = SUB_HELLO + zmtp_raw.command(b'SUBSCRIBE', b'ALL') \
        + zmtp_raw.command(b'CANCEL', b'A') + zmtp_raw.message([b'\x01AL'])
    assert messages_of(conn, data) == [[b'\x01ALL'], [b'\x00A'], [b'\x01AL']]
    output = conn.take_output()
    assert output[64:] == zmtp.encode_command(
        b'READY', zmtp.encode_metadata({b'Socket-Type': b'PUB'}))
    assert conn.peer_type == 'SUB'


def test_xsub_peers_are_served_and_others_refused():
    assert messages_of(pub(), zmtp_raw.greeting() + zmtp_raw.ready(b'XSUB')) == []
    for other in (b'REQ', b'DEALER', b'PUB', b'ROUTER'):
        conn = pub()
        with pytest.raises(ZmtpError, match=f"socket type '{other.decode()}' "
                           "cannot talk to PUB here; use SUB or XSUB"):
            messages_of(conn, zmtp_raw.greeting() + zmtp_raw.ready(other))


def test_the_request_socket_refuses_sub_peers_and_ignores_subscriptions():
    router = ServerConnection(4096)
    with pytest.raises(ZmtpError, match="socket type 'SUB'"):
        messages_of(router, SUB_HELLO)
    router = ServerConnection(4096)
    data = zmtp_raw.greeting() + zmtp_raw.ready(b'DEALER') \
        + zmtp_raw.command(b'SUBSCRIBE', b'ALL') + zmtp_raw.message([b'x'])
    assert messages_of(router, data) == [[b'x']]


def test_a_subscription_over_the_limit_is_refused_by_its_header():
    conn = pub(limit=4096)
    messages_of(conn, SUB_HELLO)
    with pytest.raises(ZmtpError, match='larger than the limit'):
        messages_of(conn, bytes([zmtp.LONG]) + struct.pack('>Q', 2 ** 40))
    assert conn.buffered == 0


# -- subscriptions -------------------------------------------------------------

@pytest.mark.parametrize('topic, wanted', [
    (b'', True), (b'A', True), (b'AL', True), (b'ALL', True),
    (b'ALLx', False), (b'B', False), (b'\x00' * 16, False), (b'all', False)])
def test_only_prefixes_of_all_get_what_the_proxy_publishes(topic, wanted):
    subscriptions = Subscriptions()
    subscriptions.feed(zmtpwire.subscription(True, topic))
    assert subscriptions.wanted is wanted


def test_subscriptions_count_as_in_zeromq():
    subscriptions = Subscriptions()
    for _ in range(2):
        subscriptions.feed([b'\x01ALL'])
    subscriptions.feed([b'\x00ALL'])
    assert subscriptions.wanted
    subscriptions.feed([b'\x00ALL'])
    assert not subscriptions.wanted
    subscriptions.feed([b'\x00ALL'])   # never subscribed: nothing happens
    subscriptions.feed([b'\x01A'])
    assert subscriptions.wanted


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(st.binary(max_size=40), min_size=0, max_size=3),
                max_size=200))
def test_any_messages_keep_at_most_four_topics(messages):
    subscriptions = Subscriptions()
    for message in messages:
        subscriptions.feed(message)
    assert set(subscriptions._counts) <= {b'', b'A', b'AL', b'ALL'}
    assert all(count > 0 for count in subscriptions._counts.values())


def test_events_are_framed_as_nicos_zeromq_daemon_sends_them():
    frames = zmtp_raw.RawPeer.__new__(zmtp_raw.RawPeer)
    frames._buffer, frames.sock = event_message(
        'status', (1, 42)) + event_message('message', ['x', 1.5, 20, 'y\n', None, b'7']), None
    assert frames.read_message() == [b'ALL', b'status', b'[1,42]']
    topic, name, payload = frames.read_message()
    assert json.loads(payload) == ['x', 1.5, 20, 'y\n', None, '7']


# -- the daemon's classic event frames ----------------------------------------

def classic_event(name, data, blobs=()):
    payload = pickle.dumps(data, 2)
    return (STX + event2code[name] + bytes([len(blobs)]) + LENGTH.pack(len(payload))
            + payload + b''.join(LENGTH.pack(len(b)) + b for b in blobs))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(['status', 'message', 'request', 'livedata']),
                          st.lists(st.integers(), max_size=5),
                          st.lists(st.binary(max_size=30), max_size=2)),
                max_size=6), st.data())
def test_events_survive_any_split_into_reads(events, data):
    stream = b''.join(classic_event(*event) for event in events)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    reader, got, last = EventReader(), [], 0
    for cut in cuts + [len(stream)]:
        got += reader.feed(stream[last:cut])
        last = cut
    assert [(name, decode_event(payload), blobs) for name, payload, blobs in got] \
        == [(name, value, list(blobs)) for name, value, blobs in events]


@pytest.mark.parametrize('data, text', [
    (b'\x06', 'invalid event start'),
    (STX + b'\xff\xff\x00' + LENGTH.pack(0), 'unknown event code'),
    (STX + event2code['status'] + b'\x00' + LENGTH.pack(2 ** 31), 'more than'),
    (STX + event2code['livedata'] + b'\x01' + LENGTH.pack(0) + LENGTH.pack(2 ** 31),
     'more than'),
])
def test_bad_event_frames_break_the_link(data, text):
    with pytest.raises(LinkError, match=text):
        EventReader(limit=1024).feed(data)


def test_an_event_that_is_not_plain_data_is_refused(tmp_path):
    marker = tmp_path / 'ran'

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), 'w'))
    with pytest.raises(ValueError, match='not plain data'):
        decode_event(pickle.dumps(Evil(), 2))
    assert not marker.exists()
