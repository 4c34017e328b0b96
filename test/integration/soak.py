"""Run a queue of short jobs with random edits for a while; sample resources.

The queue is kept a few jobs long: scripts that report progress and pass
pause points, generated jobs calling the demo's commands, and black-box
scripts (each a child process). Meanwhile a client makes random edits
(edit, skip, unskip, move, repeat, remove), a viewer polls the proxy like
an IBEX GUI, and every *interval* seconds the RSS, open file descriptors
and threads of cache, daemon and proxy are sampled with the size of the
queue database and of the log directory.

Used by test_soak.py (a short run in CI) and bench/bench_soak.py (30
minutes, figures and a plot).
"""

from __future__ import annotations

import random
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

import psutil

from nicos_scriptserver.clients.daemonclient import ScriptServerClient, ServerError
from nicos_scriptserver.clients.proxyclient import ProxyClient

PROCESSES = ('cache', 'daemon', 'proxy')
#: What is sampled per process, with its unit.
PER_PROCESS = {'rss': 'MiB', 'fds': '', 'threads': ''}
WAITING_TARGET = 6

AWARE_JOB = '''\
for i in range({steps}):
    progress(i / {steps}, 'step %d' % i)
    pause_point()
    sleep(0.05)
'''
BLACKBOX_JOB = 'import time\nprint("black box {n}")\ntime.sleep(0.2)\n'


@dataclass
class Sample:
    """One point in time: seconds since the start and the measured values,
    keyed ``'<process>.<what>'`` plus ``'sqlite_kib'``, ``'wal_kib'`` and
    ``'logs_kib'``."""

    elapsed: float
    values: Dict[str, float]


@dataclass
class SoakResult:
    samples: List[Sample] = field(default_factory=list)
    submitted: Counter = field(default_factory=Counter)
    edits: Counter = field(default_factory=Counter)
    # Edits refused because the job had started meanwhile: a race the
    # user sees too, not a fault.
    raced: Counter = field(default_factory=Counter)
    # Edits refused because they would change nothing.
    noop: Counter = field(default_factory=Counter)
    outcomes: Counter = field(default_factory=Counter)
    failures: List[str] = field(default_factory=list)
    proxy_polls: int = 0
    skipped_removed: int = 0

    def series(self, key: str) -> List[float]:
        return [sample.values[key] for sample in self.samples]


def _sizes_kib(paths: List[Path]) -> float:
    return sum(p.stat().st_size for p in paths if p.is_file()) / 1024


def sample(started: float, pids: Dict[str, int], datadir: Path) -> Sample:
    values = {}
    for name, pid in pids.items():
        proc = psutil.Process(pid)
        with proc.oneshot():
            values[f'{name}.rss'] = proc.memory_info().rss / 2**20
            values[f'{name}.fds'] = proc.num_fds()
            values[f'{name}.threads'] = proc.num_threads()
    values['sqlite_kib'] = _sizes_kib([datadir / 'queue.sqlite'])
    # The write-ahead log grows to ~4 MiB, then SQLite checkpoints it.
    values['wal_kib'] = _sizes_kib([datadir / 'queue.sqlite-wal'])
    values['logs_kib'] = _sizes_kib(list((datadir / 'log').rglob('*')))
    return Sample(time.monotonic() - started, values)


class SoakDriver:
    """Feeds and edits the queue of a running instance."""

    def __init__(self, client: ScriptServerClient, rng: random.Random):
        self.client = client
        self.rng = rng
        self.serial = 0
        self.result = SoakResult()

    def _spec(self) -> dict:
        self.serial += 1
        kind = self.rng.choices(['aware', 'generated', 'blackbox'], [5, 3, 1])[0]
        self.result.submitted[kind] += 1
        if kind == 'aware':
            return {'source': AWARE_JOB.format(steps=self.rng.randint(2, 8)),
                    'name': f'soak {self.serial}'}
        if kind == 'blackbox':
            return {'kind': 'blackbox', 'name': f'box{self.serial}.py',
                    'source': BLACKBOX_JOB.format(n=self.serial)}
        calls = [{'command': 'move_sample',
                  'args': {'x': round(self.rng.uniform(-5, 5), 2),
                           'theta': round(self.rng.uniform(-10, 10), 1)}},
                 {'command': 'set_temperature',
                  'args': {'kelvin': round(self.rng.uniform(280, 300), 1)}}]
        return {'kind': 'generated', 'calls': calls[:self.rng.randint(1, 2)]}

    def step(self) -> None:
        """Top up the queue, then make one random edit."""
        waiting = self.client.queue()['waiting']
        if len(waiting) < WAITING_TARGET:
            self.client.call('ss_submit', self._spec())
            return
        job = self.rng.choice(waiting)
        op = self.rng.choice(['edit', 'skip', 'unskip', 'move', 'repeat', 'remove'])
        if op == 'edit' and job['kind'] == 'generated':
            op = 'move'
        # A black-box job is plain Python: no progress() or pause_point().
        new_source = (BLACKBOX_JOB.format(n='edited') if job['kind'] == 'blackbox'
                      else AWARE_JOB.format(steps=3))
        request = {
            'edit': ('ss_edit', job['id'], {'source': new_source}),
            'skip': ('ss_skip', job['id']),
            'unskip': ('ss_unskip', job['id']),
            'move': ('ss_move', job['id'], self.rng.choice(['top', 'bottom', 'up', 'down'])),
            'repeat': ('ss_repeat', job['id'], 1),
            'remove': ('ss_remove', job['id']),
        }[op]
        try:
            self.client.call(*request)
        except ServerError as err:
            if self._job_moved_on(job['id']):
                self.result.raced[op] += 1
                return
            if 'already' in str(err):  # e.g. moving the top job up
                self.result.noop[op] += 1
                return
            raise
        self.result.edits[op] += 1

    def _job_moved_on(self, job_id: int) -> bool:
        return all(job['id'] != job_id for job in self.client.queue()['waiting'])

    def drain(self, timeout: float) -> None:
        """Remove the skipped jobs (they would wait forever) and wait until
        the rest has run."""
        deadline = time.monotonic() + timeout
        while True:
            queue = self.client.queue()
            for job in queue['waiting']:
                if job['state'] == 'skipped':
                    self.client.call('ss_remove', job['id'])
                    self.result.skipped_removed += 1
            if queue['current'] is None and not queue['waiting']:
                return
            if queue['held'] or time.monotonic() > deadline:
                raise AssertionError(f'the queue does not run empty: {queue}')
            time.sleep(0.2)

    def collect_outcomes(self) -> None:
        """Count how the finished jobs ended (the instance must be fresh)."""
        before = None
        while True:
            page = self.client.call('ss_history', 200, before)
            if not page:
                return
            for job in page:
                self.result.outcomes[job['state']] += 1
                if job['state'] == 'failed':
                    self.result.failures.append(
                        f"job {job['id']} ({job['name']}): {job['error']}")
            before = page[-1]['id']


def run_soak(client: ScriptServerClient, pids: Dict[str, int], datadir: Path,
             proxy: Optional[ProxyClient], duration: float, interval: float,
             rng: random.Random) -> SoakResult:
    """Drive the queue of a fresh instance for *duration* seconds, sampling
    every *interval*, then let it run empty and count the outcomes."""
    driver = SoakDriver(client, rng)
    started = time.monotonic()
    next_sample = next_poll = started
    while time.monotonic() - started < duration:
        now = time.monotonic()
        if now >= next_sample:
            driver.result.samples.append(sample(started, pids, datadir))
            next_sample += interval
        if proxy is not None and now >= next_poll:
            proxy.call('ss_queue')
            proxy.call('getstatus')
            driver.result.proxy_polls += 1
            next_poll += 1.0
        driver.step()
        time.sleep(rng.uniform(0.05, 0.3))
    driver.drain(timeout=max(120.0, interval * 10))
    driver.result.samples.append(sample(started, pids, datadir))
    driver.collect_outcomes()
    return driver.result
