"""The proxy's ZMTP codec (sans-I/O): handshake, framing, commands, limits.

The peer side is written by hand (test/integration/zmtp_raw.py, from the
RFCs), not with the codec's own encoders, so that both do not share a
mistake.
"""

import struct
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from nicos_scriptserver.proxy import zmtp
from nicos_scriptserver.proxy.zmtp import ServerConnection, State, ZmtpError

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'integration'))
import zmtp_raw  # noqa: E402 (the hand-written peer)

LIMIT = 1024 * 1024
HELLO = zmtp_raw.greeting() + zmtp_raw.ready(b'REQ')


def server(limit=LIMIT):
    return ServerConnection(limit)


def messages_of(conn, data, chunk=None):
    """Feed *data* (in pieces of *chunk* bytes) and collect the messages."""
    out = []
    chunk = chunk or len(data) or 1
    for start in range(0, len(data), chunk):
        conn.receive(data[start:start + chunk])
        while (message := conn.next_message()) is not None:
            out.append(message)
    return out


def parse_output(data):
    """Our side's bytes: (greeting, [(flags, body), ...])."""
    peer = zmtp_raw.RawPeer.__new__(zmtp_raw.RawPeer)
    peer._buffer = data
    peer.sock = None
    greeting = peer.read(64)
    frames = []
    while peer._buffer:
        frames.append(peer.read_frame())
    return greeting, frames


def test_our_greeting_and_ready():
    conn = server()
    greeting = conn.take_output()
    assert len(greeting) == 64 and greeting[0] == 0xff and greeting[9] == 0x7f
    assert greeting[10:12] == bytes([3, 1])
    assert greeting[12:32] == b'NULL' + bytes(16) and greeting[32] == 0
    assert greeting[33:] == bytes(31)
    assert messages_of(conn, HELLO) == []
    flags, body = parse_output(greeting + conn.take_output())[1][0]
    assert flags == zmtp.COMMAND
    assert body == b'\x05READY\x0bSocket-Type\x00\x00\x00\x06ROUTER'
    assert conn.state is State.TRAFFIC and conn.peer_type == 'REQ'


@pytest.mark.parametrize('chunk', [1, 2, 3, 7, 11, 63, 64, 65])
def test_greeting_ready_and_messages_split_anywhere(chunk):
    request = [b'', b'getstatus', b'', b'[]']
    data = HELLO + zmtp_raw.message(request) * 3
    assert messages_of(server(), data, chunk) == [request] * 3


def test_every_split_point_of_a_stream():
    request = [b'', b'queue', b'', b'["x", "' + b'y' * 300 + b'"]']
    data = HELLO + zmtp_raw.message(request) + zmtp_raw.command(
        b'PING', b'\x00\x0aabc') + zmtp_raw.message([b'x'])
    for split in range(len(data) + 1):
        conn = server()
        assert messages_of(conn, data[:split]) + messages_of(conn, data[split:]) \
            == [request, [b'x']], split


def test_long_frames_and_long_form_for_short_sizes():
    conn = server()
    big = b'z' * 70000
    # RFC 37: long form SHOULD be used above 255; a peer that uses it for
    # small sizes too is still understood.
    small_long = bytes([zmtp.MORE | zmtp.LONG]) + struct.pack('>Q', 3) + b'abc'
    data = HELLO + small_long + zmtp_raw.frame(big)
    assert messages_of(conn, data, 4096) == [[b'abc', big]]


def test_replies_are_framed_for_the_peer():
    conn = server()
    messages_of(conn, HELLO)
    conn.take_output()
    conn.send_message([b'', b'ok', b'', b'x' * 300])
    peer = zmtp_raw.RawPeer.__new__(zmtp_raw.RawPeer)
    peer._buffer, peer.sock = conn.take_output(), None
    assert peer.read_message() == [b'', b'ok', b'', b'x' * 300]


def test_ping_gets_a_pong_with_its_context():
    conn = server()
    messages_of(conn, HELLO)
    conn.take_output()
    messages_of(conn, zmtp_raw.command(b'PING', b'\x00\x64' + b'c' * 20))
    flags, body = parse_output(bytes(64) + conn.take_output())[1][0]
    assert flags == zmtp.COMMAND and body == b'\x04PONG' + b'c' * 16
    # PONG and commands of later versions are ignored.
    assert messages_of(conn, zmtp_raw.command(b'PONG', b'c')
                       + zmtp_raw.command(b'SUBSCRIBE', b'')
                       + zmtp_raw.message([b'a'])) == [[b'a']]


def test_dealer_is_served_too():
    conn = server()
    data = zmtp_raw.greeting(3, 0) + zmtp_raw.ready(b'DEALER') + \
        zmtp_raw.message([b'getbanner', b'', b''])
    assert messages_of(conn, data) == [[b'getbanner', b'', b'']]
    assert conn.peer_type == 'DEALER'


def refusal(data, limit=LIMIT):
    """Feed *data*; the ZmtpError text and what was sent with it."""
    conn = server(limit)
    conn.take_output()
    with pytest.raises(ZmtpError) as info:
        messages_of(conn, data)
    assert conn.state is State.CLOSED and conn.buffered == 0
    return str(info.value), conn.take_output()


def error_reason(output):
    """The reason of the ERROR command in *output*, after a READY or not."""
    _, frames = parse_output(bytes(64) + output)
    flags, body = frames[-1]
    assert flags == zmtp.COMMAND and body[1:6] == b'ERROR', frames
    return body[7:7 + body[6]].decode()


@pytest.mark.parametrize('data, text', [
    (b'\x01\x00', 'ZMTP 1.0'),
    (b'\xff' + bytes(8) + b'\x7e', 'ZMTP 1.0'),
    (zmtp_raw.SIGNATURE + b'\x02', 'ZMTP 2.x'),
    (zmtp_raw.SIGNATURE + b'\x01\x00', 'ZMTP 1.x'),
])
def test_older_peers_are_closed_without_an_error_command(data, text):
    reason, output = refusal(data)
    assert text in reason and output == b''   # they could not read one


@pytest.mark.parametrize('data, text', [
    (zmtp_raw.greeting(mechanism=b'CURVE'), "mechanism 'CURVE' is not supported"),
    (zmtp_raw.greeting(mechanism=b'PLAIN'), "mechanism 'PLAIN'"),
    (zmtp_raw.greeting() + zmtp_raw.ready(b'PUB'), "socket type 'PUB'"),
    (zmtp_raw.greeting() + zmtp_raw.ready(b'ROUTER'), "socket type 'ROUTER'"),
    (zmtp_raw.greeting() + zmtp_raw.command(b'READY', b''), "socket type ''"),
    (zmtp_raw.greeting() + zmtp_raw.command(b'READY', b'\x0bSocket-Type\x00'),
     'malformed metadata'),
    (zmtp_raw.greeting() + zmtp_raw.command(b'HELLO'), 'expected READY'),
    (zmtp_raw.greeting() + zmtp_raw.message([b'early']), 'a message before READY'),
    (HELLO + b'\x08\x00', 'reserved flag bits'),
    (HELLO + b'\x05\x00', 'MORE flag'),
    (HELLO + b'\x04\x00', 'malformed command frame'),
    (HELLO + zmtp_raw.frame(b'\x05RE4DY', command=True), 'malformed command name'),
    (HELLO + zmtp_raw.frame(b'a', more=True) + zmtp_raw.command(b'PING', b'\0\0'),
     'a command inside a multipart message'),
    (HELLO + zmtp_raw.command(b'PING', b'\x00'), 'PING without its TTL'),
    (HELLO + zmtp_raw.ready(b'REQ'), 'READY after the handshake'),
    (HELLO + b'\x06' + struct.pack('>Q', 2 ** 40), 'command of 1099511627776 bytes'),
])
def test_bad_input_is_refused_with_an_error_command(data, text):
    reason, output = refusal(data)
    assert text in reason
    assert error_reason(output) == reason


def test_the_peers_error_closes_without_an_answer():
    reason, output = refusal(zmtp_raw.greeting() + zmtp_raw.command(
        b'ERROR', b'\x07go away'))
    assert reason == 'the peer sent ERROR: go away'
    assert parse_output(bytes(64) + output)[1][-1][1][1:6] == b'READY'


def test_a_frame_over_the_limit_is_refused_by_its_header():
    # The attack of issue #14: frames of 1 MiB, each saying more follow.
    # The header of the frame that would cross the limit is enough.
    conn = server(limit=3 * 1024 * 1024)
    messages_of(conn, HELLO)
    conn.take_output()
    header = bytes([zmtp.MORE | zmtp.LONG]) + struct.pack('>Q', 1024 * 1024)
    for _ in range(2):
        assert messages_of(conn, header + b'x' * (1024 * 1024)) == []
    assert 2 * 1024 * 1024 < conn.buffered < 2 * 1024 * 1024 + 1024
    with pytest.raises(ZmtpError, match='larger than the limit'):
        messages_of(conn, header)
    assert conn.buffered == 0 and error_reason(conn.take_output())


def test_many_empty_frames_count_against_the_limit():
    conn = server(limit=64 * 1024)
    messages_of(conn, HELLO)
    with pytest.raises(ZmtpError, match='larger than the limit'):
        messages_of(conn, zmtp_raw.frame(b'', more=True) * 2000)


def test_the_limit_is_per_message():
    conn = server(limit=2048)
    request = [b'x' * 1000]
    assert messages_of(conn, HELLO + zmtp_raw.message(request) * 50) == [request] * 50
    assert conn.buffered == 0


def test_the_buffer_of_a_large_message_is_let_go():
    conn = server()
    messages_of(conn, HELLO + zmtp_raw.message([b'x' * 500000]))
    assert conn.buffered == 0 and len(conn._buffer) == 0


frames = st.lists(st.binary(max_size=600), min_size=1, max_size=6)


@settings(max_examples=200, deadline=None)
@given(frames)
def test_encode_then_decode_gives_the_message_back(message):
    conn = server()
    assert messages_of(conn, HELLO + zmtp.encode_message(message)) == [message]


@settings(max_examples=200, deadline=None)
@given(st.lists(frames, min_size=1, max_size=5), st.data())
def test_any_chunking_of_a_valid_stream_gives_the_same_messages(messages, data):
    stream = HELLO + b''.join(
        zmtp_raw.message(m) + (zmtp_raw.command(b'PING', b'\0\0') if i % 2 else b'')
        for i, m in enumerate(messages))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=12)))
    conn, got, last = server(), [], 0
    for cut in cuts + [len(stream)]:
        got += messages_of(conn, stream[last:cut])
        last = cut
    assert got == messages
    assert conn.buffered == 0


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_any_bytes_after_the_handshake_parse_or_are_refused(junk):
    conn = server(limit=4096)
    try:
        messages_of(conn, HELLO + junk)
    except ZmtpError:
        assert conn.state is State.CLOSED
    assert conn.buffered <= len(junk) + 4096
