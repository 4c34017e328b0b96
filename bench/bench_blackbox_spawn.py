"""Start-up cost of a black-box job against a bare Python spawn (prints figures).

Run: .venv/bin/python bench/bench_blackbox_spawn.py

"First line" is the time from just before `BlackBoxRun.start` (or
`subprocess.Popen`) to the child running its first line, which prints
``time.monotonic()`` (the same clock in both processes). "Whole run" is
start to the end of ``wait()`` for an empty script: spawn, monitor threads,
reaping and removing the temporary file. Also: how long the `start` call
itself takes (the caller's thread is blocked that long). Target: black-box first line p50
<= 2x the bare spawn. Runs alternate, so drift hits both alike.
"""

import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from nicos_scriptserver.runner import BlackBoxRun

RUNS = 30
WARMUP = 3
FIRST_LINE = 'import time; print(repr(time.monotonic()))'


def bare_first_line(env):
    begin = time.monotonic()
    proc = subprocess.Popen([sys.executable, '-c', FIRST_LINE], env=env,
                            stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
    child_time = float(proc.stdout.readline())
    proc.stdout.close()
    proc.wait()
    return child_time - begin


def blackbox_first_line(env, cwd):
    seen = threading.Event()
    lines = []

    def on_output(stream, text):
        lines.append(text)
        seen.set()

    run = BlackBoxRun(FIRST_LINE + '\n', cwd=cwd, env=env, on_output=on_output)
    begin = time.monotonic()
    run.start()
    returned = time.monotonic()
    seen.wait(10)
    run.wait(10)
    return float(lines[0]) - begin, returned - begin


def bare_whole_run(env):
    begin = time.monotonic()
    subprocess.run([sys.executable, '-c', 'pass'], env=env, check=True,
                   stdin=subprocess.DEVNULL)
    return time.monotonic() - begin


def blackbox_whole_run(env, cwd):
    begin = time.monotonic()
    run = BlackBoxRun('pass\n', cwd=cwd, env=env)
    run.start()
    assert run.wait(10).ok
    return time.monotonic() - begin


def report(what, bare, blackbox, target=None):
    bare_p50 = statistics.median(bare) * 1e3
    box_p50 = statistics.median(blackbox) * 1e3
    ratio = box_p50 / bare_p50
    verdict = ''
    if target is not None:
        verdict = '  (target <= %gx: %s)' % (
            target, 'target met' if ratio <= target else 'TARGET MISSED')
    print(f'{what:<12} bare p50 {bare_p50:7.2f} ms   black-box p50 '
          f'{box_p50:7.2f} ms   ratio {ratio:4.2f}x{verdict}')


def main():
    env = dict(os.environ)
    with tempfile.TemporaryDirectory() as cwd:
        for measure in (bare_first_line, bare_whole_run):
            for _ in range(WARMUP):
                measure(env)
        for _ in range(WARMUP):
            blackbox_first_line(env, cwd)
            blackbox_whole_run(env, cwd)
        samples = {name: [] for name in ('bare1', 'box1', 'call', 'bare', 'box')}
        for _ in range(RUNS):
            samples['bare1'].append(bare_first_line(env))
            first_line, call = blackbox_first_line(env, cwd)
            samples['box1'].append(first_line)
            samples['call'].append(call)
            samples['bare'].append(bare_whole_run(env))
            samples['box'].append(blackbox_whole_run(env, cwd))
    print(f'{RUNS} runs each, {sys.executable}')
    report('first line', samples['bare1'], samples['box1'], target=2)
    report('whole run', samples['bare'], samples['box'])
    print(f'BlackBoxRun.start() returns after p50 '
          f'{statistics.median(samples["call"]) * 1e3:.2f} ms')


if __name__ == '__main__':
    main()
