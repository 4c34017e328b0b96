"""SIGKILL the daemon or the proxy many times in a row during queue edits
(prints figures).

Run: .venv/bin/python bench/bench_crash_restart.py [ROUNDS]   (default 100,
about 10 minutes; CRASH_SEED=n for another sequence)

Each round is test/integration/crashloop.py's: a long job runs, a client
edits the waiting jobs as fast as it can, and at a random moment (0-400 ms
in) the daemon (three rounds in four; the client is at the daemon) or the
proxy (one in four; the client goes through it) is killed and restarted.
The waiting list, the job that ran and the history are checked against
what the client was told. Also the restart time (kill to the first request
served again). Target: zero losses.
"""

import os
import random
import signal
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / 'test'))
sys.path.insert(0, str(HERE.parent / 'test' / 'integration'))

from conftest import start_server  # noqa: E402
from crashloop import crash_round  # noqa: E402
from test_crash_restart import login_at_proxy  # noqa: E402
from waiting import wait_until  # noqa: E402
from _daemon_bench import pct  # noqa: E402

from nicos_scriptserver.clients.proxyclient import ProxyError  # noqa: E402


def main(rounds: int) -> int:
    seed = int(os.environ.get('CRASH_SEED', time.time()))
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory() as tmp:
        running = start_server(Path(tmp) / 'data', proxy=True)
        processes = running.processes
        restarts = {'daemon': [], 'proxy': []}
        clients = {'daemon': running.client('user'), 'proxy': login_at_proxy(running)}

        def killer(victim):
            return lambda: os.kill(processes.procs[victim].pid, signal.SIGKILL)

        def restarter(victim):
            def restart():
                start = time.monotonic()
                processes.procs[victim].wait(30)
                if victim == 'daemon':
                    processes.start_daemon()
                    client = running.client('user')
                else:
                    processes.start_proxy()
                    client = login_at_proxy(running)
                restarts[victim].append(time.monotonic() - start)
                return client
            return restart

        lost, acked, in_flight, done = [], Counter(), Counter(), Counter()
        try:
            for number in range(1, rounds + 1):
                victim = 'proxy' if rng.random() < 0.25 else 'daemon'
                if victim == 'proxy':
                    # After a daemon restart the proxy reopens its links
                    # with backoff; its session stays logged in.
                    wait_until(lambda: _serves(clients['proxy']), 30)
                result, clients[victim] = crash_round(
                    clients[victim], killer(victim), restarter(victim), rng,
                    interrupts=victim == 'daemon')
                done[victim] += 1
                acked[victim] += result.ops_acknowledged
                in_flight[result.in_flight] += 1
                lost += [f'round {number} ({victim}): {problem}'
                         for problem in result.lost]
                if number % 10 == 0:
                    print(f'  {number} rounds, {len(lost)} losses', flush=True)
        finally:
            running.stop()
    print(f'seed {seed}')
    for victim in ('daemon', 'proxy'):
        times = restarts[victim]
        print(f'{victim} killed: {done[victim]} rounds, {acked[victim]} acknowledged '
              f'changes' + (f'; restart to first served request p50 '
                            f'{pct(times, 50):.1f} s, max {max(times):.1f} s'
                            if times else ''))
    print(f'losses or duplicates: {len(lost)} (target 0)')
    print('request in flight at the kill: ' + ', '.join(
        f'{name or "none"} {count}' for name, count in in_flight.most_common()))
    for problem in lost:
        print(problem)
    return 1 if lost else 0


def _serves(client) -> bool:
    try:
        client.call('getstatus')
        return True
    except ProxyError:
        return False


if __name__ == '__main__':
    sys.exit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 100))
