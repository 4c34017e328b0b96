"""Run one NICOS service (cache or daemon) of a script-server instance.

``python -m nicos_scriptserver.supervisor.service daemon`` is what ``nicos-daemon``
does, plus what NICOS leaves to a site's nicos.conf: absolute log and pid
directories inside the instance's data directory, a full and irreversible
switch to an unprivileged service account, and an explicit, opt-in way to
run as root inside throw-away containers (CI, tests).

The daemon runs users' job scripts as arbitrary Python, so it must not run
as the account that owns ``<data>/etc/secrets.toml`` (the clear passwords,
read by the proxy). Started as root with ``--user NAME`` (or with a user in
nicos.conf), the service prepares the data directory for NAME and then
drops real, effective and saved ids and the supplementary groups before
NICOS starts. NICOS's own ``setuser()`` only changes the *effective* ids,
from which a job could switch back to root; it is never reached here.
Without a user, NICOS refuses to run as root unless ``--allow-root`` (never
the default) lets the process keep running as root, which it logs.

Either way the service runs with umask 077, set before NICOS starts and
inherited by dry runs and black-box jobs, and at each start takes group
and other access from what its account owns in the data directory (an
older run may have left it readable): the queue database holds every job
script and the history, the cache and logs what jobs did.
"""

import argparse
import contextlib
import ctypes
import grp
import os
import pwd
import stat
import sys
from pathlib import Path
from typing import NamedTuple, Optional

from nicos_scriptserver.instance.config import INSTRUMENT, Instance

# Written by the cache and daemon; owned by the service account. Everything
# else (etc/ with the passwords, log/ with the proxy's and supervisor's
# files, run/ with the proxy's ACF) stays the starting user's.
SERVICE_DIRS = ('pid', 'cache', 'data', 'log/cache', 'log/daemon', 'log/nicos')
OWNER_DIRS = ('etc', 'log', 'run')
# SQLite in WAL mode creates its -wal and -shm files next to the database,
# so the daemon must be able to create files in the data directory itself.
QUEUE_FILES = ('queue.sqlite', 'queue.sqlite-wal', 'queue.sqlite-shm')
# Only the account itself: no consumer of these files reads them through
# the group, which in the split is the service account's and may be shared
# (nogroup); the starting user is root there and needs no permission bits.
SERVICE_UMASK = 0o077
_PR_SET_NO_NEW_PRIVS = 38
# glibc's mallopt(M_MMAP_THRESHOLD): allocations at least this large get a
# mapping of their own, which free() unmaps. 128 KiB is glibc's default;
# setting it explicitly is what stops glibc from raising it (see
# `return_large_buffers`).
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 128 * 1024


class Account(NamedTuple):
    """The unprivileged account a service switches to."""

    name: str
    uid: int
    gid: int
    home: str


def resolve_account(user: str, group: Optional[str] = None,
                    euid: Optional[int] = None) -> Account:
    """The account to switch to; `SystemExit` with the reason if we cannot."""
    euid = os.geteuid() if euid is None else euid
    if euid != 0:
        raise SystemExit(f'refusing --user {user}: only root can switch to '
                         f'another account (this process runs as uid {euid})')
    try:
        entry = pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
    except (KeyError, OverflowError):
        raise SystemExit(f'refusing --user {user}: there is no such account') from None
    if entry.pw_uid == 0:
        raise SystemExit(f'refusing --user {user}: that is root; name an '
                         'unprivileged account')
    gid = entry.pw_gid
    if group:
        try:
            gid = grp.getgrgid(int(group)).gr_gid if group.isdigit() \
                else grp.getgrnam(group).gr_gid
        except (KeyError, OverflowError):
            raise SystemExit(f'refusing --group {group}: there is no such group') from None
        if gid == 0:
            raise SystemExit(f'refusing --group {group}: that is root\'s group')
    return Account(entry.pw_name, entry.pw_uid, gid, entry.pw_dir)


def _chown_tree(path: Path, account: Account) -> None:
    """Give *path* and everything below it to *account*.

    Only when *path* is not already the account's (left by a run as another
    user), and through directory descriptors without following symbolic
    links, so nothing the account planted can redirect the chown.
    """
    if path.lstat().st_uid == account.uid:
        return
    for _, dirs, files, dirfd in os.fwalk(path, follow_symlinks=False):
        for name in dirs + files:
            os.chown(name, account.uid, account.gid, dir_fd=dirfd,
                     follow_symlinks=False)
    os.chown(path, account.uid, account.gid, follow_symlinks=False)


def prepare_datadir(datadir: Path, account: Account) -> None:
    """Let *account* write what cache and daemon write, and nothing else.

    The data directory keeps its owner, gets the account's group with write
    access and the sticky bit: the daemon can create its queue database
    files there, but cannot rename or delete what it does not own (etc/
    above all: otherwise it could swap in its own secrets and accounts
    files for the next start). Others may not even enter it. Directories of
    the starting user are created here first, so the account cannot create
    them in their place; log/ lets the account's group through to its own
    subdirectories, and etc/ to the account hashes (accounts.toml, mode
    0640 in its group), and no further.
    """
    me = os.geteuid()
    datadir.mkdir(parents=True, exist_ok=True)
    os.chown(datadir, -1, account.gid)
    os.chmod(datadir, 0o1770)
    for sub in OWNER_DIRS:
        path = datadir / sub
        path.mkdir(exist_ok=True)
        if path.lstat().st_uid != me or not stat.S_ISDIR(path.lstat().st_mode):
            raise SystemExit(f'{path} is not a directory owned by uid {me}; '
                             'remove it and start again')
    os.chown(datadir / 'log', -1, account.gid)
    os.chmod(datadir / 'log', 0o710)
    # The account reads the hashes whatever umask the starting user had
    # (systemd's UMask=0077 leaves etc/ and accounts.toml root's alone),
    # and nothing else of etc/: through the group, as log/.
    os.chown(datadir / 'etc', -1, account.gid)
    os.chmod(datadir / 'etc', 0o710)
    hashes = datadir / 'etc' / 'accounts.toml'
    if hashes.exists() and hashes.lstat().st_uid == me and \
            stat.S_ISREG(hashes.lstat().st_mode):
        os.chown(hashes, -1, account.gid, follow_symlinks=False)
        os.chmod(hashes, 0o640)
    # Files of the proxy and the supervisor (proxy.log, *.out) that a run
    # before the split may have left readable by others.
    for path in (datadir / 'log').iterdir():
        if path.is_file() and not path.is_symlink() and path.lstat().st_uid == me:
            path.chmod(0o600)
    for sub in SERVICE_DIRS:
        path = datadir / sub
        path.mkdir(parents=True, exist_ok=True)
        _chown_tree(path, account)
    for name in QUEUE_FILES:
        path = datadir / name
        if path.exists() and path.lstat().st_uid != account.uid:
            os.chown(path, account.uid, account.gid, follow_symlinks=False)


def make_private(datadir: Path) -> None:
    """Take group and other access from what this process's account owns
    of *datadir*: the queue database, the service directories with all in
    them, and (in the plain mode, where the account owns them)
    *datadir* itself and log/ with the files in it.

    Run as the service's own account, after `drop_privileges`: through
    whatever the account may have planted, it can only reach its own files.
    """
    me = os.geteuid()
    _make_private(str(datadir), None, me)
    log = datadir / 'log'
    _make_private(str(log), None, me)
    # In the split, log/ is the starting user's and the account may not list it.
    with contextlib.suppress(OSError):
        for entry in os.scandir(log):
            _make_private(entry.path, None, me)
    for name in QUEUE_FILES:
        _make_private(str(datadir / name), None, me)
    for sub in SERVICE_DIRS:
        top = str(datadir / sub)
        _make_private(top, None, me)
        # Not there yet at the first start of the plain mode.
        with contextlib.suppress(FileNotFoundError):
            for _, dirs, files, dirfd in os.fwalk(top, follow_symlinks=False):
                for name in dirs + files:
                    _make_private(name, dirfd, me)


def _make_private(path: str, dir_fd: Optional[int], me: int) -> None:
    """Clear the group and other bits of *path* if it is a file or
    directory of uid *me*; never through a symbolic link."""
    try:
        found = os.stat(path, dir_fd=dir_fd, follow_symlinks=False)
        if found.st_uid != me or not found.st_mode & 0o077 or not (
                stat.S_ISREG(found.st_mode) or stat.S_ISDIR(found.st_mode)):
            return
        # Changed through a descriptor of what was checked, so nothing
        # swapped in meanwhile gets the change.
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK
                     | os.O_NOCTTY, dir_fd=dir_fd)
    except OSError:  # gone, or not ours to open
        return
    try:
        now = os.fstat(fd)
        if (now.st_dev, now.st_ino) == (found.st_dev, found.st_ino):
            os.fchmod(fd, stat.S_IMODE(now.st_mode) & ~0o077)
    finally:
        os.close(fd)


def drop_privileges(account: Account) -> None:
    """Become *account* for good: real, effective and saved ids, groups."""
    os.initgroups(account.name, account.gid)
    os.setresgid(account.gid, account.gid, account.gid)
    os.setresuid(account.uid, account.uid, account.uid)
    try:
        os.setuid(0)
    except PermissionError:
        pass
    else:  # pragma: no cover - would be a kernel or libc surprise
        raise SystemExit('could not drop root privileges for good')
    # No set-uid program (su, sudo, ...) started by a job gains anything.
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    os.environ.update(HOME=account.home, USER=account.name,
                      LOGNAME=account.name)
    if not os.access(sys.executable, os.X_OK) or \
            not os.access(os.__file__, os.R_OK):
        raise SystemExit(f'{account.name} cannot run {sys.executable} or read '
                         f'{os.path.dirname(os.__file__)}: install Python where '
                         'the service account can read it')


def return_large_buffers() -> bool:
    """Make glibc give freed large buffers back to the system at once.

    Every login checks its password with scrypt (16 MiB, see
    `nicos_scriptserver.instance.passwords`) on the connection's handler
    thread. glibc maps a buffer that large on its own only until the first
    one is freed; then it raises its threshold to that size, so the next
    ones come from the thread's malloc arena, which keeps them after
    free(). Each of up to 8 arenas per core then held 16 MiB of zeros:
    50 watching clients took the daemon from 207 to 412 MiB. A fixed
    threshold turns that adjustment off. Call this before any thread
    starts. Returns whether the C library took the setting (False on a
    libc without glibc's `mallopt`).
    """
    mallopt = getattr(ctypes.CDLL(None), 'mallopt', None)
    return bool(mallopt and mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD))


def _prepare_config(instance: Instance, allow_root: bool) -> None:
    from nicos import config
    config.logging_path = str(instance.logdir)
    config.pid_path = str(instance.datadir / 'pid')
    # NICOS applies nicos.conf's umask when it runs as root: only stricter.
    config.umask = f'{SERVICE_UMASK | int(config.umask or "0", 8):03o}'
    if os.geteuid() == 0 and not config.user:
        if not allow_root:
            sys.exit('refusing to run as root: pass --user NAME (or name a '
                     'service user and group in nicos.conf), or pass '
                     '--allow-root in a container')
        config.user = 'root'
        config.group = grp.getgrgid(0).gr_name


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('service', choices=['cache', 'daemon'])
    parser.add_argument('--user', help='when started as root, switch to this '
                        'account for good before NICOS starts')
    parser.add_argument('--group', help='with --user: this group instead of '
                        'the account\'s primary group')
    parser.add_argument('--allow-root', action='store_true',
                        help='keep running as root (containers and CI only)')
    args = parser.parse_args(argv)
    if args.group and not args.user:
        parser.error('--group needs --user')
    return_large_buffers()

    os.environ.setdefault('INSTRUMENT', INSTRUMENT)
    instance = Instance.from_env()
    user, group = args.user, args.group
    if not user and os.geteuid() == 0:
        # A deployment's nicos.conf route: do the full switch NICOS would
        # only do halfway (effective ids).
        from nicos import config
        user, group = config.user, config.group
    if user:
        account = resolve_account(str(user), str(group) if group else None)
        prepare_datadir(instance.datadir, account)
        drop_privileges(account)
    os.umask(SERVICE_UMASK)
    for sub in ('log', 'pid'):
        (instance.datadir / sub).mkdir(parents=True, exist_ok=True)
    make_private(instance.datadir)
    _prepare_config(instance, args.allow_root)

    if args.service == 'cache':
        from nicos.core.sessions.simple import NoninteractiveSession
        return NoninteractiveSession.run('cache', 'Server', setupname='cache')
    from nicos.services.daemon.session import DaemonSession
    return DaemonSession.run('daemon', 'Daemon')


if __name__ == '__main__':
    sys.exit(main())
