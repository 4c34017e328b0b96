"""The audit trail at scale: `ss_audit` with 1,000,000 entries (prints figures).

Run: .venv/bin/python bench/bench_audit.py [ROWS]   (about a minute)

Fills a queue database's audit trail with ROWS entries (default
1,000,000) as a busy instrument would leave them over years: each of
ROWS / 10 jobs changed about ten times, the changes of nearby jobs
interleaved. Then reads, through the store as the daemon does, the last
100 entries, and the entries of one job: a recent one, one from the
middle and the oldest. Target (issue #17): each read <= 5 ms.
"""

import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import sqlite3

from nicos_scriptserver.queue.store import QueueStore, write_audit

TARGET_MS = 5.0
REPEATS = 50


def fill(path: Path, rows: int) -> None:
    """*rows* audit entries, written as the store writes them but in one
    transaction per 100,000 (the daemon writes one per change; only the
    reads are measured)."""
    db = sqlite3.connect(str(path), isolation_level=None)
    rng = random.Random(1796)
    jobs = max(1, rows // 10)
    batch = []
    for seq in range(1, rows + 1):
        job = min(jobs, max(1, int(seq / 10 + rng.gauss(0, 20))))
        batch.append({'at': 1.7e9 + seq, 'who': rng.choice(['alice', 'bob']),
                      'client': 'ss_move from 127.0.0.1, connection 3',
                      'action': 'move', 'jobs': [job],
                      'why': f'job {job}: moved it to position 0'})
        if len(batch) == 100_000 or seq == rows:
            db.execute('BEGIN')
            write_audit(db, batch)
            db.execute('COMMIT')
            batch = []
    db.close()


def timed(read) -> list:
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        read()
        times.append((time.perf_counter() - start) * 1000)
    return times


def main() -> None:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / 'queue.sqlite'
        QueueStore(path).close()   # the schema
        start = time.perf_counter()
        fill(path, rows)
        store = QueueStore(path)
        print(f'{rows:,} audit entries written in '
              f'{time.perf_counter() - start:.1f} s; file '
              f'{path.stat().st_size / 2**20:.0f} MiB')
        jobs = max(1, rows // 10)
        cases = [('last 100 changes', lambda: store.audit(100)),
                 ('one recent job', lambda: store.audit(50, jobs - 5)),
                 ('one job from the middle', lambda: store.audit(50, jobs // 2)),
                 ('the oldest job', lambda: store.audit(50, 1)),
                 ('a job with no entries', lambda: store.audit(50, jobs * 2))]
        for label, read in cases:
            found = len(read())
            times = timed(read)
            p50 = statistics.median(times)
            verdict = 'target met' if max(p50, max(times)) <= TARGET_MS \
                else 'TARGET MISSED'
            print(f'{label:26s} {found:3d} entries  p50 {p50:7.3f} ms  '
                  f'max {max(times):7.3f} ms  (<= {TARGET_MS} ms: {verdict})')
        store.close()


if __name__ == '__main__':
    main()
