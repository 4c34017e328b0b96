"""The access-security text and the value checks of the credential PVs."""

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nicos_scriptserver.pvs.acf import (TOKEN_ASG, USER_ASG, AccessRules,
                                        check_name, render_acf)
from nicos_scriptserver.pvs.values import MAX_LENGTH, check_value


def _asg(text, name):
    """The body of ``ASG(name) { ... }`` in *text*."""
    match = re.search(r'ASG\(' + name + r'\) \{\n(.*?)^\}\n', text,
                      re.S | re.M)
    assert match, text
    return match.group(1)


def test_token_is_read_by_readers_and_written_by_writers():
    text = render_acf(AccessRules(('alice', 'bob'), ('server',)))
    assert 'UAG(tokenreaders) { "alice", "bob" }' in text
    assert 'UAG(writers) { "server" }' in text
    assert 'HAG' not in text
    token = _asg(text, TOKEN_ASG)
    assert 'RULE(1, READ) { UAG(tokenreaders) }' in token
    assert 'RULE(1, WRITE) { UAG(writers) }' in token
    # The user name is public: a READ rule without conditions.
    user = _asg(text, USER_ASG)
    assert re.search(r'RULE\(1, READ\)\n', user)
    assert 'RULE(1, WRITE) { UAG(writers) }' in user


def test_default_group_grants_nothing():
    text = render_acf(AccessRules(('alice',), ('server',)))
    assert re.search(r'^ASG\(DEFAULT\)\n', text, re.M)
    assert not re.search(r'ASG\(DEFAULT\) *\{', text)


def test_hosts_restrict_the_readers_further():
    text = render_acf(AccessRules(('alice',), ('server',),
                                  token_reader_hosts=('ws1', 'ws2.local')))
    assert 'HAG(tokenhosts) { "ws1", "ws2.local" }' in text
    # One rule with both groups: a reader must match user AND host.
    assert 'RULE(1, READ) { UAG(tokenreaders) HAG(tokenhosts) }' in \
        _asg(text, TOKEN_ASG)


def test_private_user_pv_is_protected_like_the_token():
    text = render_acf(AccessRules(('alice',), ('server',), ('ws1',),
                                  user_pv_public=False))
    assert _asg(text, USER_ASG) == _asg(text, TOKEN_ASG)


def test_without_readers_only_writers_reach_the_token():
    text = render_acf(AccessRules((), ('server',)))
    assert 'tokenreaders' not in text
    assert 'READ' not in _asg(text, TOKEN_ASG)


def test_duplicates_are_dropped():
    text = render_acf(AccessRules(('a', 'b', 'a'), ('w', 'w')))
    assert 'UAG(tokenreaders) { "a", "b" }' in text
    assert 'UAG(writers) { "w" }' in text


def test_a_writer_is_required():
    with pytest.raises(ValueError, match='writer'):
        render_acf(AccessRules(('alice',), ()))


@pytest.mark.parametrize('name', [
    '', ' ', 'al ice', 'a"b', '"', 'a\nb', 'a\\b', 'a}', 'x{', 'a,b',
    '# x', 'UAG(x)', '$(HOME)', 'a\tb', 'a\x00', 'é', 'x' * 65,
])
@pytest.mark.parametrize('role', ['reader', 'host', 'writer'])
def test_unsafe_names_are_refused(name, role):
    rules = {
        'reader': AccessRules((name,), ('w',)),
        'host': AccessRules(('r',), ('w',), (name,)),
        'writer': AccessRules(('r',), (name,)),
    }[role]
    with pytest.raises(ValueError, match='access-security file'):
        render_acf(rules)


def test_a_bare_string_is_not_split_into_names():
    with pytest.raises(ValueError, match='sequence'):
        render_acf(AccessRules('alice', ('w',)))


def test_check_name_accepts_usual_names():
    for name in ('spec', 'ibex_user', 'NDXLARMOR', 'host-1.isis.rl.ac.uk',
                 'a@b', 'x' * 64):
        assert check_name(name) == name


_PLACEHOLDER = 'placeholder'


@settings(max_examples=300, deadline=None)
@given(name=st.text(max_size=70), role=st.sampled_from(['reader', 'host',
                                                        'writer']))
def test_any_name_is_confined_to_its_quoted_list_or_refused(name, role):
    def rules(n):
        return {
            'reader': AccessRules(('r', n), ('w',)),
            'host': AccessRules(('r',), ('w',), ('h', n)),
            'writer': AccessRules(('r',), ('w', n)),
        }[role]

    try:
        text = render_acf(rules(name))
    except ValueError:
        return
    assert name and '"' not in name and '\n' not in name
    # The only difference to a harmless name is inside the quotes.
    reference = render_acf(rules(_PLACEHOLDER))
    assert f', "{_PLACEHOLDER}" }}' in reference
    if name == {'reader': 'r', 'host': 'h', 'writer': 'w'}[role]:
        # A duplicate of the other name is dropped from the list.
        assert text == reference.replace(f', "{_PLACEHOLDER}"', '')
    else:
        assert text == reference.replace(f'"{_PLACEHOLDER}"', f'"{name}"')


def test_values_fit_a_ca_string():
    assert check_value('x' * MAX_LENGTH) == 'x' * MAX_LENGTH
    assert check_value('') == ''
    with pytest.raises(ValueError, match='at most 39'):
        check_value('x' * 40, 'token')
    for bad in ('é', 'a\nb', b'abc', None):
        with pytest.raises(ValueError):
            check_value(bad)
