import pytest
from hypothesis import given, settings, strategies as st

from nicos_scriptserver.instance.passwords import BadHash, hash_secret, new_secret, verify_secret

# Low cost so property tests stay fast; the format carries the cost.
FAST = dict(log2_n=4, r=1, p=1)


def test_hash_verifies_only_the_same_secret():
    stored = hash_secret('correct horse')
    assert verify_secret('correct horse', stored)
    assert not verify_secret('correct horsf', stored)
    assert not verify_secret('', stored)


def test_hash_is_salted_and_does_not_contain_the_secret():
    first, second = hash_secret('s3cret', **FAST), hash_secret('s3cret', **FAST)
    assert first != second
    assert 's3cret' not in first
    assert first.startswith('scrypt$4$1$1$')


def test_default_cost_is_slow_enough():
    assert hash_secret('x').split('$')[1:4] == ['14', '8', '1']


@pytest.mark.parametrize('stored', ['', 'sha1$abc', 'scrypt$14$8$1$%%%$abc',
                                    'scrypt$x$8$1$AAAA$AAAA'])
def test_malformed_hash_is_reported(stored):
    with pytest.raises(BadHash):
        verify_secret('anything', stored)


secrets_text = st.text(st.characters(blacklist_characters='\0',
                                     blacklist_categories=('Cs',)),
                       max_size=40)


@settings(max_examples=30, deadline=None)
@given(secrets_text, st.text(max_size=40))
def test_verify_matches_equality(secret, other):
    stored = hash_secret(secret, **FAST)
    assert verify_secret(secret, stored)
    assert verify_secret(other, stored) == (other == secret)


def test_trailing_nul_characters_do_not_pass_for_the_password():
    # scrypt's HMAC pads short keys with zero bytes: without the refusal
    # 'abc\0' would verify against the hash of 'abc'
    stored = hash_secret('abc', **FAST)
    assert not verify_secret('abc\0', stored)
    assert not verify_secret('abc\0\0', stored)
    with pytest.raises(ValueError, match='NUL'):
        hash_secret('abc\0', **FAST)


def test_a_lone_surrogate_never_verifies_and_is_refused_as_a_secret():
    # JSON decodes "\ud800" to a str that UTF-8 cannot encode; a login
    # that sends one is a wrong password, not an exception in the checker.
    stored = hash_secret('abc', **FAST)
    assert not verify_secret('\ud800', stored)
    assert not verify_secret('abc\udfff', stored)
    with pytest.raises(ValueError, match='UTF-8'):
        hash_secret('\ud800', **FAST)


def test_new_secrets_are_unique_and_long():
    secrets = {new_secret() for _ in range(100)}
    assert len(secrets) == 100
    assert all(len(s) >= 32 for s in secrets)
