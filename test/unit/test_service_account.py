"""Whom a service may switch to, and when the demo warns about root."""

import pwd
from pathlib import Path

import pytest

from nicos_scriptserver.supervisor.serve import root_warning
from nicos_scriptserver.supervisor.service import resolve_account


def test_only_root_may_switch():
    with pytest.raises(SystemExit, match='only root can switch'):
        resolve_account('nobody', euid=1000)


@pytest.mark.parametrize('user, group, message', [
    ('no-such-account-8', None, 'no such account'),
    ('root', None, 'that is root'),
    ('0', None, 'that is root'),
    ('nobody', 'no-such-group-8', 'no such group'),
    ('nobody', 'root', "root's group"),
])
def test_refuses_what_it_cannot_or_must_not_switch_to(user, group, message):
    with pytest.raises(SystemExit, match=message):
        resolve_account(user, group, euid=0)


def test_resolves_an_account_with_its_primary_group():
    entry = pwd.getpwnam('nobody')
    account = resolve_account('nobody', euid=0)
    assert (account.name, account.uid, account.gid) == (
        'nobody', entry.pw_uid, entry.pw_gid)
    assert resolve_account(str(entry.pw_uid), euid=0) == account


def test_demo_warns_only_when_jobs_would_run_as_root():
    secrets = Path('/data/etc/secrets.toml')
    warning = root_warning(0, None, secrets)
    assert str(secrets) in warning and '--service-user' in warning
    assert '\n' not in warning
    assert root_warning(0, 'nobody', secrets) is None
    assert root_warning(1000, None, secrets) is None
