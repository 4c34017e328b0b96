"""Helpers of bench_daemon_queue.py: a stock-NICOS twin, a timing client, stats.

The stock twin is an instance of the same setups whose daemon is NICOS's own
`NicosDaemon`. Nothing in the repository changes: the setups are copied into
a temporary directory next to a throw-away setup package whose
``demo/nicos.conf`` points at them, and the daemon setup of the copy names
the stock class (without our ``queuefile`` and ``historydays``
parameters). NICOS finds setups at
``<setup package dir>/<setup_subdirs>/setups``, so the layout is::

    <tmp>/<package>/__init__.py
    <tmp>/<package>/demo/nicos.conf     setup_subdirs = [".."]
    <tmp>/setups/...                    copy of the repository's setups/
"""

import collections
import json
import math
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from nicos_scriptserver.clients.daemonclient import ScriptServerClient
from nicos_scriptserver.instance.config import REPO, Instance
from nicos_scriptserver.supervisor.processes import ServerProcesses, free_port

#: Events that come and go regardless of what a figure does (line/status
#: changes of a running script, cache updates, log messages).
NOISE = frozenset({'status', 'cache', 'eta', 'message', 'watch'})

STOCK_DAEMON_CLASS = 'nicos.services.daemon.NicosDaemon'
OUR_DAEMON_CLASS = 'nicos_scriptserver.daemon.device.ScriptServerDaemon'


# -- servers -------------------------------------------------------------------

def make_stock_setups(root: Path, package: str = 'ssbench_stock') -> str:
    """Write a setup package under *root* whose daemon is stock NICOS.

    Returns the INSTRUMENT value (``<package>.demo``); *root* must be on
    the services' PYTHONPATH.
    """
    pkg = root / package
    (pkg / 'demo').mkdir(parents=True, exist_ok=True)
    (pkg / '__init__.py').write_text('')
    (pkg / 'demo' / 'nicos.conf').write_text(
        '# stock-NICOS twin of the script server (benchmark only)\n'
        '[nicos]\nsetup_subdirs = [".."]\n')
    setups = root / 'setups'
    if setups.exists():
        shutil.rmtree(setups)
    shutil.copytree(REPO / 'setups', setups,
                    ignore=shutil.ignore_patterns('__pycache__', '*.pyc'))
    daemon_setup = setups / 'special' / 'daemon.py'
    text = daemon_setup.read_text()
    if OUR_DAEMON_CLASS not in text:
        raise RuntimeError(f'{daemon_setup}: daemon class {OUR_DAEMON_CLASS} '
                           'not found; cannot build the stock twin')
    text = text.replace(OUR_DAEMON_CLASS, STOCK_DAEMON_CLASS)
    text, removed = re.subn(r'^\s*(queuefile|historydays)\s*=.*\n', '', text,
                            flags=re.M)
    if removed != 2:
        raise RuntimeError(f'{daemon_setup}: expected a queuefile and a '
                           f'historydays line')
    daemon_setup.write_text(text)
    return f'{package}.demo'


def start_ours(datadir: Path, allow_root: bool, timescale: float = 20.0,
               dry_run_policy: str = 'hold') -> ServerProcesses:
    instance = Instance(datadir=datadir, daemon_port=free_port(),
                        cache_port=free_port(), timescale=timescale,
                        dry_run_policy=dry_run_policy)
    return ServerProcesses(instance, allow_root=allow_root).start()


def start_stock(datadir: Path, setup_root: Path, allow_root: bool,
                timescale: float = 20.0) -> ServerProcesses:
    instrument = make_stock_setups(setup_root)
    instance = Instance(datadir=datadir, daemon_port=free_port(),
                        cache_port=free_port(), timescale=timescale)
    procs = ServerProcesses(instance, allow_root=allow_root)
    procs.env['INSTRUMENT'] = instrument
    procs.env['PYTHONPATH'] = f"{setup_root}:{procs.env['PYTHONPATH']}"
    return procs.start()


# -- a client that time-stamps what it receives -------------------------------

class TimedClient(ScriptServerClient):
    """`ScriptServerClient` that records `time.perf_counter()` at receipt.

    ``stamps[i]`` is the time event ``events[i]`` arrived in this process.
    """

    def __init__(self, keep_events: bool = True):
        ScriptServerClient.__init__(self, keep_events)
        self.stamps: List[float] = []
        #: False: record events as (name, None), to save memory with big data
        self.keep_data = True
        #: events received per name, and when the last one arrived
        self.counts: Dict[str, int] = collections.Counter()
        self.last_arrival = 0.0
        #: events received that are not in NOISE
        self.significant = 0

    def signal(self, name, *args):
        now = time.perf_counter()
        data = args[0] if args else None
        if name in ('error', 'failed', 'broken'):
            self.problems.append(str(data))
        with self._cond:
            self.counts[name] += 1
            self.last_arrival = now
            if name not in NOISE:
                self.significant += 1
            if self.keep_events:
                self.events.append((name, data if self.keep_data else None))
                self.stamps.append(now)
            self._cond.notify_all()

    def mark(self) -> int:
        with self._cond:
            return len(self.events)

    def since(self, start: int) -> List[Tuple[float, str, Any]]:
        """(arrival time, name, data) of the events from index *start* on."""
        with self._cond:
            return [(t, n, d) for t, (n, d) in
                    zip(self.stamps[start:], self.events[start:])]

    def forget(self) -> None:
        """Drop recorded events (keeps memory small between figures)."""
        with self._cond:
            self.events.clear()
            self.stamps.clear()

    def wait_event(self, predicate: Callable[[str, Any], bool],
                   timeout: float = 30.0, start: int = 0
                   ) -> Tuple[int, float, str, Any]:
        """(index, arrival time, name, data) of the first match from *start*."""
        index = self.wait_index(predicate, timeout, start)
        with self._cond:
            return (index, self.stamps[index], *self.events[index])

    def quiet(self, gap: float = 0.3, limit: float = 60.0) -> None:
        """Wait until no event outside NOISE arrived for *gap* seconds (or
        *limit* passed)."""
        deadline = time.monotonic() + limit
        last = self.significant
        while time.monotonic() < deadline:
            time.sleep(gap)
            now = self.significant
            if now == last:
                return
            last = now


def login(procs: ServerProcesses, user: str = 'user',
          keep_events: bool = True) -> TimedClient:
    client = TimedClient(keep_events)
    inst = procs.instance
    client.login(inst.host, inst.daemon_port, user, procs.passwords[user])
    return client


# -- how busy other processes keep the machine --------------------------------

def _cpu_jiffies() -> Tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot (Linux /proc/stat)."""
    with open('/proc/stat') as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    total = sum(fields[:8])
    return total - idle, total


def _tree_jiffies(root: int) -> int:
    """CPU jiffies of *root* and its live descendants (incl. reaped children)."""
    parents: Dict[int, int] = {}
    times: Dict[int, int] = {}
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            with open(f'/proc/{entry}/stat') as f:
                rest = f.read().rsplit(')', 1)[1].split()
        except OSError:
            continue
        pid = int(entry)
        parents[pid] = int(rest[1])
        times[pid] = sum(int(x) for x in rest[11:15])   # utime stime cutime cstime
    ours = {root}
    changed = True
    while changed:
        changed = False
        for pid, ppid in parents.items():
            if ppid in ours and pid not in ours:
                ours.add(pid)
                changed = True
    return sum(times.get(pid, 0) for pid in ours)


class ForeignLoad:
    """Share of the machine's CPU used by processes outside this bench.

    ``start()`` then ``stop()``; the result is in CPUs (2.0 = both cores
    busy with other people's work).
    """

    def __init__(self):
        self._start = None

    def start(self) -> None:
        busy, total = _cpu_jiffies()
        self._start = (busy, total, _tree_jiffies(os.getpid()))

    def stop(self) -> float:
        busy, total, mine = self._start
        busy2, total2, mine2 = (*_cpu_jiffies(), _tree_jiffies(os.getpid()))
        ncpu = os.cpu_count() or 1
        if total2 == total:
            return 0.0
        foreign = max(0, (busy2 - busy) - (mine2 - mine))
        return foreign / (total2 - total) * ncpu


def wait_for_quiet(limit: float = 60.0, threshold: float = 0.15,
                   window: float = 2.0) -> float:
    """Wait (up to *limit* s) until others use < *threshold* CPUs; return it."""
    deadline = time.monotonic() + limit
    while True:
        load = ForeignLoad()
        load.start()
        time.sleep(window)
        used = load.stop()
        if used < threshold or time.monotonic() > deadline:
            return used


# -- client processes -----------------------------------------------------------

def gather_latencies(procs: Sequence, before_go: Optional[Callable[[], None]] = None
                     ) -> List[float]:
    """Run client processes together: each prints ``ready``, waits for a
    line on stdin, then prints its latencies as one JSON list."""
    for proc in procs:
        if proc.stdout.readline().strip() != 'ready':
            raise RuntimeError(f'a client process did not start: {proc.args[:3]}')
    if before_go:
        before_go()
    for proc in procs:
        proc.stdin.write('go\n')
        proc.stdin.flush()
    latencies: List[float] = []
    for proc in procs:
        latencies += json.loads(proc.stdout.readline())
        proc.wait(60)
    return latencies


# -- statistics and the table ---------------------------------------------------

def pct(samples: Sequence[float], q: float) -> float:
    """Nearest-rank percentile *q* (0..100) of *samples*."""
    ordered = sorted(samples)
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


class Row:
    """One line of the result table; values in the given unit."""

    def __init__(self, figure: str, unit: str = 'ms'):
        self.figure = figure
        self.unit = unit
        self.ours: Optional[Tuple[float, float, int]] = None
        self.stock: Optional[Tuple[float, float, int]] = None
        self.ours_note = ''
        self.stock_note = ''
        self.targets: List[Tuple[str, str, float]] = []   # (label, p50|p99, limit)
        self.checks: List[Tuple[str, bool]] = []   # other targets, decided

    def set(self, side: str, samples: Sequence[float], scale: float = 1e3):
        value = (pct(samples, 50) * scale, pct(samples, 99) * scale,
                 len(samples))
        setattr(self, side, value)
        return value

    def target(self, which: str, limit: float, label: str = '') -> 'Row':
        self.targets.append((label or f'{which} <= {limit:g} {self.unit}',
                             which, limit))
        return self

    def check(self, label: str, met: bool) -> 'Row':
        self.checks.append((label, met))
        return self

    def verdicts(self) -> List[str]:
        out = [f'{label}: ' + ('target met' if met else 'TARGET MISSED')
               for label, met in self.checks]
        for label, which, limit in self.targets:
            if self.ours is None:
                out.append(f'{label}: not measured')
                continue
            value = self.ours[0] if which == 'p50' else self.ours[1]
            out.append(f'{label}: ' + ('target met' if value <= limit
                                        else 'TARGET MISSED'))
        return out


def fmt_pair(value: Optional[Tuple[float, float, int]]) -> str:
    if value is None:
        return 'n/a'
    p50, p99, n = value
    return f'{p50:9.3f} / {p99:9.3f} (n={n})'


def print_table(rows: List[Row]) -> None:
    """figure | ours p50 / p99 | stock p50 / p99 | target; notes below a row."""
    width = max(len(r.figure) + len(r.unit) + 3 for r in rows)
    col = 30
    head = (f'{"figure [unit]":<{width}} | {"ours p50 / p99":<{col}} | '
            f'{"stock p50 / p99":<{col}} | target (ours)')
    print(head)
    print('-' * (len(head) + 24))
    for row in rows:
        name = f'{row.figure} [{row.unit}]'
        verdicts = row.verdicts() or ['-']
        print(f'{name:<{width}} | {fmt_pair(row.ours):<{col}} | '
              f'{fmt_pair(row.stock):<{col}} | {verdicts[0]}')
        for extra in verdicts[1:]:
            print(f'{"":<{width}} | {"":<{col}} | {"":<{col}} | {extra}')
        notes = '; '.join(f'{side}: {note}' for side, note in
                          (('ours', row.ours_note), ('stock', row.stock_note))
                          if note)
        if notes:
            print(f'{"":<{width}} |   {notes}')
