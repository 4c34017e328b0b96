"""The bridge of black-box and isolated jobs (prints figures; not a test).

Run: PYTHONPATH=$PWD .venv/bin/python bench/bench_bridge.py   (about 30 s)

1. Round trip of a bridged call that does nothing: a black-box job in a
   real daemon reads a virtual device (``sample_x.read(0)``) 3000 times
   and times each call in the child. Target: p50 <= 0.3 ms, p99 <= 1 ms.
2. Start of a bridged child against a bare ``python -c pass``: from just
   before the spawn to the child's first line of script (after the
   daemon's welcome), and the whole run of an empty script. The daemon
   side is played by this process over the same socket pair (a welcome
   with the demo's 40 names). Target: first line p50 <= 2x the bare spawn.
3. ``pause_point()`` of an isolated job with no pause wanted, in the
   child, 200000 calls. Target: <= 20 us each.
"""

import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from nicos_scriptserver.clients.daemonclient import ScriptServerClient
from nicos_scriptserver.instance.config import Instance
from nicos_scriptserver.runner import BlackBoxRun
from nicos_scriptserver.runner.bridgewire import encode
from nicos_scriptserver.runner.childenv import child_env
from nicos_scriptserver.supervisor.processes import (ServerProcesses,
                                                     free_instance_ports)

CALLS = 3000
RUNS, WARMUP = 30, 3
PAUSE_POINTS = 200000
FIRST_LINE = 'import time; print(repr(time.monotonic()))'
WELCOME = {'commands': ['move', 'maw', 'wait', 'read', 'status', 'stop',
                        'count', 'sleep', 'printinfo', 'set_ei', 'get_ei',
                        'measure', 'move_sample', 'set_temperature',
                        'scan_temperature', 'pause_point', 'progress',
                        'step'],
           'devices': [f'dev{n}' for n in range(22)], 'isolated': False}

ROUND_TRIP_JOB = f'''
import time
times = []
for _ in range({CALLS}):
    start = time.perf_counter()
    sample_x.read(0)
    times.append(time.perf_counter() - start)
times.sort()
print('round trip', times[len(times) // 2], times[len(times) * 99 // 100],
      times[-1])
'''

PAUSE_POINT_JOB = f'''
import time
start = time.perf_counter()
for _ in range({PAUSE_POINTS}):
    pause_point()
print('pause_point', (time.perf_counter() - start) / {PAUSE_POINTS})
'''


def verdict(value, target):
    return 'target met' if value <= target else 'TARGET MISSED'


def round_trip() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        instance = Instance(datadir=Path(tmp), **free_instance_ports(),
                            timescale=20.0)
        processes = ServerProcesses(instance,
                                    allow_root=os.geteuid() == 0).start()
        try:
            client = ScriptServerClient().login(
                instance.host, instance.daemon_port, 'user',
                processes.passwords['user'])
            job, = client.call('ss_submit', {'kind': 'blackbox',
                                             'source': ROUND_TRIP_JOB})
            _, data = client.wait_for(
                lambda n, d: n == 'ss_output' and d['id'] == job['id']
                and 'round trip' in d['text'], timeout=120)
            p50, p99, worst = (float(v) * 1e3 for v in data['text'].split()[2:])
            print(f'bridged read round trip ({CALLS} calls): p50 {p50:.3f} ms '
                  f'({verdict(p50, 0.3)}: <= 0.3), p99 {p99:.3f} ms '
                  f'({verdict(p99, 1.0)}: <= 1), max {worst:.3f} ms')
            client.disconnect()
        finally:
            processes.stop()


def bridged_run(script: str, welcome: dict, on_output=None) -> BlackBoxRun:
    """A started bridged child, with this process as its daemon."""
    ours, theirs = socket.socketpair()
    run = BlackBoxRun(script, cwd=tempfile.gettempdir(), env=child_env(),
                      on_output=on_output,
                      launcher=['-m', 'nicos_scriptserver.runner.bridgechild',
                                str(theirs.fileno())],
                      pass_fds=[theirs.fileno()])
    run.start()
    theirs.close()
    ours.sendall(encode({'welcome': welcome}))
    run.channel = ours
    return run


def bridged_first_line():
    lines, seen = [], threading.Event()

    def on_output(stream, text):
        lines.append(text)
        seen.set()
    begin = time.monotonic()
    run = bridged_run(FIRST_LINE + '\n', WELCOME, on_output)
    seen.wait(10)
    run.wait(10)
    run.channel.close()
    return float(lines[0]) - begin


def bare_first_line():
    begin = time.monotonic()
    proc = subprocess.Popen([sys.executable, '-c', FIRST_LINE],
                            env=child_env(), stdout=subprocess.PIPE,
                            stdin=subprocess.DEVNULL)
    child_time = float(proc.stdout.readline())
    proc.stdout.close()
    proc.wait()
    return child_time - begin


def bridged_whole_run():
    begin = time.monotonic()
    run = bridged_run('pass\n', WELCOME)
    assert run.wait(10).ok
    run.channel.close()
    return time.monotonic() - begin


def bare_whole_run():
    begin = time.monotonic()
    subprocess.run([sys.executable, '-c', 'pass'], env=child_env(),
                   check=True, stdin=subprocess.DEVNULL)
    return time.monotonic() - begin


def start_up() -> None:
    for what, bare, bridged, target in (
            ('first line', bare_first_line, bridged_first_line, 2.0),
            ('whole run', bare_whole_run, bridged_whole_run, None)):
        times = {bare: [], bridged: []}
        for number in range(WARMUP + RUNS):
            for measure in (bare, bridged):   # alternate: drift hits both
                value = measure()
                if number >= WARMUP:
                    times[measure].append(value)
        bare_p50 = statistics.median(times[bare]) * 1e3
        bridged_p50 = statistics.median(times[bridged]) * 1e3
        ratio = bridged_p50 / bare_p50
        note = f' ({verdict(ratio, target)}: <= {target:g}x)' if target else ''
        print(f'start, {what:<10}: bare p50 {bare_p50:6.2f} ms, bridged p50 '
              f'{bridged_p50:6.2f} ms, ratio {ratio:4.2f}x{note}')


def pause_point() -> None:
    lines = []
    run = bridged_run(PAUSE_POINT_JOB, dict(WELCOME, isolated=True),
                      lambda stream, text: lines.append(text))
    assert run.wait(60).ok, lines
    run.channel.close()
    seconds = float(''.join(lines).split()[1])
    print(f'pause_point() with no pause wanted: {seconds * 1e6:.2f} us '
          f'({verdict(seconds, 20e-6)}: <= 20 us)')


if __name__ == '__main__':
    start_up()
    pause_point()
    round_trip()
