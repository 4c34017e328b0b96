"""`make_private` (issue #14): what an older run left readable, made private
at start, and nothing it should not touch."""

import os
from pathlib import Path

import pytest

from nicos_scriptserver.supervisor.service import make_private


def mode(path: Path) -> int:
    return path.lstat().st_mode & 0o7777


def test_takes_group_and_other_access_from_the_services_files(tmp_path):
    tmp_path.chmod(0o755)
    data = tmp_path / 'data'
    readable = ['queue.sqlite', 'queue.sqlite-wal', 'cache/2026/12-04/nicos-det',
                'log/daemon/daemon.log', 'log/nicos/nicos.log', 'log/proxy.log',
                'data/scan.dat', 'pid/daemon.pid']
    kept = {'etc/accounts.toml': 0o644, 'run/credentials.acf': 0o644}
    for name in readable + list(kept):
        path = data / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(name)
        path.chmod(kept.get(name, 0o664))
    for path in [data, *data.rglob('*')]:
        if path.is_dir():
            path.chmod(0o775)
    outside = tmp_path / 'outside'
    outside.write_text('not the server\'s')
    outside.chmod(0o644)
    (data / 'cache' / 'lastday').symlink_to(outside)
    (data / 'log' / 'elsewhere').symlink_to(tmp_path)

    make_private(data)

    assert mode(data) == 0o700
    for name in readable:
        assert mode(data / name) == 0o600, name
    for sub in ('cache', 'cache/2026', 'cache/2026/12-04', 'log', 'log/daemon',
                'data', 'pid'):
        assert mode(data / sub) == 0o700, sub
    for name, before in kept.items():
        assert mode(data / name) == before, name
    assert mode(data / 'etc') == mode(data / 'run') == 0o775
    # Never through a symbolic link.
    assert mode(outside) == 0o644 and mode(tmp_path) == 0o755


@pytest.mark.skipif(os.geteuid() != 0, reason='only root can give a file away')
def test_leaves_what_another_account_owns(tmp_path):
    data = tmp_path / 'data'
    (data / 'log' / 'daemon').mkdir(parents=True)
    theirs = data / 'log' / 'daemon' / 'theirs.log'
    theirs.write_text('')
    theirs.chmod(0o644)
    os.chown(theirs, 65534, 65534)
    make_private(data)
    assert mode(theirs) == 0o644
