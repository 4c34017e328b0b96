"""Re-validation of waiting jobs after a command file changed (prints figures).

Run: PYTHONPATH=$PWD .venv/bin/python bench/bench_revalidation.py [JOBS]

In-process, on a real queue file (SQLite, synchronous=FULL): JOBS (5,000)
waiting generated jobs of two calls each; one running job whose script
thread reports progress every millisecond, timed (the queue's lock and the
GIL are what re-validation could hold it up with). Then the command
catalog changes three times, each followed by `revalidate` as the daemon
runs it (from the catalog's watcher thread):

 a. a command's body changed: nothing to hold back, every job calls it
    (all get a fresh dry run: their estimates are dropped);
 b. a command removed: every job is held back;
 c. the command restored: every job is ready again.

Targets: each re-validation <= 0.5 s; the running job's longest progress
report during it <= 5 ms. Without the daemon's event delivery to clients.
"""

import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from nicos_scriptserver.app.revalidation import revalidate
from nicos_scriptserver.app.spec import parse_spec, parse_specs
from nicos_scriptserver.catalog import parse_source
from nicos_scriptserver.queue import JobQueue

SOURCE = '''
def set_ei(energy: float, wait_for_choppers: bool = True):
    """Sets the energy.

    Args:
        energy [meV] (0.5..100): incident energy.
    """

def measure(frames: int):
    """Counts.

    Args:
        frames (>= 1): frames.
    """
'''


def catalog(source):
    return {e['name']: e for e in
            parse_source(source, '/cmds/demo.py', 'demo.py').commands}


class Reporter(threading.Thread):
    """The running job's script thread: progress every millisecond."""

    def __init__(self, queue):
        super().__init__(daemon=True)
        self.queue = queue
        self.stop = threading.Event()
        self.samples = []

    def run(self):
        step = 0
        while not self.stop.is_set():
            started = time.perf_counter()
            self.queue.report_progress((step % 100) / 100, f'step {step}')
            self.samples.append(time.perf_counter() - started)
            step += 1
            time.sleep(0.001)

    def window(self):
        """The samples since the last call."""
        taken, self.samples = self.samples, []
        return taken


def p99(samples):
    return sorted(samples)[int(len(samples) * 0.99)]


def main(count: int) -> None:
    v1 = catalog(SOURCE)
    gone = {name: entry for name, entry in v1.items() if name != 'measure'}
    with tempfile.TemporaryDirectory() as folder, \
            JobQueue(Path(folder) / 'queue.db') as queue:
        queue.submit(parse_spec({'kind': 'aware', 'source': 'pass'}), 'bench')
        specs = [{'kind': 'generated', 'calls': [
            {'command': 'set_ei', 'args': {'energy': 1 + n % 90}},
            {'command': 'measure', 'args': {'frames': 10}}]}
            for n in range(count)]
        for start in range(0, count, 500):
            queue.submit(parse_specs(specs[start:start + 500], v1), 'bench')
        for job in queue.waiting():
            queue.set_estimate(job.id, {'state': 'ok', 'seconds': 1.0})
        queue.start_next()
        reporter = Reporter(queue)
        reporter.start()
        time.sleep(0.5)
        idle = reporter.window()
        print(f'bench_revalidation: {count} waiting generated jobs, one running '
              f'job reporting progress every ms')
        print(f'  progress report, idle: p50 {statistics.median(idle) * 1e3:.3f} '
              f'ms, p99 {p99(idle) * 1e3:.3f} ms, max {max(idle) * 1e3:.3f} ms '
              f'(n={len(idle)}; the max is this machine\'s noise)')
        ok = True
        for label, lookup, changed in [
                ('a. body of measure changed (all re-estimated)', v1, ['measure']),
                ('b. measure removed (all held back)', gone, ['measure']),
                ('c. measure restored (all ready again)', v1, ['measure'])]:
            reporter.window()
            started = time.perf_counter()
            touched = revalidate(queue, lookup, changed)
            took = time.perf_counter() - started
            during = reporter.window()
            worst = max(during) if during else 0.0
            met = took <= 0.5 and worst <= 0.005
            ok &= met
            print(f'  {label}: {took * 1e3:.0f} ms for {len(touched)} changed '
                  f'jobs; progress report during it: p50 '
                  f'{statistics.median(during) * 1e3:.3f} ms, p99 '
                  f'{p99(during) * 1e3:.3f} ms, max {worst * 1e3:.3f} ms '
                  f'(n={len(during)}): '
                  f'{"target met" if met else "TARGET MISSED"}')
        held = sum(job.held for job in queue.waiting())
        reporter.stop.set()
        reporter.join()
        print(f'  held back at the end: {held} (expected 0)')
        print('targets (<= 0.5 s, <= 5 ms):', 'met' if ok else 'MISSED')


if __name__ == '__main__':
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5000)
