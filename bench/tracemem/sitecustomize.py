"""Allocation snapshots of a service during a soak (bench only, never
installed: bench_soak.py puts this folder on the services' PYTHONPATH when
run with --tracemalloc).

With SOAK_TRACEMALLOC naming a directory, the process traces its Python
allocations (16 frames each) and, every SOAK_TRACEMALLOC_EVERY seconds,
writes a snapshot to ``<pid>-latest.snap`` there; the first one after
SOAK_TRACEMALLOC_WARM seconds is kept as ``<pid>-warm.snap``, so that the
bench can compare what was allocated after the warm-up and is still held
at the end. Each snapshot adds a line to ``<pid>.log``: seconds since the
start, traced bytes and the tracer's own bytes.

Children of the services (dry runs, black-box jobs) get the allowlisted
environment without SOAK_TRACEMALLOC, so they trace nothing.
"""

import os
import threading
import time
import tracemalloc


def _snapshots(folder: str, every: float, warm_after: float) -> None:
    started = time.monotonic()
    pid = os.getpid()
    kept_warm = False
    while True:
        time.sleep(every)
        elapsed = time.monotonic() - started
        snapshot = tracemalloc.take_snapshot()
        names = ['latest']
        if not kept_warm and elapsed >= warm_after:
            names.append('warm')
            kept_warm = True
        for name in names:
            path = os.path.join(folder, f'{pid}-{name}.snap')
            snapshot.dump(path + '.part')
            os.replace(path + '.part', path)
        traced, _peak = tracemalloc.get_traced_memory()
        with open(os.path.join(folder, f'{pid}.log'), 'a') as log:
            log.write(f'{elapsed:.0f} {traced} {tracemalloc.get_tracemalloc_memory()}\n')


def _start() -> None:
    folder = os.environ.get('SOAK_TRACEMALLOC')
    if not folder:
        return
    tracemalloc.start(16)
    threading.Thread(
        target=_snapshots, name='soak-tracemalloc', daemon=True,
        args=(folder, float(os.environ.get('SOAK_TRACEMALLOC_EVERY', '300')),
              float(os.environ.get('SOAK_TRACEMALLOC_WARM', '900')))).start()


_start()
