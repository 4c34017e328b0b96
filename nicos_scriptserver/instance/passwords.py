"""Salted, slow password and token hashing (scrypt), free of NICOS imports.

Hashes are self-describing strings ``scrypt$<log2 n>$<r>$<p>$<salt>$<digest>``
(salt and digest base64) so the cost can be raised later without breaking
stored hashes.
"""

import base64
import hashlib
import hmac
import secrets

SCHEME = 'scrypt'
# n=2**14, r=8: about 50 ms and 16 MiB per check on this class of machine,
# slow enough to make offline guessing expensive, fast enough for logins.
DEFAULT_LOG2_N = 14
DEFAULT_R = 8
DEFAULT_P = 1
SALT_BYTES = 16
DIGEST_BYTES = 32


class BadHash(ValueError):
    """A stored hash string is not in the expected format."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode('ascii')


def _utf8(secret: str) -> bytes:
    # JSON and pickles can carry lone surrogates, which have no UTF-8.
    try:
        return secret.encode('utf-8')
    except UnicodeEncodeError:
        raise ValueError('a secret must be text that UTF-8 can encode') from None


def _scrypt(secret: str, salt: bytes, log2_n: int, r: int, p: int) -> bytes:
    # scrypt keys HMAC with the secret, and HMAC pads short keys with zero
    # bytes: 'abc' and 'abc\0' would hash alike. No password or token
    # holds a NUL, so none is taken.
    if '\0' in secret:
        raise ValueError('a secret cannot contain a NUL character')
    return hashlib.scrypt(_utf8(secret), salt=salt, n=2 ** log2_n,
                          r=r, p=p, maxmem=128 * 1024 * 1024,
                          dklen=DIGEST_BYTES)


def hash_secret(secret: str, log2_n: int = DEFAULT_LOG2_N, r: int = DEFAULT_R,
                p: int = DEFAULT_P) -> str:
    """Return a salted scrypt hash string for *secret*."""
    salt = secrets.token_bytes(SALT_BYTES)
    digest = _scrypt(secret, salt, log2_n, r, p)
    return '$'.join([SCHEME, str(log2_n), str(r), str(p), _b64(salt),
                     _b64(digest)])


def verify_secret(secret: str, stored: str) -> bool:
    """Check *secret* against a hash made by `hash_secret` in constant time
    (a secret with a NUL character or a lone surrogate never matches)."""
    try:
        scheme, log2_n, r, p, salt, digest = stored.split('$')
        if scheme != SCHEME:
            raise ValueError(scheme)
        salt_bytes = base64.b64decode(salt, validate=True)
        expected = base64.b64decode(digest, validate=True)
        params = int(log2_n), int(r), int(p)
    except ValueError as err:
        raise BadHash(f'not a {SCHEME} hash string: {err}') from None
    try:
        computed = _scrypt(secret, salt_bytes, *params)
    except ValueError:  # a NUL or a lone surrogate: no secret holds one
        return False
    return hmac.compare_digest(computed, expected)


def new_secret(nbytes: int = 24) -> str:
    """Return a fresh random secret, URL-safe text, from the OS CSPRNG."""
    return secrets.token_urlsafe(nbytes)
