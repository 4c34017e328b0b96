import os

import pytest

from nicos_scriptserver.instance.accounts import (InsecureFile, accounts_path, check_private,
                                         ensure_accounts, read_accounts,
                                         read_secrets, secrets_path)
from nicos_scriptserver.instance.passwords import verify_secret


def test_ensure_creates_hashed_accounts_and_private_secrets(tmp_path):
    passwords = ensure_accounts(tmp_path)
    assert set(passwords) == {'guest', 'user', 'admin'}
    accounts = read_accounts(accounts_path(tmp_path))
    for user, password in passwords.items():
        stored, level = accounts[user]
        assert level == user
        assert verify_secret(password, stored)
        assert password not in accounts_path(tmp_path).read_text()
    assert secrets_path(tmp_path).stat().st_mode & 0o777 == 0o600


def test_second_run_keeps_the_passwords(tmp_path):
    first = ensure_accounts(tmp_path)
    mtime = accounts_path(tmp_path).stat().st_mtime_ns
    assert ensure_accounts(tmp_path) == first
    assert accounts_path(tmp_path).stat().st_mtime_ns == mtime


def test_secrets_readable_by_others_are_refused(tmp_path):
    ensure_accounts(tmp_path)
    os.chmod(secrets_path(tmp_path), 0o644)
    with pytest.raises(InsecureFile, match='chmod 600'):
        read_secrets(tmp_path)
    os.chmod(secrets_path(tmp_path), 0o600)
    check_private(secrets_path(tmp_path))


def test_account_without_level_is_reported(tmp_path):
    path = tmp_path / 'accounts.toml'
    path.write_text('[accounts.bob]\nhash = "scrypt$1$1$1$AA==$AA=="\n')
    with pytest.raises(ValueError, match="account 'bob' needs a hash and a level"):
        read_accounts(path)
