"""I/O errors injected into the queue database while a client changes the
queue (prints figures).

Run: .venv/bin/python bench/bench_io_faults.py [ROUNDS]   (default 20,
about a minute; FAULT_SEED=n for another sequence; needs gcc)

The daemon runs with test/integration/faults/diskfaults.c preloaded (see
test/integration/diskfaults.py). Each round a client submits, edits and
moves waiting jobs (the queue is held, nothing runs) as fast as it can;
a random 20-200 ms in, the queue database's writes and fsync start to fail
(EIO and ENOSPC in turn) for 100-500 ms, then the disk is back. Printed:
changes acknowledged and refused, the time from the disk coming back to
the next acknowledged change (p50/p99), and, after a kill -9 and a restart
of the daemon, changes lost (acknowledged but missing or different) and
refused changes found anyway. Target: zero of both.
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
sys.path.insert(0, str(HERE.parent))   # this checkout's package, not an installed one
sys.path.insert(0, str(HERE.parent / 'test'))
sys.path.insert(0, str(HERE.parent / 'test' / 'integration'))

from diskfaults import FaultyDisk, start_faulty_server  # noqa: E402
from _daemon_bench import pct  # noqa: E402

from nicos_scriptserver.clients.daemonclient import ServerError  # noqa: E402


class Writer:
    """A client changing the queue, and what it was told."""

    def __init__(self, client, rng: random.Random):
        self.client = client
        self.rng = rng
        self.order = []           # acknowledged waiting order
        self.sources = {}         # acknowledged source of each job
        self.refused_names = []
        self.told = Counter()     # (operation, 'acknowledged'/'refused')
        self.serial = 0

    def change(self) -> bool:
        """One random change; whether it was acknowledged."""
        self.serial += 1
        source = f'x = {self.serial}'
        operation = self.rng.choice(['submit', 'edit', 'move']) if self.order else 'submit'
        try:
            if operation == 'submit':
                name = f'job {self.serial}'
                try:
                    job, = self.client.call('ss_submit', {'source': source, 'name': name})
                except ServerError:
                    self.refused_names.append(name)
                    raise
                self.order.append(job['id'])
                self.sources[job['id']] = source
            elif operation == 'edit':
                job_id = self.rng.choice(self.order)
                self.client.call('ss_edit', job_id, {'source': source})
                self.sources[job_id] = source
            else:
                job_id = self.rng.choice(self.order)
                self.client.call('ss_move', job_id, 'top')
                self.order.remove(job_id)
                self.order.insert(0, job_id)
        except ServerError:
            self.told[operation, 'refused'] += 1
            return False
        self.told[operation, 'acknowledged'] += 1
        return True

    def changes_for(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.change()


def losses(writer: Writer, client) -> list:
    """What a restarted daemon has that differs from what *writer* was told."""
    queue = client.queue()['waiting']
    problems = []
    if [job['id'] for job in queue] != writer.order:
        problems.append(f'waiting order {[job["id"] for job in queue]} != '
                        f'acknowledged {writer.order}')
    for job_id, source in writer.sources.items():
        found = client.call('ss_job', job_id)['source']
        if found != source:
            problems.append(f'job {job_id}: source {found!r}, acknowledged {source!r}')
    names = {job['name'] for job in queue}
    problems += [f'refused {name!r} is there' for name in writer.refused_names
                 if name in names]
    return problems


def main(rounds: int) -> int:
    seed = int(os.environ.get('FAULT_SEED', time.time()))
    rng = random.Random(seed)
    disk = FaultyDisk()
    if disk.why_not:
        print(disk.why_not)
        return 2
    try:
        with tempfile.TemporaryDirectory() as tmp:
            running = start_faulty_server(Path(tmp) / 'data', disk)
            try:
                client = running.client('user')
                client.call('ss_hold')
                writer = Writer(client, rng)
                recovery = []
                for index in range(rounds):
                    writer.changes_for(rng.uniform(0.02, 0.2))
                    disk.fail(('eio', 'enospc')[index % 2])
                    writer.changes_for(rng.uniform(0.1, 0.5))
                    disk.heal()
                    back = time.monotonic()
                    while not writer.change():
                        pass
                    recovery.append(time.monotonic() - back)
                processes = running.processes
                os.kill(processes.procs['daemon'].pid, signal.SIGKILL)
                processes.procs['daemon'].wait(30)
                processes.start_daemon()
                lost = losses(writer, running.client('user'))
            finally:
                running.stop()
    finally:
        disk.remove()
    print(f'seed {seed}: {rounds} fault rounds (EIO and ENOSPC in turn)')
    for operation in ('submit', 'edit', 'move'):
        print(f'  {operation:6}: {writer.told[operation, "acknowledged"]:5} acknowledged, '
              f'{writer.told[operation, "refused"]:5} refused')
    print(f'recovery (disk back -> next change acknowledged): '
          f'p50 {pct(recovery, 50) * 1e3:.1f} ms, p99 {pct(recovery, 99) * 1e3:.1f} ms')
    print(f'after kill -9 and restart: {len(lost)} lost or refused-but-there '
          f'(target 0)')
    for problem in lost:
        print('  ' + problem)
    return 1 if lost else 0


if __name__ == '__main__':
    sys.exit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 20))
