"""Child processes that do not outlive the process that started them.

Linux's parent-death signal: the kernel signals the child when the thread
that forked it ends, so a SIGKILLed daemon or supervisor leaves no dry
runs, jobs or services behind. Spawn from a thread that lives as long as
the child (the services' supervisor, a dry-run worker, the script thread).
"""

import ctypes
import os
import signal
from typing import Callable

_PR_SET_PDEATHSIG = 1
# Resolved here, in the parent: a forked child of a threaded process must
# not load libraries (the loader's lock may be held by another thread).
_prctl = ctypes.CDLL(None, use_errno=True).prctl


def die_with_parent(sig: int = signal.SIGTERM) -> Callable[[], None]:
    """A ``preexec_fn`` that makes the child get *sig* when we die."""
    parent = os.getpid()

    def arm() -> None:
        _prctl(_PR_SET_PDEATHSIG, sig)
        if os.getppid() != parent:  # we died before the signal was armed
            os._exit(1)
    return arm
