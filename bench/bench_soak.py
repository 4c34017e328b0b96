"""Soak: a queue of short jobs with random edits for a long time (prints
figures and writes a plot; not a test).

Run: .venv/bin/python bench/bench_soak.py [MINUTES] [--tracemalloc]
     (default 30 minutes)

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
warm-up (goal: at most 1 MiB per hour for daemon and proxy), disk growing
only by the finished jobs' history.

With --tracemalloc, daemon and proxy (and cache) trace their Python
allocations (bench/tracemem/sitecustomize.py; slower, and the tracer's own
memory adds to their RSS) and the bench prints, per process, the growth of
traced memory per hour after the warm-up and the sources of the
allocations made after the warm-up and still held at the end (largest
first, with the code that made them), split into what was made while
logging (held by NICOS's buffer of the last log messages, which is
bounded) and the rest.
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
TRACEMEM = HERE / 'tracemem'
GOAL_MIB_PER_HOUR = 1.0
#: NICOS's daemon keeps its last log messages for clients that connect
#: (DaemonLogHandler: trimmed to 100,000 when there are 110,000).
LOG_BUFFER = '100,000-110,000'
LOGGING = os.path.join('logging', '__init__.py')


def slope_per_hour(times, values) -> float:
    """Least-squares slope of *values* over *times* (s), per hour."""
    n = len(times)
    mean_t, mean_v = sum(times) / n, sum(values) / n
    var = sum((t - mean_t) ** 2 for t in times)
    if var == 0:
        return 0.0
    return sum((t - mean_t) * (v - mean_v) for t, v in zip(times, values)) / var * 3600


def tracing_env(folder: Path, duration: float) -> dict:
    """The services' environment for allocation snapshots into *folder*:
    one every tenth of the run (at most every 5 minutes), the warm one
    after the first fifth."""
    folder.mkdir(mode=0o700)
    return {'PYTHONPATH': str(TRACEMEM), 'SOAK_TRACEMALLOC': str(folder),
            'SOAK_TRACEMALLOC_EVERY': f'{min(300.0, duration / 10):.0f}',
            'SOAK_TRACEMALLOC_WARM': f'{duration / 5:.0f}'}


def made_while_logging(traceback) -> bool:
    """Whether an allocation was made inside a logging call: what of it
    is still held, the daemon's log buffer holds."""
    return any(frame.filename.endswith(LOGGING) for frame in traceback)


def print_retained(folder: Path, pids: dict, warm_after: float, top: int = 12) -> None:
    """Per process: traced memory's growth after the warm-up, and where the
    allocations still held at the end that were made after it come from."""
    import tracemalloc
    ignore = [tracemalloc.Filter(False, tracemalloc.__file__),
              tracemalloc.Filter(False, str(TRACEMEM / '*'))]
    for name, pid in pids.items():
        log, warm, last = (folder / f'{pid}.log', folder / f'{pid}-warm.snap',
                           folder / f'{pid}-latest.snap')
        if not (warm.exists() and last.exists()):
            print(f'{name}: no snapshots (run longer than the snapshot period)')
            continue
        rows = [tuple(map(float, line.split())) for line in log.read_text().splitlines()]
        after = [row for row in rows if row[0] >= warm_after] or rows[-1:]
        slope = slope_per_hour([r[0] for r in after], [r[1] / 2**20 for r in after])
        print(f'{name}: traced {rows[0][1] / 2**20:.1f} -> {rows[-1][1] / 2**20:.1f} MiB '
              f'({slope:+.2f} MiB/h over {len(after)} snapshots after the warm-up; '
              f'tracer itself {rows[-1][2] / 2**20:.1f} MiB)')
        old = tracemalloc.Snapshot.load(str(warm)).filter_traces(ignore)
        new = tracemalloc.Snapshot.load(str(last)).filter_traces(ignore)
        diff = new.compare_to(old, 'traceback')
        hours = (rows[-1][0] - after[0][0]) / 3600 or 1.0
        logged = sum(stat.size_diff for stat in diff if made_while_logging(stat.traceback))
        rest = sum(stat.size_diff for stat in diff) - logged
        print(f'  of that, made while logging {logged / 2**20 / hours:+.2f} MiB/h (NICOS keeps '
              f'the last {LOG_BUFFER} messages for getmessages: bounded), '
              f'the rest {rest / 2**20 / hours:+.2f} MiB/h (goal <= {GOAL_MIB_PER_HOUR:g})')
        print(f'  held at the end, allocated after the warm-up (top {top}):')
        for stat in diff[:top]:
            frames = [f'{f.filename.rsplit("site-packages/", 1)[-1]}:{f.lineno}'
                      for f in stat.traceback if not f.filename.startswith('<frozen')][-3:]
            print(f'  {stat.size_diff / 1024:+10.1f} KiB {stat.count_diff:+7d} blocks  '
                  f'{" <- ".join(reversed(frames))}')


def main(minutes: float, trace: bool = False) -> int:
    seed = int(os.environ.get('SOAK_SEED', time.time()))
    with tempfile.TemporaryDirectory() as tmp:
        snaps = Path(tmp) / 'tracemalloc'
        env = tracing_env(snaps, minutes * 60) if trace else None
        running = start_server(Path(tmp) / 'data', proxy=True, env=env)
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
        if trace:
            print_retained(snaps, {name: pids[name] for name in ('daemon', 'proxy')},
                           minutes * 60 / 5)

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
        goal = f'  (goal <= {GOAL_MIB_PER_HOUR:g} MiB/h)' if key in ('daemon.rss', 'proxy.rss') else ''
        print(f'{key:<16}{series[0]:>10.1f}{series[warm]:>10.1f}{series[-1]:>10.1f}'
              f'{slope_per_hour(times, series[warm:]):>26.2f}{goal}')
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
    args = [a for a in sys.argv[1:] if a != '--tracemalloc']
    sys.exit(main(float(args[0]) if args else 30.0, '--tracemalloc' in sys.argv[1:]))
