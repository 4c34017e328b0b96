"""A history of 1,000,000 finished jobs: restart, one page, disk (prints
figures; not a test).

Run: PYTHONPATH=$PWD .venv/bin/python bench/bench_history.py [--jobs N]
     [--no-daemon]
(from the checkout's root: the services it starts run the code in the
current directory).

Fills a real queue database with N finished jobs (one a minute: about two
years of an instrument; 20 owners; done, failed, aborted, interrupted),
then times opening the store and the queue on it (what a daemon restart
reads), a real daemon restart on it (against an empty queue), one history
page (first, deepest by keyset, by owner, by state, by a day's time range)
and prints the file's size per job. Goals (issue 20): restart <= 3 s, one
page <= 5 ms. Run in an older checkout (cd there, PYTHONPATH=$PWD) it
measures that code (filtered pages show "n/a" where it has no filters).
"""

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import tempfile
import time
from contextlib import closing
from pathlib import Path

from nicos_scriptserver.queue import Job, JobKind, JobQueue, JobState, \
    QueueStore

try:
    from nicos_scriptserver.queue.historyfilter import HistoryFilter
except ImportError:     # code from before history filters
    HistoryFilter = None

SCRIPT = ('set_ei(12.5)\nfor t in (10, 20, 30):\n    set_temperature(t)\n'
          '    measure(frames=1000)\n')
OWNERS = [f'user{i:02d}' for i in range(20)]
#: Per 100 jobs: how many ended so.
OUTCOMES = ['done'] * 85 + ['failed'] * 10 + ['aborted'] * 4 + ['interrupted']
START = 1.6e9
MINUTE = 60.0
PAGE = 50
REPEATS = 200


def job_row(job_id: int) -> tuple:
    """The jobs row of finished job *job_id* (history position id - 1)."""
    # Knuth's multiplicative hash: outcomes not in step with owners.
    state = OUTCOMES[job_id * 2654435761 % 2**32 % 100]
    finished = START + job_id * MINUTE
    job = Job(id=job_id, kind=JobKind.AWARE, source=SCRIPT,
              owner=OWNERS[job_id * 13 % len(OWNERS)],
              changed_by=OWNERS[job_id * 13 % len(OWNERS)],
              state=JobState(state), created=finished - 50,
              name='temperature scan', queued_at=finished - 50,
              started_at=finished - 40, finished_at=finished,
              result='ok' if state == 'done' else None,
              error=None if state == 'done' else
              {'type': 'RuntimeError', 'message': 'detector timeout',
               'line': 4})
    data = json.dumps(job.to_dict(), separators=(',', ':'))
    return job_id, state, None, job_id - 1, data


def fill(path: Path, jobs: int) -> float:
    """Write *jobs* finished jobs into a new queue file; seconds taken."""
    QueueStore(path).close()
    begin = time.perf_counter()
    db = sqlite3.connect(str(path), isolation_level=None)
    db.execute('BEGIN IMMEDIATE')
    batch = 50_000
    for first in range(1, jobs + 1, batch):
        db.executemany('INSERT INTO jobs (id, state, pos, hist, data) '
                       'VALUES (?, ?, ?, ?, ?)',
                       [job_row(i) for i in
                        range(first, min(first + batch, jobs + 1))])
    db.execute("INSERT OR REPLACE INTO meta VALUES ('next_id', ?)",
               (str(jobs + 1),))
    db.execute('COMMIT')
    db.execute('PRAGMA wal_checkpoint(TRUNCATE)')
    db.close()
    return time.perf_counter() - begin


def timed(operation, repeats: int) -> tuple:
    """(p50, p99) of *operation* in milliseconds."""
    samples = []
    for _ in range(repeats):
        begin = time.perf_counter()
        operation()
        samples.append(time.perf_counter() - begin)
    samples.sort()
    return (statistics.median(samples) * 1e3,
            samples[min(len(samples) - 1, int(len(samples) * 0.99))] * 1e3)


def report(what: str, p50: float, p99: float, goal_ms: float) -> None:
    verdict = 'goal met' if p99 <= goal_ms else 'GOAL MISSED'
    print(f'{what:<44} p50 {p50:9.3f} ms  p99 {p99:9.3f} ms  '
          f'(goal <= {goal_ms:g} ms: {verdict})')


def restarts(path: Path) -> None:
    def open_store():
        store = QueueStore(path)
        store.load(1000)
        store.close()

    def open_queue():
        JobQueue(path).close()
    report('store open + load (restart reads)', *timed(open_store, 5), 3000)
    report('JobQueue open (restart, recover)', *timed(open_queue, 5), 3000)
    # The first open of a file written before the history's indexes builds
    # them, once; so does that of a file from before the owner + state one.
    older = path.with_name('older.sqlite')
    for what, indexes in (
            ('the history indexes', ('jobs_history_finished',
                                     'jobs_history_owner',
                                     'jobs_history_state',
                                     'jobs_history_owner_state')),
            ('the owner + state index', ('jobs_history_owner_state',))):
        shutil.copyfile(path, older)
        db = sqlite3.connect(str(older))
        for index in indexes:
            db.execute(f'DROP INDEX IF EXISTS {index}')
        db.close()
        begin = time.perf_counter()
        QueueStore(older).close()
        print(f'first open of a file without {what} '
              f'{time.perf_counter() - begin:6.2f} s (once: builds them)')
        older.unlink()


def pages(path: Path, jobs: int) -> None:
    queue = JobQueue(path)
    try:
        first = queue.history(PAGE)
        assert len(first) == PAGE and first[0].id == jobs, first[0]
        report(f'first page ({PAGE})', *timed(lambda: queue.history(PAGE),
                                               REPEATS), 5)
        deep = PAGE + 10
        page = queue.history(PAGE, deep)
        assert [job.id for job in page] == list(range(deep - 1, 9, -1))
        report('deepest page by keyset (before job 60)',
               *timed(lambda: queue.history(PAGE, deep), REPEATS), 5)
        if HistoryFilter is None:
            print('filtered pages: n/a (this code has no history filters)')
            return
        year_ago = START + max(1, jobs - 525_600) * MINUTE
        filters = {
            'by owner (user07), first page': (HistoryFilter(owner='user07'),
                                              None),
            'by owner (user07), deep page': (HistoryFilter(owner='user07'),
                                             5000),
            'by state (interrupted, 1%)': (HistoryFilter(
                states=('interrupted',)), None),
            'by state (aborted), deep page': (HistoryFilter(
                states=('aborted',)), 5000),
            'by time (one day a year ago)': (HistoryFilter(
                since=year_ago, until=year_ago + 86400), None),
            'owner + state + since a year': (HistoryFilter(
                owner='user03', states=('failed',), since=year_ago), None),
        }
        for what, (where, before) in filters.items():
            page = queue.history(PAGE, before, where)
            assert page and all(where.matches(job) for job in page), what
            report(what, *timed(lambda: queue.history(PAGE, before, where),
                                REPEATS), 5)
    finally:
        queue.close()


def daemon_restart(path: Path) -> None:
    """A real daemon's start on an empty queue, then on *path*."""
    import sys
    sys.path.insert(0, str(Path(__file__).parent))
    from _daemon_bench import start_ours
    for label, source in (('empty queue', None), ('this history', path)):
        datadir = Path(tempfile.mkdtemp(prefix='ss-hist-daemon-'))
        procs = start_ours(datadir, os.geteuid() == 0)
        try:
            procs.procs['daemon'].terminate()
            procs.procs['daemon'].wait(30)
            target = datadir / 'queue.sqlite'
            for suffix in ('', '-wal', '-shm'):
                Path(f'{target}{suffix}').unlink(missing_ok=True)
            if source is not None:
                shutil.copyfile(source, target)
                os.chmod(target, 0o600)
                # On disk before the clock starts: the daemon's first
                # commit would otherwise wait for the copy's writeback.
                with open(target, 'rb+') as copy:
                    os.fsync(copy.fileno())
            begin = time.perf_counter()
            procs.start_daemon(120)
            took = time.perf_counter() - begin
            print(f'daemon restart, {label:<14} {took:6.2f} s '
                  f'(start until a login works and the setups are loaded)')
        finally:
            procs.stop()
            shutil.rmtree(datadir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--jobs', type=int, default=1_000_000)
    parser.add_argument('--no-daemon', action='store_true',
                        help='skip the real daemon restart')
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix='ss-hist-bench-'))
    try:
        path = tmp / 'queue.sqlite'
        took = fill(path, args.jobs)
        print(f'filled {args.jobs:,} finished jobs in {took:.1f} s')
        size = sum(p.stat().st_size for p in tmp.iterdir())
        print(f'disk: {size / 2**20:.1f} MiB, {size / args.jobs:.0f} bytes '
              f'per job (indexes included)')
        with closing(sqlite3.connect(str(path))) as db:
            for name, used in db.execute(
                    "SELECT name, sum(pgsize) FROM dbstat WHERE name LIKE "
                    "'jobs%' GROUP BY name ORDER BY name"):
                print(f'  {name:<28} {used / args.jobs:6.0f} bytes per job')
        restarts(path)
        pages(path, args.jobs)
        if not args.no_daemon:
            daemon_restart(path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == '__main__':
    main()
