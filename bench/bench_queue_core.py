"""Timings of the durable job queue core (prints figures; not a test).

Run: .venv/bin/python bench/bench_queue_core.py

Targets: durable submit p50 <= 1 ms; move p50 <= 2 ms with 5,000 and
10,000 waiting jobs; listing 5,000 waiting jobs (to_dict) <= 8 ms. The
database lives in a temporary directory on the same disk as /tmp.
Timings include Python's garbage collection where it happens to run.
"""

import gc
import random
import statistics
import tempfile
import time
from pathlib import Path

from nicos_scriptserver.app.spec import parse_spec
from nicos_scriptserver.queue import (Change, Job, JobKind, JobQueue,
                                      JobState, QueueStore)

SCRIPT = 'set_ei(12.5)\nfor t in (10, 20, 30):\n    set_temperature(t)\n' \
         '    measure(frames=1000)\n'
SPEC = parse_spec({'kind': 'aware', 'source': SCRIPT,
                   'name': 'temperature scan'})
REPEATS = 300


def percentiles(samples):
    ordered = sorted(samples)
    return (statistics.median(ordered) * 1e3,
            ordered[int(len(ordered) * 0.95)] * 1e3)


def timed(operation, repeats=REPEATS):
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        operation()
        samples.append(time.perf_counter() - start)
    return percentiles(samples)


def report(what, p50, p95=None, target=None):
    verdict = ''
    if target is not None:
        verdict = 'target met' if p50 <= target else 'TARGET MISSED'
        verdict = f'  (target p50 <= {target:g} ms: {verdict})'
    spread = '' if p95 is None else f'  p95 {p95:7.3f} ms'
    print(f'{what:<48} p50 {p50:7.3f} ms{spread}{verdict}')


def filled(path, waiting, finished=0):
    """A queue file with *waiting* queued and *finished* done jobs."""
    store = QueueStore(path)
    change = Change(next_id=finished + 1)
    for job_id in range(1, finished + 1):
        change.put[job_id] = Job(
            id=job_id, kind=JobKind.AWARE, source=SCRIPT, owner='alice',
            changed_by='alice',
            state=JobState.DONE, created=0.0, started_at=1.0,
            finished_at=2.0, name='temperature scan')
        change.history[job_id] = job_id - 1
    store.commit(change)
    store.close()
    queue = JobQueue(path)
    if waiting:
        queue.submit([SPEC] * waiting, 'alice')
    return queue


def bench_submit(directory):
    for waiting in (0, 5000):
        queue = filled(directory / f'submit{waiting}.db', waiting)
        report(f'durable submit, {waiting} waiting',
               *timed(lambda: queue.submit(SPEC, 'alice')), target=1)
        queue.close()


def bench_moves(directory):
    rng = random.Random(1)
    for waiting in (5000, 10000):
        queue = filled(directory / f'move{waiting}.db', waiting)
        ids = [job.id for job in queue.waiting()]
        db = queue._store._db
        rows = db.total_changes
        report(f'move to a random index, {waiting} waiting',
               *timed(lambda: queue.move(rng.choice(ids),
                                         rng.randrange(waiting))), target=2)
        print(f'{"":<48} rows written per move: '
              f'{(db.total_changes - rows) / REPEATS:.2f}')
        report(f"move 'top', {waiting} waiting",
               *timed(lambda: queue.move(rng.choice(ids), 'top')), target=2)
        # The worst pattern for order keys: always into the same gap.
        rows = db.total_changes
        report(f'move into the same place, {waiting} waiting',
               *timed(lambda: queue.move(rng.choice(ids[100:]), 1)), target=2)
        print(f'{"":<48} rows written per move: '
              f'{(db.total_changes - rows) / REPEATS:.2f}')
        queue.close()


def bench_listing(directory):
    path = directory / 'list.db'
    filled(path, 5000).close()
    queue = JobQueue(path)  # reopened: as after a server restart
    gc.collect()  # not the garbage of the benchmarks before
    start = time.perf_counter()
    queue.summary()
    report('first listing of 5,000 after reopening',
           (time.perf_counter() - start) * 1e3, target=8)
    report('listing 5,000 waiting (to_dict)',
           *timed(lambda: [job.to_dict() for job in queue.waiting()], 50),
           target=8)
    report('summary() with 5,000 waiting',
           *timed(queue.summary, 50), target=8)
    queue.close()


def bench_running(directory):
    queue = filled(directory / 'run.db', 1000)

    def cycle():
        queue.start_next()
        queue.finish('done')

    report('start_next + finish (2 commits)', *timed(cycle))
    queue.start_next()
    report('report_progress (durable)',
           *timed(lambda: queue.report_progress(0.5, 'half')))
    report('set_line (memory only)',
           *timed(lambda: queue.set_line(12), 3000))
    queue.close()


def bench_open(directory):
    for finished in (10000, 100000):
        path = directory / f'open{finished}.db'
        filled(path, 10000, finished=finished).close()
        start = time.perf_counter()
        queue = JobQueue(path)
        report(f'open with 10,000 waiting + {finished:,} finished',
               (time.perf_counter() - start) * 1e3)
        report(f'history page deep in {finished:,} finished',
               *timed(lambda: queue.history(50, before_id=finished // 2), 50))
        queue.close()


def main():
    with tempfile.TemporaryDirectory(prefix='bench-queue-') as name:
        directory = Path(name)
        bench_submit(directory)
        bench_moves(directory)
        bench_listing(directory)
        bench_running(directory)
        bench_open(directory)


if __name__ == '__main__':
    main()
