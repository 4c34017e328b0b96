"""The proxy's sans-I/O protocol core: what may pass to the daemon."""

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nicos_scriptserver.proxy.protocol import (MAX_REQUEST_BYTES,
                                               PROTOCOL_VERSION, VIEWER,
                                               WRITER, ProtocolError, Request,
                                               banner, check_allowed,
                                               error_reply, ok_reply,
                                               parse_request)


def frames(command=b'getstatus', args=b'[]'):
    return [command, b'', args]


def test_ibex_requests_parse():
    assert parse_request(frames(b'queue', b'["my script", "print(1)"]')) == \
        Request('queue', ['my script', 'print(1)'])
    assert parse_request(frames(b'getmessages', b'["10"]')).args == ['10']
    assert parse_request(frames(b'getstatus', b'')).args == []


@pytest.mark.parametrize('bad, message', [
    ([b'getstatus', b''], '3 frames'),
    ([b'getstatus', b'', b'[]', b''], '3 frames'),
    ([b'getstatus', b'x', b'[]'], 'second frame'),
    ([b'get status', b'', b'[]'], 'not a command name'),
    ([b'\xff', b'', b'[]'], 'ASCII'),
    (frames(args=b'{"a": 1}'), 'JSON list'),
    (frames(args=b'[1, '), 'not valid JSON'),
    (frames(args=b'[NaN]'), 'not valid JSON'),
    (frames(args=b'["\xff"]'), 'not valid JSON'),
    (frames(args=b'[' * 40 + b']' * 40), 'nested deeper'),
])
def test_malformed_requests_get_clear_errors(bad, message):
    with pytest.raises(ProtocolError, match=message):
        parse_request(bad)


def test_pickle_objects_are_refused_at_any_depth():
    payload = json.dumps(['name', {'x': [{'__pickle__': 'cos\nsystem\n'}]}])
    with pytest.raises(ProtocolError, match='__pickle__'):
        parse_request(frames(b'queue', payload.encode()))


def test_huge_requests_are_refused():
    huge = json.dumps(['x' * MAX_REQUEST_BYTES]).encode()
    with pytest.raises(ProtocolError, match='larger than the limit'):
        parse_request(frames(b'queue', huge))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=20)


@given(st.lists(json_values, max_size=5))
def test_plain_json_arguments_pass_unchanged(args):
    payload = json.dumps(args).encode()
    if '__pickle__' in payload.decode():
        return
    assert parse_request(frames(b'queue', payload)).args == args


def test_viewers_only_read():
    check_allowed('getstatus', VIEWER)
    check_allowed('queue', WRITER)
    with pytest.raises(ProtocolError, match='read-only logins can only watch'):
        check_allowed('queue', VIEWER)
    for command in ('exec', 'eval', 'debug', 'transfer', 'no_such'):
        with pytest.raises(ProtocolError, match='not a command this proxy'):
            check_allowed(command, WRITER)


def test_banner_is_what_the_ibex_gui_accepts():
    sent = banner('S0VZ', {'daemon_version': '3.12.2', 'protocol_version': 24,
                           'nicos_root': '/secret/path'})
    assert sent['protocol_version'] == PROTOCOL_VERSION == 23
    assert sent['serializer'] == 'json'
    assert sent['rsakey'] == {'pkcs1_base64': 'S0VZ'}
    assert sent['nicos_root'] == ''   # the server's paths are not told
    json.dumps(sent)


def test_replies_are_three_frames_of_plain_json_or_text():
    status, empty, payload = ok_reply({'status': (-1, 3), 'requests': [],
                                       'eta': float('inf'), 'b': b'x'})
    assert (status, empty) == (b'ok', b'')
    assert json.loads(payload) == {'status': [-1, 3], 'requests': [],
                                   'eta': None, 'b': 'x'}
    assert error_reply('script already executing') == \
        [b'error', b'', b'script already executing']
    with pytest.raises(ProtocolError, match='cannot be sent as JSON'):
        ok_reply(object())
