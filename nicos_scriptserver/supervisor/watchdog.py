"""Keep the services of a `ServerProcesses` running: start a process that
exited again after a delay (`backoff`), and give up when it keeps failing.

Only the crashed process restarts; the others serve meanwhile and find it
again by themselves: the daemon reconnects to a restarted cache (NICOS's
cache client does), the proxy answers "the daemon is not reachable" while
the daemon is down and logs in again in the background, and a restarted
daemon holds the queue if a job was cut short (its crash recovery). A
restarted proxy makes a new token and publishes it, as at every start.

The loop runs in the thread that started the services and restarts them
from there: their parent-death signal is tied to that thread.
"""

import logging
import signal
import threading
import time
from pathlib import Path
from typing import Dict

from nicos_scriptserver.supervisor.backoff import Backoff, RestartPolicy
from nicos_scriptserver.supervisor.processes import ServerProcesses, \
    StartupError, open_private_log

log = logging.getLogger('nicos_scriptserver.supervisor')

POLL_INTERVAL = 0.2


def exit_reason(returncode: int) -> str:
    """How a process ended, for people: its status, or the signal."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = 'an unknown signal'
        return f'was killed by signal {-returncode} ({name})'
    return f'exited with status {returncode}'


def setup_log(logdir: Path) -> None:
    """Log to stderr and to *logdir*/supervisor.log (this account's only)."""
    fmt = logging.Formatter('%(asctime)s %(levelname)s %(message)s')
    log.setLevel(logging.INFO)
    log.propagate = False
    for handler in (logging.StreamHandler(open_private_log(
            logdir / 'supervisor.log', 'a')), logging.StreamHandler()):
        handler.setFormatter(fmt)
        log.addHandler(handler)


class Watchdog:
    """Restarts the processes of *servers* that exit, each with its own
    `Backoff` under *policy*."""

    def __init__(self, servers: ServerProcesses,
                 policy: RestartPolicy = RestartPolicy()):
        self.servers = servers
        self.policy = policy
        self.backoffs = {name: Backoff(policy) for name in servers.procs}
        #: Crashed processes and when to start them again.
        self.due: Dict[str, float] = {}

    def run(self, stop: threading.Event) -> int:
        """Watch until *stop* is set (0) or a process keeps failing (1)."""
        while not stop.wait(POLL_INTERVAL):
            for name in list(self.servers.procs):
                if not self._check(name):
                    return 1
        return 0

    def _check(self, name: str) -> bool:
        """Restart process *name* if due, or schedule its restart if it
        ended; False if it failed too often."""
        now = time.monotonic()
        if name in self.due:
            if now >= self.due[name]:
                del self.due[name]
                return self._restart(name)
            return True
        returncode = self.servers.procs[name].poll()
        if returncode is None:
            return True
        return self._schedule(name, exit_reason(returncode),
                              now - self.servers.started[name])

    def _schedule(self, name: str, reason: str, ran_for: float) -> bool:
        delay = self.backoffs[name].next_delay(ran_for)
        out = self.servers.instance.logdir / f'{name}.out'
        if delay is None:
            log.error('the %s %s after %.1f s; it failed %d times in a row, '
                      'no restart running for %.0f s: giving up, stopping '
                      'everything (see %s)', name, reason, ran_for,
                      self.policy.give_up_after, self.policy.healthy_after, out)
            return False
        log.warning('the %s %s after %.1f s; restarting it in %.1f s '
                    '(failure %d in a row; see %s)', name, reason, ran_for,
                    delay, self.backoffs[name].failures, out)
        self.due[name] = time.monotonic() + delay
        return True

    def _restart(self, name: str) -> bool:
        try:
            proc = self.servers.respawn(name)
        except StartupError as err:
            return self._schedule(name, f'could not be started: {err}', 0.0)
        log.info('restarted the %s (pid %d)', name, proc.pid)
        return True
