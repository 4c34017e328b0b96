"""The frames of the bridge between a bridged job's child and the daemon."""

import json
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nicos_scriptserver.runner.bridgewire import (MAX_FRAME, FrameReader,
                                                  WireError, decode,
                                                  device_ref, encode, ref_name)

# JSON values as the child and the daemon exchange them.
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**63)
    | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20)
MESSAGES = st.dictionaries(st.text(), JSON, max_size=5)


@given(st.lists(MESSAGES, max_size=5), st.data())
def test_any_split_of_the_stream_gives_the_messages_back(messages, data):
    stream = b''.join(encode(message) for message in messages)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=6)))
    reader = FrameReader()
    got = []
    for start, end in zip([0] + cuts, cuts + [len(stream)]):
        got.extend(reader.feed(stream[start:end]))
    assert got == messages


def test_a_frame_is_a_length_and_json():
    frame = encode({'id': 1, 'call': 'move', 'args': ['sample_x', 3]})
    size, = struct.unpack('>I', frame[:4])
    assert size == len(frame) - 4
    assert json.loads(frame[4:]) == {'id': 1, 'call': 'move',
                                     'args': ['sample_x', 3]}


def frame(body: bytes) -> bytes:
    return struct.pack('>I', len(body)) + body


@pytest.mark.parametrize('body, problem', [
    (b'{"id": 1, "call": "move"', 'not a JSON frame'),
    (b'\xff\xfe{}', 'not a JSON frame'),
    (b'[1, 2]', 'must hold a JSON object, not list'),
    (b'"text"', 'must hold a JSON object, not str'),
    (b'[' * 100000 + b']' * 100000, 'not a JSON frame'),
    (b'{"n": 1' + b'0' * 5000 + b'}', 'not a JSON frame'),
])
def test_what_is_not_a_json_object_is_refused(body, problem):
    reader = FrameReader()
    with pytest.raises(WireError, match=problem):
        reader.feed(frame(body))
    # out of step for good: later frames are refused too
    with pytest.raises(WireError):
        reader.feed(encode({'id': 2}))


def test_a_too_long_frame_is_refused_from_its_header_alone():
    reader = FrameReader()
    with pytest.raises(WireError, match='longer than'):
        reader.feed(struct.pack('>I', MAX_FRAME + 1))
    with pytest.raises(WireError, match='longer than'):
        encode({'text': 'x' * MAX_FRAME})


def test_a_frame_of_exactly_the_limit_is_read():
    text = 'x' * (MAX_FRAME - len('{"t":""}'))
    assert FrameReader().feed(encode({'t': text})) == [{'t': text}]


def test_device_references():
    assert ref_name(device_ref('sample_x')) == 'sample_x'
    assert decode(json.dumps(device_ref('det')).encode()) == {'$device': 'det'}
    for value in ({'$device': 3}, {'$device': 'a', 'b': 1}, '$device', None,
                  ['$device', 'x']):
        assert ref_name(value) is None
