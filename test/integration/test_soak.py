"""A short soak (about a minute) of a queue of short jobs with random edits.

The 30-minute run with figures is bench/bench_soak.py; this one checks, in
CI, that nothing accumulates per job: file descriptors and threads of every
process are back to where they started once the queue is empty, memory
does not climb after the warm-up, and every job ran to its end.
"""

import random
from pathlib import Path

import psutil
import pytest

from soak import PROCESSES, run_soak
from soakplot import write_plot
from test_proxy import connect, credentials
from waiting import wait_until

pytestmark = pytest.mark.integration

SECONDS, INTERVAL = 60.0, 3.0
ARTIFACTS = Path(__file__).resolve().parents[2] / 'test-artifacts' / 'soak'


def job_processes(daemon_pid):
    """The daemon's descendants but the dry-run fork server itself: job and
    dry-run processes, which must all have ended once the queue is idle.
    (The server's forks share its command line, so only the daemon's own
    child of that name is the server.)"""
    try:
        left = []
        for child in psutil.Process(daemon_pid).children():
            if 'dryrunforkserver' not in ' '.join(child.cmdline()):
                left.append(child)
            left += child.children(recursive=True)
        return [p for p in left if p.status() != psutil.STATUS_ZOMBIE]
    except psutil.NoSuchProcess:
        return ['a process ended while looked at: look again']


def test_a_minute_of_short_jobs_and_edits_leaks_nothing(server_factory):
    running = server_factory(proxy=True)
    user, token = credentials(running)
    viewer = connect(running)
    viewer.login(user, token)
    pids = {name: running.processes.procs[name].pid for name in PROCESSES}
    client = running.client('user')
    result = run_soak(client, pids, running.instance.datadir, viewer,
                      SECONDS, INTERVAL, random.Random(20261130))
    viewer.close()

    assert result.failures == []
    # How many jobs run depends on the machine's load (dry runs go first).
    assert sum(result.submitted.values()) >= 15, result.submitted
    assert result.outcomes['done'] >= 15, result.outcomes
    assert set(result.outcomes) == {'done'}, result.outcomes
    assert sum(result.edits.values()) >= 20, result.edits
    assert result.proxy_polls >= SECONDS / 2
    first, last = result.samples[0].values, result.samples[-1].values
    # Idle at both ends: whatever a job opened must be closed again. (The
    # daemon keeps 4 more open after its first job, a socket and pollers
    # made once; a leak of one per job would be ~100.)
    for name in PROCESSES:
        assert last[f'{name}.fds'] <= first[f'{name}.fds'] + 8, (name, first, last)
        assert last[f'{name}.threads'] <= first[f'{name}.threads'] + 3, (name, first, last)
    warm = result.samples[len(result.samples) // 3].values
    assert last['daemon.rss'] - warm['daemon.rss'] < 40, (warm, last)
    assert last['proxy.rss'] - warm['proxy.rss'] < 20, (warm, last)
    # The dry-run fork server stays for the next dry run; nothing else may.
    wait_until(lambda: not job_processes(pids['daemon']), timeout=60)

    png = write_plot(result, ARTIFACTS / 'soak-ci.png', 'CI soak, 1 minute')
    assert png.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
