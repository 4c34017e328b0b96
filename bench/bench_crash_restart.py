"""SIGKILL the daemon many times in a row during queue edits (prints figures).

Run: .venv/bin/python bench/bench_crash_restart.py [ROUNDS]   (default 100,
about 8 minutes; CRASH_SEED=n for another sequence)

Each round is test/integration/crashloop.py's: a long job runs, a client
edits the waiting jobs as fast as it can, the daemon is killed at a random
moment (0-400 ms in), restarted, and the waiting list, the interrupted job
and the history are checked against what the client was told. Also the
restart time (kill to first served request). Target: zero losses.
"""

import os
import random
import signal
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / 'test'))
sys.path.insert(0, str(HERE.parent / 'test' / 'integration'))

from conftest import start_server  # noqa: E402
from crashloop import crash_round  # noqa: E402
from _daemon_bench import pct  # noqa: E402


def main(rounds: int) -> int:
    seed = int(os.environ.get('CRASH_SEED', time.time()))
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory() as tmp:
        running = start_server(Path(tmp) / 'data')
        processes = running.processes
        restarts = []

        def kill():
            os.kill(processes.procs['daemon'].pid, signal.SIGKILL)

        def restart():
            start = time.monotonic()
            processes.procs['daemon'].wait(30)
            processes.start_daemon()
            client = running.client('user')
            restarts.append(time.monotonic() - start)
            return client

        client = running.client('user')
        lost, acked, in_flight = [], 0, {}
        try:
            for number in range(1, rounds + 1):
                result, client = crash_round(client, kill, restart, rng)
                acked += result.ops_acknowledged
                in_flight[result.in_flight] = in_flight.get(result.in_flight, 0) + 1
                lost += [f'round {number}: {problem}' for problem in result.lost]
                if number % 10 == 0:
                    print(f'  {number} rounds, {len(lost)} losses', flush=True)
        finally:
            running.stop()
    print(f'seed {seed}')
    print(f'rounds survived: {rounds}; acknowledged changes: {acked}; '
          f'losses or duplicates: {len(lost)} (target 0)')
    print('request in flight at the kill: ' + ', '.join(
        f'{name or "none"} {count}' for name, count in sorted(
            in_flight.items(), key=lambda item: -item[1])))
    print(f'restart to first served request: p50 {pct(restarts, 50):.1f} s, '
          f'max {max(restarts):.1f} s')
    for problem in lost:
        print(problem)
    return 1 if lost else 0


if __name__ == '__main__':
    sys.exit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 100))
