"""Command catalog in a running daemon: reply, reload latency, effect on a job.

Prints figures (no pass/fail): the daemon's start with 1,000 command files
(until it serves; and the CPU time it took, which a busy machine changes
less), the ``ss_catalog`` reply for ~1,000 commands (size and round trip),
the time from saving a changed command file to a client receiving the
``ss_catalog`` event, the time a full cyclic garbage collection holds the
interpreter, and the longest stall of a busy running job while command
files change (reloads are deferred until the job ends, but the watcher's
parsing competes for the interpreter and its allocations trigger
collections). The stalls include the operating system's scheduling: on a
busy machine they measure the machine.

Run: .venv/bin/python bench/bench_catalog_daemon.py
"""

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench_catalog import TEMPLATE

from nicos_scriptserver.clients.daemonclient import ScriptServerClient
from nicos_scriptserver.instance.config import REPO, Instance
from nicos_scriptserver.supervisor.processes import ServerProcesses, free_port

FILES = 1000
SAVES = 20

# A command, so that NICOS does not trace (and report) each line of the loop.
BUSY_COMMAND = '''\
import gc
from array import array
from time import perf_counter as now


def busy_stalls(seconds: float, collect: bool = True):
    """Spins for some seconds and prints the longest gap between spins and
    the 99.9th percentile (10 us resolution)."""
    # Counted, not kept: a list of every gap (millions of floats) made
    # each full cyclic collection walk it, a stall of its own (26 ms for
    # 5 million).
    if not collect:
        gc.disable()
    buckets = array('q', bytes(8 * 10001))
    worst, count = 0.0, 0
    last = now()
    end = last + seconds
    while last < end:
        t = now()
        gap = t - last
        if gap > worst:
            worst = gap
        buckets[min(int(gap * 1e5), 10000)] += 1
        count += 1
        last = t
    gc.enable()
    seen, p999 = 0, 0
    for p999, n in enumerate(buckets):
        seen += n
        if seen >= count * 0.999:
            break
    print('stall %.3f %.3f' % (worst * 1e3, p999 * 1e-2))


def full_collection():
    """Prints how long a full cyclic collection holds the interpreter."""
    times = []
    for _ in range(5):
        started = now()
        gc.collect()
        times.append(now() - started)
    print('collection %.3f' % (min(times) * 1e3))
'''


def report(what: str, value: float, unit: str = 'ms', target: str = '') -> None:
    print(f'{what:<58} {value:10.2f} {unit:<3} {target}')


def cpu_seconds(pid: int) -> float:
    """User and system CPU time process *pid* has used (Linux)."""
    fields = Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def busy_job_stall(client: ScriptServerClient, seconds: float, during=None,
                   collect: bool = True):
    """Run busy_stalls; call *during* while it runs; return (max, p99.9) ms."""
    mark = len(client.events)
    job, = client.call('ss_submit', {'source': f'busy_stalls({seconds}, {collect})'})
    client.wait_for(lambda n, d: n == 'ss_job' and d['id'] == job['id']
                    and d['state'] == 'running', 30, mark)
    if during:
        during()
    _, message = client.wait_for(lambda n, d: n == 'message'
                                 and d[3].startswith('stall'), 60, mark)
    worst, p999 = map(float, message[3].split()[1:])
    return worst, p999


def main() -> None:
    print(f'# bench_catalog_daemon on {os.cpu_count()} cores, {time.ctime()}')
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / 'commands'
        folder.mkdir()
        for n in range(FILES):
            (folder / f'group{n:04d}.py').write_text(TEMPLATE.format(n=n))
        (folder / 'busy.py').write_text(BUSY_COMMAND)
        instance = Instance(datadir=Path(tmp) / 'data', daemon_port=free_port(),
                            cache_port=free_port(), timescale=20,
                            command_folders=[REPO / 'commands', folder])
        started = time.perf_counter()
        servers = ServerProcesses(instance, allow_root=os.geteuid() == 0)
        servers.start(timeout=300)
        try:
            report('daemon start with 1,000 command files', time.perf_counter() - started, 's')
            report('  CPU time the daemon took to start',
                   cpu_seconds(servers.procs['daemon'].pid), 's',
                   '(less dependent on the load)')
            client = ScriptServerClient().login(instance.host, instance.daemon_port,
                                                'user', servers.passwords['user'])
            times, times_parsed = [], []
            for _ in range(20):
                t0 = time.perf_counter()
                text = client.call('ss_catalog')
                times.append(time.perf_counter() - t0)
                reply = json.loads(text)
                times_parsed.append(time.perf_counter() - t0)
            print(f"catalog: {len(reply['commands'])} commands, "
                  f"{len(text) / 1e6:.2f} MB of JSON")
            report('ss_catalog round trip p50', statistics.median(times) * 1e3,
                   'ms', '(target <= 20 ms)')
            report('ss_catalog round trip + json.loads p50',
                   statistics.median(times_parsed) * 1e3, 'ms')

            latencies = []
            for i in range(SAVES):
                path = folder / f'group{i:04d}.py'
                mark = len(client.events)
                path.write_text(TEMPLATE.format(n=i).replace(
                    'Positions the choppers', f'Positions (edit {i}) the choppers'))
                saved = time.perf_counter()
                client.wait_for(lambda n, d: n == 'ss_catalog', 10, mark)
                latencies.append(time.perf_counter() - saved)
            latencies.sort()
            report('save -> ss_catalog event p50', statistics.median(latencies) * 1e3,
                   'ms', '(target <= 500 ms)')
            report('save -> ss_catalog event max', latencies[-1] * 1e3, 'ms')

            baseline = busy_job_stall(client, 3)

            def edit_many():
                for i in range(50):
                    (folder / f'group{100 + i:04d}.py').write_text(
                        TEMPLATE.format(n=100 + i) + f'\n# edit {time.time()}\n')
                    time.sleep(0.02)

            changing = busy_job_stall(client, 3, edit_many)
            quiet_nogc = busy_job_stall(client, 3, collect=False)
            changing_nogc = busy_job_stall(client, 3, edit_many, collect=False)
            mark = len(client.events)
            client.call('ss_submit', {'source': 'full_collection()'})
            _, message = client.wait_for(lambda n, d: n == 'message'
                                         and d[3].startswith('collection'), 60, mark)
            report('full cyclic collection in the daemon (best of 5)',
                   float(message[3].split()[1]), 'ms', '(stalls every thread)')
            report('running job: longest stall, no file changes', baseline[0])
            report('running job: longest stall, 50 files changing', changing[0],
                   'ms', '(target <= 5 ms)')
            report('running job: p99.9 stall, 50 files changing', changing[1])
            report('  same, cyclic GC off in the job: no changes', quiet_nogc[0])
            report('  same, cyclic GC off in the job: 50 files changing',
                   changing_nogc[0], 'ms')
            client.disconnect()
        finally:
            servers.stop()


if __name__ == '__main__':
    sys.exit(main())
