"""The proxy's side of NICOS's classic protocol: its tables (the same as
NICOS's, without NICOS), framing replies."""

import pickle

import pytest
from hypothesis import given, strategies as st

from nicos.protocols.daemon import DAEMON_EVENTS, SIM_STATES, classic as nicos
from nicos.protocols.daemon.classic import ACK, LENGTH, NAK, STX
from nicos.utils.loggers import ACTION

from nicos_scriptserver.wire import protocol
from nicos_scriptserver.proxy import classic
from nicos_scriptserver.proxy.classic import LinkError, ReplyReader, \
    decode_reply, encode_request


def test_the_tables_are_nicos_tables_with_ours_registered():
    protocol.register()
    assert (classic.ENQ, classic.ACK, classic.NAK, classic.STX) \
        == (nicos.ENQ, ACK, NAK, STX)
    assert classic.LENGTH.format == LENGTH.format
    assert classic.COMMAND_CODES == nicos.command2code
    assert classic.EVENT_NAMES == nicos.code2event
    assert classic.ALL_EVENTS == set(DAEMON_EVENTS)
    assert (classic.SIM_PENDING, classic.ACTION) == (SIM_STATES['pending'], ACTION)


def frame(ok, payload):
    if ok and payload is None:
        return ACK
    data = pickle.dumps(payload, 2)
    return (STX if ok else NAK) + LENGTH.pack(len(data)) + data


replies = st.lists(st.tuples(st.booleans(), st.one_of(
    st.none(), st.text(), st.integers(),
    st.dictionaries(st.text(max_size=5), st.lists(st.integers(), max_size=5)))),
    max_size=8)


@given(replies, st.lists(st.integers(1, 50), min_size=1))
def test_replies_survive_any_split_into_reads(sent, cuts):
    stream = b''.join(frame(ok, payload) for ok, payload in sent)
    reader, got, pos, i = ReplyReader(), [], 0, 0
    while pos < len(stream):
        size = cuts[i % len(cuts)]
        got += reader.feed(stream[pos:pos + size])
        pos, i = pos + size, i + 1
    decoded = [decode_reply(ok, raw) for ok, raw in got]
    expected = [(ok, None if ok and payload is None else payload)
                for ok, payload in sent]
    assert decoded == expected


def test_garbage_from_the_daemon_is_a_link_error():
    with pytest.raises(LinkError, match='invalid reply start'):
        ReplyReader().feed(b'\x00garbage')


def test_requests_use_the_registered_command_codes():
    request = encode_request('ss_queue', [])
    assert request[:3] == b'\x05\x70\x02'
    assert pickle.loads(request[7:]) == []
    with pytest.raises(LinkError, match='not a daemon command'):
        encode_request('no_such_command', [])


class Payload:
    """Unpickling this would create *path*."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return open, (self.path, 'w')


def test_a_reply_that_is_not_plain_data_runs_nothing_and_is_refused(tmp_path):
    marker = tmp_path / 'ran'
    raw = pickle.dumps({'status': Payload(marker)}, 2)
    ok, text = decode_reply(True, raw)
    assert not ok and text.endswith('io.open is not plain data')
    assert not marker.exists()
