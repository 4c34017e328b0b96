"""Child processes that do not outlive the process that started them.

Linux's parent-death signal: the kernel signals the child when the thread
that forked it ends, so a SIGKILLed daemon or supervisor leaves no dry
runs, jobs or services behind. Spawn from a thread that lives as long as
the child (the services' supervisor, a dry-run worker, the script thread).

`die_with_parent` arms the signal in a ``preexec_fn``. A ``preexec_fn``
makes `subprocess` fork the whole parent instead of using vfork: forking
the daemon (hundreds of MiB) takes tens of milliseconds, during which
none of its threads runs (the forking one holds the GIL), so a job
between two others waited that long. A child that is our own program
arms the signal itself instead (`parent_death_env`, `arm_from_env`).
"""

import ctypes
import os
import signal
from typing import Callable, Dict

_PR_SET_PDEATHSIG = 1
# Resolved here, in the parent: a forked child of a threaded process must
# not load libraries (the loader's lock may be held by another thread).
_prctl = ctypes.CDLL(None, use_errno=True).prctl

#: Set by `parent_death_env`: "PID SIGNAL" of the child's parent.
PARENT_DEATH_ENV = 'SCRIPTSERVER_PARENT_DEATH'


def _arm(parent: int, sig: int) -> None:
    _prctl(_PR_SET_PDEATHSIG, sig)
    if os.getppid() != parent:  # the parent died before the signal was armed
        os._exit(1)


def die_with_parent(sig: int = signal.SIGTERM) -> Callable[[], None]:
    """A ``preexec_fn`` that makes the child get *sig* when we die."""
    parent = os.getpid()
    return lambda: _arm(parent, sig)


def parent_death_env(sig: int = signal.SIGTERM) -> Dict[str, str]:
    """Environment variables for a child that calls `arm_from_env`: it
    gets *sig* when we die, and no ``preexec_fn`` is needed."""
    return {PARENT_DEATH_ENV: f'{os.getpid()} {int(sig)}'}


def arm_from_env() -> None:
    """In a child given `parent_death_env`: get its signal when the parent
    dies; exit at once if it has died already. Its own children do not
    inherit the setting."""
    value = os.environ.pop(PARENT_DEATH_ENV, None)
    if value is not None:
        parent, sig = value.split()
        _arm(int(parent), int(sig))
