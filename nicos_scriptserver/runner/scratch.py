"""Temporary folders of one process, all inside one private root folder,
so that a process that is killed (a daemon after ``kill -9``) leaves one
root behind, which the next process to make one removes.

A root is ``$TMPDIR/scriptserver-scratch-<random>``, 0700, and holds a
lock file that its process keeps locked (``flock``) while it lives. A
root whose lock nobody holds was left by a process that is gone. Only
roots owned by this account are looked at; the lock works across PID
namespaces and does not care about reused process ids. A root gets its
final name (and with it its lock) in one rename, so no sweeper ever sees
one half made.
"""

import atexit
import fcntl
import os
import shutil
import stat
import tempfile
import threading
from typing import List, Optional, Tuple

ROOT_PREFIX = 'scriptserver-scratch-'
LOCK_NAME = 'owner.lock'
_MAKING_PREFIX = 'scriptserver-scratch.making-'

_guard = threading.Lock()
_root: Optional[str] = None
# Open for the life of the process: closing it would release the lock.
_lock_fd: Optional[int] = None


def scratch_dir(prefix: str) -> str:
    """A new private folder named *prefix*… in this process's root, for
    files that must not outlive the process; remove it when done."""
    return tempfile.mkdtemp(prefix=prefix, dir=_process_root())


def _process_root() -> str:
    global _root, _lock_fd
    with _guard:
        if _root is None:
            remove_abandoned()
            _root, _lock_fd = _make_root()
            atexit.register(shutil.rmtree, _root, True)
        return _root


def _make_root() -> Tuple[str, int]:
    making = tempfile.mkdtemp(prefix=_MAKING_PREFIX)
    try:
        fd = os.open(os.path.join(making, LOCK_NAME),
                     os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                     | os.O_CLOEXEC, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        root = os.path.join(os.path.dirname(making), ROOT_PREFIX
                            + os.path.basename(making)[len(_MAKING_PREFIX):])
        os.rename(making, root)
    except BaseException:
        shutil.rmtree(making, ignore_errors=True)
        raise
    return root, fd


def remove_abandoned(tmpdir: Optional[str] = None) -> List[str]:
    """Remove the roots in *tmpdir* (default: the temporary directory)
    that belong to this account and whose process is gone; their paths."""
    tmpdir = tmpdir or tempfile.gettempdir()
    removed = []
    try:
        entries = list(os.scandir(tmpdir))
    except OSError:
        return removed
    for entry in entries:
        if entry.name.startswith(ROOT_PREFIX) and \
                _remove_if_abandoned(entry.path):
            removed.append(entry.path)
    return removed


def _remove_if_abandoned(root: str) -> bool:
    """Remove *root* if it is this account's and its owner is gone."""
    try:
        info = os.lstat(root)
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
            return False
        fd = os.open(os.path.join(root, LOCK_NAME),
                     os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:   # its process holds it: alive
        return False
    else:
        # Still holding the lock, so no other sweeper removes it too.
        shutil.rmtree(root, ignore_errors=True)
        return True
    finally:
        os.close(fd)
