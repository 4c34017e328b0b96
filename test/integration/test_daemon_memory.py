"""The daemon's memory while many clients stay logged in."""

import psutil
import pytest

from nicos_scriptserver.instance.passwords import DEFAULT_LOG2_N, DEFAULT_R
from waiting import wait_until

pytestmark = pytest.mark.integration

#: What one login's password check (scrypt) allocates: 128 * r * n bytes.
SCRYPT_BYTES = 128 * DEFAULT_R * 2 ** DEFAULT_LOG2_N
LOGINS = 10
JOBS = 20


def test_logins_do_not_keep_the_memory_of_their_password_check(server):
    """Each connection checks its password on its own thread. glibc used to
    serve those 16 MiB from the thread's malloc arena once the first such
    buffer was freed, and the arena kept them: every watching client held
    on to 16 MiB of the daemon's memory. Now they go back at once."""
    daemon = psutil.Process(server.processes.procs['daemon'].pid)
    # The first check is where glibc raised its threshold (without the fix).
    server.client('guest')
    before = daemon.memory_info().rss
    for _ in range(LOGINS):
        server.client('guest')
    grown = daemon.memory_info().rss - before
    # Without the fix this grew by about one check per login (as many as
    # there are arenas); a connection's own threads and buffers are far less.
    assert grown < 2 * SCRYPT_BYTES, f'{grown / 2**20:.0f} MiB for {LOGINS} logins'


def test_event_connections_take_no_thread_each(server):
    """Events go out from one thread (`EventFanout`), not from a sender
    thread per client: 50 watching clients kept 50 more threads, whose
    turns at the interpreter lock delayed the last client's events."""
    daemon = psutil.Process(server.processes.procs['daemon'].pid)
    server.client('guest')
    before = daemon.num_threads()
    for _ in range(LOGINS):
        server.client('guest')
    # One handler thread per connection (NICOS's), none for its events.
    # The threads that set the event connections up end soon after, on a
    # busy machine not at once: *before* may still count the first one's.
    # (A sender thread per client would make it 2 * LOGINS for good.)
    wait_until(lambda: daemon.num_threads() - before <= LOGINS, timeout=30)
    assert daemon.num_threads() - before >= LOGINS - 1


#: Evaluated in the daemon: from now on, keep a weak reference to every
#: code object NICOS compiles from a job's script (one per block).
WATCH_BLOCKS = (
    "(lambda utils, builtins, weakref, sys: ("
    "setattr(sys, 'watched_blocks', []),"
    "setattr(utils, 'compile', lambda *args, **kwds: (lambda code: ("
    "sys.watched_blocks.append(weakref.ref(code)), code)[1])("
    "builtins.compile(*args, **kwds)))))("
    "__import__('nicos.services.daemon.utils', fromlist=['utils']),"
    "__import__('builtins'), __import__('weakref'), __import__('sys'))")
#: How many of the watched blocks there are and how many are still alive;
#: then NICOS compiles with the builtin again.
BLOCKS_ALIVE = (
    "(lambda utils, builtins, sys: ("
    "len(sys.watched_blocks), sum(ref() is not None for ref in sys.watched_blocks),"
    "setattr(utils, 'compile', builtins.compile))[:2])("
    "__import__('nicos.services.daemon.utils', fromlist=['utils']),"
    "__import__('builtins'), __import__('sys'))")


def test_the_code_of_finished_jobs_is_freed(server):
    """nicos-pyctl's trace function took a reference to the code object of
    every line it reported and never gave it back (PyFrame_GetCode returns
    a new reference since Python 3.9): each block of every job stayed in
    the daemon's memory for good, 4 MiB an hour in the soak."""
    admin, user = server.client('admin'), server.client('user')
    admin.call('eval', WATCH_BLOCKS, False)
    jobs = [user.call('ss_submit', {'source': f'x = {n}.5\nfor i in range(3):\n'
                                              f'    y = x * i\nprint(x)\n'})[0]
            for n in range(JOBS)]
    wait_until(lambda: user.call('ss_job', jobs[-1]['id'])['state'] == 'done', 120)
    compiled, alive = admin.call('eval', BLOCKS_ALIVE, False)
    assert compiled >= 3 * JOBS
    # The last job's blocks may still be referenced as the last request.
    assert alive <= 3, f'{alive} of {compiled} blocks of finished jobs are kept'
