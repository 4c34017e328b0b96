"""The watchdog's decisions, with stand-ins for the processes
(test/integration/test_self_healing.py runs the real ones)."""

import logging
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from nicos_scriptserver.supervisor.backoff import RestartPolicy
from nicos_scriptserver.supervisor.processes import StartupError
from nicos_scriptserver.supervisor.watchdog import Watchdog, exit_reason

FAST = RestartPolicy(first_delay=0.01, max_delay=0.02, give_up_after=3)


class Exited:
    """A process that has ended with *returncode*."""

    def __init__(self, returncode: int):
        self.returncode = returncode
        self.pid = 4242

    def poll(self) -> int:
        return self.returncode


class Servers:
    """`ServerProcesses` as the watchdog sees it: a daemon that ended, and
    a `respawn` that fails to start it (its data directory is full)."""

    def __init__(self):
        self.instance = SimpleNamespace(logdir=Path('/data/log'))
        self.procs = {'daemon': Exited(-9)}
        self.started = {'daemon': time.monotonic()}
        self.respawned = 0

    def respawn(self, name: str):
        self.respawned += 1
        raise StartupError('cannot write to the data directory /data: '
                           'No space left on device')


def test_a_restart_that_cannot_even_start_counts_as_a_failure(caplog):
    servers = Servers()
    caplog.set_level(logging.INFO, 'nicos_scriptserver.supervisor')
    assert Watchdog(servers, FAST).run(threading.Event()) == 1
    assert servers.respawned == 2
    lines = [record.getMessage() for record in caplog.records]
    assert 'killed by signal 9 (SIGKILL)' in lines[0]
    assert 'could not be started: cannot write' in lines[1]
    assert 'giving up' in lines[-1] and 'No space left' in lines[-1]


def test_a_stop_returns_0_without_restarting_anything():
    servers = Servers()
    stop = threading.Event()
    stop.set()
    assert Watchdog(servers, FAST).run(stop) == 0
    assert servers.respawned == 0


@pytest.mark.parametrize('returncode, said', [
    (1, 'exited with status 1'), (0, 'exited with status 0'),
    (-15, 'was killed by signal 15 (SIGTERM)'),
    (-200, 'was killed by signal 200 (an unknown signal)')])
def test_how_a_process_ended_is_said_plainly(returncode, said):
    assert exit_reason(returncode) == said
