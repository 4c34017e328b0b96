"""Soak: a queue of short jobs with random edits for a long time (prints
figures and writes a plot; not a test).

Run: .venv/bin/python bench/bench_soak.py [MINUTES]   (default 30)

The driver is test/integration/soak.py (the CI test runs it for a minute):
scripts with progress and pause points, generated jobs calling the demo's
commands and black-box scripts, kept six deep, with random edits, a viewer
polling the proxy once a second, dry runs under the default 'hold' policy.
Every 10 s the RSS, file descriptors and threads of cache, daemon and
proxy are sampled with the size of queue.sqlite and of the logs.

Figures: jobs and edits, how the jobs ended, each quantity at the start,
after the warm-up (the first fifth) and at the end, the growth from the
warm-up on per hour (least squares), and the plot
bench/results/soak-<date>.png (plus the samples as CSV next to it).
Target: no growth of descriptors or threads, memory flat after the
warm-up, disk growing only by the finished jobs' history.
"""

import csv
import os
import random
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / 'test'))
sys.path.insert(0, str(HERE.parent / 'test' / 'integration'))

from conftest import start_server  # noqa: E402
from soak import PER_PROCESS, PROCESSES, run_soak  # noqa: E402
from soakplot import write_plot  # noqa: E402
from test_proxy import connect, credentials  # noqa: E402

INTERVAL = 10.0
RESULTS = HERE / 'results'


def slope_per_hour(times, values) -> float:
    """Least-squares slope of *values* over *times* (s), per hour."""
    n = len(times)
    mean_t, mean_v = sum(times) / n, sum(values) / n
    var = sum((t - mean_t) ** 2 for t in times)
    if var == 0:
        return 0.0
    return sum((t - mean_t) * (v - mean_v) for t, v in zip(times, values)) / var * 3600


def main(minutes: float) -> int:
    seed = int(os.environ.get('SOAK_SEED', time.time()))
    with tempfile.TemporaryDirectory() as tmp:
        running = start_server(Path(tmp) / 'data', proxy=True)
        try:
            user, token = credentials(running)
            viewer = connect(running)
            viewer.login(user, token)
            pids = {name: running.processes.procs[name].pid for name in PROCESSES}
            print(f'soak of {minutes:g} min, seed {seed} (SOAK_SEED), sampling every '
                  f'{INTERVAL:g} s', flush=True)
            result = run_soak(running.client('user'), pids, running.instance.datadir,
                              viewer, minutes * 60, INTERVAL, random.Random(seed))
            viewer.close()
        finally:
            running.stop()

    print(f'jobs submitted: {sum(result.submitted.values())} '
          f'({", ".join(f"{k} {v}" for k, v in sorted(result.submitted.items()))})')
    print(f'edits acknowledged: {sum(result.edits.values())} '
          f'({", ".join(f"{k} {v}" for k, v in sorted(result.edits.items()))}); '
          f'refused as the job had started: {sum(result.raced.values())}; '
          f'refused as changing nothing: {sum(result.noop.values())}')
    print(f'jobs finished: {dict(result.outcomes)}; skipped jobs removed at the end: '
          f'{result.skipped_removed}; proxy polls: {result.proxy_polls}')
    for failure in result.failures:
        print(f'  FAILED {failure}')

    warm = max(1, len(result.samples) // 5)
    times = [s.elapsed for s in result.samples[warm:]]
    keys = [f'{p}.{q}' for p in PROCESSES for q in PER_PROCESS] + ['sqlite_kib', 'wal_kib', 'logs_kib']
    print(f'{"quantity":<16}{"start":>10}{"warm":>10}{"end":>10}{"growth/h after warm-up":>26}')
    for key in keys:
        series = result.series(key)
        print(f'{key:<16}{series[0]:>10.1f}{series[warm]:>10.1f}{series[-1]:>10.1f}'
              f'{slope_per_hour(times, series[warm:]):>26.2f}')
    done = sum(result.outcomes.values())
    if done:
        grown = result.series('sqlite_kib')[-1] - result.series('sqlite_kib')[0]
        print(f'queue.sqlite per finished job: {grown / done:.2f} KiB')

    RESULTS.mkdir(exist_ok=True)
    stem = RESULTS / f'soak-{time.strftime("%Y%m%d-%H%M")}'
    with open(stem.with_suffix('.csv'), 'w', newline='') as fp:
        writer = csv.writer(fp)
        writer.writerow(['seconds'] + keys)
        for sample in result.samples:
            writer.writerow([f'{sample.elapsed:.1f}'] + [sample.values[k] for k in keys])
    png = write_plot(result, stem.with_suffix('.png'),
                     f'Soak of {minutes:g} min: {done} jobs, '
                     f'{sum(result.edits.values())} edits (seed {seed})')
    print(f'plot: {png}\nsamples: {stem.with_suffix(".csv")}')
    return 1 if result.failures else 0


if __name__ == '__main__':
    sys.exit(main(float(sys.argv[1]) if len(sys.argv) > 1 else 30.0))
