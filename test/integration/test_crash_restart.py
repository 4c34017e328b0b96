"""SIGKILL the daemon at random moments of a running, changing queue.

A few rounds here (CI); bench/bench_crash_restart.py runs many. See
crashloop.py for what each round checks.
"""

import os
import random
import signal

import pytest

from crashloop import crash_round

pytestmark = pytest.mark.integration

ROUNDS = 6


def test_nothing_acknowledged_is_lost_when_the_daemon_is_killed(server_factory, tmp_path):
    running = server_factory(datadir=tmp_path / 'data')
    processes = running.processes
    rng = random.Random(os.environ.get('CRASH_SEED', 20261130))

    def kill():
        os.kill(processes.procs['daemon'].pid, signal.SIGKILL)

    def restart():
        processes.procs['daemon'].wait(30)
        processes.start_daemon()
        return running.client('user')

    client = running.client('user')
    results = []
    for _ in range(ROUNDS):
        result, client = crash_round(client, kill, restart, rng)
        results.append(result)
    lost = [problem for result in results for problem in result.lost]
    assert not lost, '\n'.join(lost)
    # The rounds really changed the queue and really cut requests short.
    assert sum(result.ops_acknowledged for result in results) > ROUNDS * 5
    assert any(result.in_flight for result in results)
