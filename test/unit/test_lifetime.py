"""Children that arm their parent-death signal themselves (`lifetime`),
so that they can be spawned without a ``preexec_fn`` (see its docstring)."""

import os
import signal
import subprocess
import sys
import time

from nicos_scriptserver.runner.lifetime import PARENT_DEATH_ENV, \
    parent_death_env

CHILD = ('import os, sys, time\n'
         'from nicos_scriptserver.runner.lifetime import arm_from_env\n'
         'arm_from_env()\n'
         'print(os.getpid(), os.environ.get(%r), flush=True)\n'
         'time.sleep(60)\n' % PARENT_DEATH_ENV)

# Spawns CHILD as the dry runs are spawned (no preexec_fn), then waits.
MIDDLE = ('import signal, subprocess, sys, time\n'
          'from nicos_scriptserver.runner.lifetime import parent_death_env\n'
          'subprocess.Popen([sys.executable, "-c", sys.argv[1]],\n'
          '                 env=dict(__import__("os").environ,\n'
          '                          **parent_death_env(signal.SIGKILL)))\n'
          'time.sleep(60)\n')


def gone(pid: int) -> bool:
    """Whether *pid* has ended (a zombie nobody reaps counts as ended)."""
    try:
        with open(f'/proc/{pid}/stat') as stat:
            return stat.read().rsplit(')', 1)[1].split()[0] in 'ZX'
    except FileNotFoundError:
        return True


def test_a_child_that_armed_itself_dies_with_its_parent():
    middle = subprocess.Popen([sys.executable, '-c', MIDDLE, CHILD],
                              stdout=subprocess.PIPE, text=True)
    try:
        pid, inherited = middle.stdout.readline().split()
        pid = int(pid)
        # Its own children would not get the signal of its parent.
        assert inherited == 'None'
        assert not gone(pid)
    finally:
        middle.kill()
        middle.wait()
    deadline = time.monotonic() + 30
    while not gone(pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    if not gone(pid):
        os.kill(pid, signal.SIGKILL)
        raise AssertionError('the child outlived its parent')


def test_a_child_whose_parent_died_before_it_armed_exits_at_once():
    # As if the parent that set the variable had died: the child's parent
    # is not the one named.
    env = dict(os.environ, **parent_death_env(signal.SIGKILL))
    env[PARENT_DEATH_ENV] = f'{os.getpid() + 1_000_000} {signal.SIGKILL}'
    done = subprocess.run([sys.executable, '-c', CHILD], env=env,
                          capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout) == (1, '')
