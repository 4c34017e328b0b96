"""What dry runs cost (prints figures; not a test).

Run: .venv/bin/python bench/bench_dryrun.py   (about 2 minutes)

Figures, on one script server (policy hold, one dry-run worker):
 1. submission -> first final estimate (an ``ss_job`` event whose report is
    ok/failed), for a one-line script and for a 500-line script, each
    submitted alone to an idle server, and for the one-line script as a
    black-box job (dry-run through the bridge: its child starts too).
    Target: within 2 s.
 2. job-to-job gap (``done`` of job N -> ``processing`` of job N+1, as a
    client receives them) of short jobs (``sleep(0.05)``, already
    estimated), without and with 20 dry runs of 500-line scripts pending
    behind them; also inside the daemon (``finished_at`` -> next
    ``started_at``). Target: the queue's bound (p50 <= 1.5 ms, p99 <= 5 ms)
    also with the 20 pending.
 3. the memory of its own (USS) of each dry-run process, at its largest
    (sampled every 10 ms during the gap round with dry runs pending): what
    the kernel frees as each one ends, while the next job starts.
"""

import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _daemon_bench import ForeignLoad, Row, login, print_table, \
    start_ours, wait_for_quiet  # noqa: E402

ALLOW_ROOT = os.geteuid() == 0
RUNS = 6
GAP_JOBS = 120
PENDING = 20
SMALL = 'set_ei(12.5)'
BIG = '\n'.join(f'set_temperature({200 + i % 100})' if i % 5 == 0 else
                f'x{i} = {i} * 2' for i in range(500))


def final(job_id):
    return lambda n, d: (n == 'ss_job' and d['id'] == job_id and
                         (d['estimate'] or {}).get('state') in
                         ('ok', 'failed', 'not possible'))


def time_to_estimate(client, script, rows, label, kind='aware'):
    row = Row(f'1 submit -> estimate, {label}', 's').target('p50', 2.0) \
        .target('p99', 2.0)
    rows.append(row)
    samples, wall = [], []
    for _ in range(RUNS):
        mark = client.mark()
        t0 = time.perf_counter()
        job, = client.call('ss_submit', {'source': script, 'kind': kind})
        _, stamp, _, data = client.wait_event(final(job['id']), 60, mark)
        samples.append(stamp - t0)
        wall.append(data['estimate']['wall_seconds'])
        assert data['estimate']['state'] == 'ok', data['estimate']
        client.call('ss_remove', job['id'])
    row.set('ours', samples, scale=1)
    row.ours_note = (f'of which the dry-run process: median '
                     f'{sorted(wall)[len(wall) // 2]:.2f} s')


def gaps(client, ids, mark):
    wanted = {str(i) for i in ids}
    done_at, result = None, []
    for stamp, name, data in client.since(mark):
        if name == 'done' and data.get('reqid') in wanted:
            done_at = stamp
        elif name == 'processing' and data.get('reqid') in wanted:
            if done_at is not None:
                result.append(stamp - done_at)
            done_at = None
    return result


class DryRunMemory:
    """Samples the memory of its own of every dry-run process (a child of
    the daemon's fork server) while it runs; `peaks` in MiB."""

    def __init__(self, daemon_pid: int):
        self.daemon = psutil.Process(daemon_pid)
        self.largest = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> 'DryRunMemory':
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._stop.wait(0.01):
            for server in self.daemon.children():
                try:
                    if 'dryrunforkserver' not in ' '.join(server.cmdline()):
                        continue
                    for run in server.children():
                        uss = run.memory_full_info().uss
                        self.largest[run.pid] = max(uss, self.largest.get(run.pid, 0))
                except psutil.Error:   # ended meanwhile
                    pass

    def peaks(self) -> list:
        return [uss / 2 ** 20 for uss in self.largest.values()]


def gap_round(client, pending: int):
    client.call('ss_hold')
    jobs = client.call('ss_submit', [{'source': 'sleep(0.05)', 'name': f'g{i}'}
                                     for i in range(GAP_JOBS)])
    ids = [job['id'] for job in jobs]
    client.wait_event(final(ids[-1]), 300)
    extra = []
    if pending:
        extra = client.call('ss_submit', [{'source': BIG} for _ in range(pending)])
    mark = client.mark()
    client.call('ss_release')
    client.wait_event(lambda n, d: n == 'done' and d.get('reqid') == str(ids[-1]),
                      120, mark)
    still = sum(1 for job in extra if (client.call('ss_job', job['id'])
                ['estimate'] or {}).get('state') in ('pending', 'running'))
    client.call('ss_clear')
    ran = [client.call('ss_job', i) for i in ids]
    inside = [after['started_at'] - before['finished_at']
              for before, after in zip(ran, ran[1:])]
    return gaps(client, ids, mark), inside, still


def main():
    print(f'bench_dryrun on {os.cpu_count()} CPUs, load {os.getloadavg()}')
    print(f'other processes use {wait_for_quiet():.2f} CPUs')
    rows = []
    procs = start_ours(Path(tempfile.mkdtemp(prefix='ss-dryrun-bench-')),
                       ALLOW_ROOT)
    client = login(procs)
    client.call('ss_hold')
    try:
        load = ForeignLoad()
        load.start()
        time_to_estimate(client, SMALL, rows, 'one line')
        time_to_estimate(client, BIG, rows, '500 lines')
        time_to_estimate(client, SMALL, rows, 'one line, black-box',
                         'blackbox')
        quiet, quiet_inside, _ = gap_round(client, 0)
        with DryRunMemory(procs.procs['daemon'].pid) as memory:
            busy, busy_inside, still = gap_round(client, PENDING)
        for label, samples in (('no dry runs pending', quiet),
                               ('no dry runs pending, in the daemon',
                                quiet_inside),
                               (f'{PENDING} dry runs pending, in the daemon',
                                busy_inside)):
            row = Row(f'2 gap, {label}')
            row.set('ours', samples)
            rows.append(row)
        row = Row(f'2 gap, {PENDING} dry runs pending').target('p50', 1.5) \
            .target('p99', 5.0)
        row.set('ours', busy)
        row.ours_note = (f'{still} of the {PENDING} dry runs were still '
                         'pending or running when the last short job ended')
        rows.append(row)
        row = Row('3 dry-run process, memory of its own at its largest', 'MiB')
        row.set('ours', memory.peaks(), scale=1)
        rows.append(row)
        print(f'other processes used {load.stop():.2f} CPUs meanwhile')
    finally:
        client.disconnect()
        procs.stop()
    print_table(rows)


if __name__ == '__main__':
    main()
