"""A dry-run child that dies before it connects must not hang the dry run.

The worker sent the device values before the child had connected; a
ZeroMQ send with no peer waits for one, so a child killed during its start
blocked that worker, and with it every later dry run (and, with the policy
'hold', every job start), for good.
"""

import subprocess
import sys
import threading

import pytest

from nicos_scriptserver.daemon.simulation import DryRunProcess

pytestmark = pytest.mark.integration


class DiesAtOnce(DryRunProcess):
    """A dry run whose child exits before it connects, as one SIGKILLed
    during its start does."""

    def _spawn(self, address, stderr):
        return subprocess.Popen([sys.executable, '-c', 'raise SystemExit(9)'],
                                stdin=subprocess.DEVNULL)


def test_a_child_that_dies_before_it_connects_ends_the_dry_run():
    dry_run = DiesAtOnce('x = 1', [], 'user', {}, time_limit=60.0)
    outcome = []
    worker = threading.Thread(target=lambda: outcome.append(dry_run.run()),
                              daemon=True)
    worker.start()
    worker.join(20)
    assert outcome, 'the dry run still waits for a child that is gone'
    assert outcome[0].exit_code == 9 and outcome[0].end is None
