"""kill -9 rounds spread over the processes of a server run by the real
supervisor (prints figures).

Run: .venv/bin/python bench/bench_kill_rounds.py [ROUNDS]   (default 1000;
KILL_SEED=n for another sequence; Ctrl-C or SIGTERM stops it and prints
the rounds done)

The server is ``python -m nicos_scriptserver.supervisor.serve`` (as
``make demo`` starts it), which restarts a crashed cache, daemon or proxy.
Each round is test/integration/crashloop.py's (a long job runs, a client
changes the waiting jobs as fast as it can, at a random moment 0-400 ms in
something is SIGKILLed), the victim in turn:

- daemon: the supervisor restarts it; the long job is interrupted;
- proxy (the client goes through it; the PV server with the token runs
  inside it under the supervisor, so this kills that too): restarted, the
  job runs on;
- dry run: the process of a dry run of the jobs being submitted (forked
  by the daemon's dry-run fork server); the job runs on, the dry runs
  start again;
- black box: the child of a running black-box job; the job fails.

Every round checks that the waiting list is what the client was told, in
order, nothing duplicated (crashloop's zero-loss check). Printed per
victim: rounds, losses, recovery time p50/p99 (kill to the next request
served; for the dry run, to the next dry run finished; for the black
box, to the job's end recorded). For the proxy also: kill to its first
answer to a new connection. Its recovery is mostly the client's: the
request in flight when the proxy died is given up after the client's
5 s timeout, as the IBEX GUI gives up after its own; then the client
reads the new token and logs in again.
"""

import os
import random
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))   # this checkout's package, not an installed one
sys.path.insert(0, str(HERE.parent / 'test'))
sys.path.insert(0, str(HERE.parent / 'test' / 'integration'))

from crashloop import crash_round  # noqa: E402
from test_self_healing import (BACK_WITHIN, Supervisor, proxy_writer,  # noqa: E402
                               reconnect)
from test_proxy import credentials  # noqa: E402
from waiting import wait_until  # noqa: E402
from _daemon_bench import pct  # noqa: E402

from nicos_scriptserver.clients.daemonclient import ServerError  # noqa: E402
from nicos_scriptserver.clients.proxyclient import ProxyClient, ProxyError  # noqa: E402

VICTIMS = ('daemon', 'proxy', 'dry run', 'black box')
#: More waiting jobs than this are removed between rounds.
WAITING_LIMIT = 500
#: Seconds a service runs before its next crash is a first one again
#: (restarted after 0.5 s); a service is killed again every 4 rounds.
HEALTHY_AFTER = 5
# Runs until killed; its own dry run (SCRIPTSERVER_DRY_RUN=1) ends at once.
BLACK_BOX = {'kind': 'blackbox', 'name': 'long black box',
             'source': 'import os, time\n'
                       'if os.environ.get("SCRIPTSERVER_DRY_RUN") != "1":\n'
                       '    time.sleep(3600)\n'}


def children(supervisor: Supervisor, marker: str) -> list:
    """The daemon's child processes with *marker* in their command line."""
    found = []
    for proc in supervisor.service('daemon').children(recursive=True):
        try:
            if any(marker in part for part in proc.cmdline()):
                found.append(proc)
        except psutil.NoSuchProcess:
            pass
    return found


def dry_runs(supervisor: Supervisor) -> list:
    """The dry runs' processes: those the daemon's fork server forked (it
    has the same command line)."""
    forks = children(supervisor, 'dryrunforkserver')
    servers = {proc.pid for proc in forks}
    found = []
    for proc in forks:
        try:
            if proc.ppid() in servers:
                found.append(proc)
        except psutil.NoSuchProcess:
            pass
    return found


class Rounds:
    def __init__(self, supervisor: Supervisor):
        self.supervisor = supervisor
        self.daemon_client = supervisor.client('user')
        self.proxy_client = proxy_writer(supervisor)
        self.killed_at = 0.0
        self.recovery = {victim: [] for victim in VICTIMS}
        self.proxy_answered = []   # kill -> the restarted proxy answers
        self._answer_timer = None   # times it, from the proxy's kill on
        self.missed = Counter()   # rounds whose victim did not exist then
        self.relogins = 0
        self.clears = 0
        self.last_refusal = ''

    def kill(self, victim: str):
        def kill() -> None:
            self.killed_at = time.monotonic()
            if victim in ('daemon', 'proxy'):
                self.supervisor.service(victim).kill()
                if victim == 'proxy':
                    # From the kill on: the client's request in flight
                    # meanwhile waits for its own timeout (5 s).
                    self._answer_timer = threading.Thread(target=self._time_proxy_answer)
                    self._answer_timer.start()
                return
            find = dry_runs if victim == 'dry run' else \
                (lambda supervisor: children(supervisor, 'blackbox-'))
            try:
                procs = wait_until(lambda: find(self.supervisor), 10)
            except AssertionError:
                self.missed[victim] += 1
                return
            for proc in procs:
                proc.kill()
        return kill

    def restart(self, victim: str):
        def restart():
            if victim == 'daemon':
                self.daemon_client = reconnect(self.supervisor)
                client = self.daemon_client
            elif victim == 'proxy':
                self._answer_timer.join()
                self.proxy_client.close()
                self.proxy_client = wait_until(self._proxy_login, BACK_WITHIN)
                client = self.proxy_client
            else:
                client = self.daemon_client
            if victim == 'black box':
                # Recovered: the job's end (failed) is recorded.
                wait_until(lambda: client.call('ss_queue')['current'] is None, BACK_WITHIN)
            if victim == 'dry run':
                # First in line, so its dry run is the next one.
                job, = client.call('ss_submit', {'source': 'sleep(0.01)', 'name': 'probe'},
                                   'top')
                wait_until(lambda: (client.call('ss_job', job['id'])['estimate']
                                    or {}).get('state') == 'ok', BACK_WITHIN)
                client.call('ss_remove', job['id'])
            self.recovery[victim].append(time.monotonic() - self.killed_at)
            return client
        return restart

    def _time_proxy_answer(self) -> None:
        wait_until(self._proxy_answers, BACK_WITHIN)
        self.proxy_answered.append(time.monotonic() - self.killed_at)

    def _proxy_answers(self) -> bool:
        """Whether the proxy answers a new connection (refusing it, as it
        is not logged in, is an answer)."""
        client = ProxyClient(self.supervisor.instance.host,
                             self.supervisor.instance.proxy_port, timeout=0.2)
        try:
            client.call('getstatus')
        except ProxyError as err:
            return str(err).startswith('not logged in')
        finally:
            client.close()
        return True

    def _proxy_serves(self) -> bool:
        try:
            # Forwarded to the daemon (getstatus may be answered from the
            # proxy's own mirror while its link is still down).
            self.proxy_client.call('ss_queue')
            return True
        except ProxyError as err:
            self.last_refusal = str(err)
        if self.last_refusal.startswith('not logged in'):
            # A request that waited longer than the client's timeout for the
            # proxy's link to the restarted daemon: the client then opened a
            # new socket, a new connection to the proxy. The IBEX GUI logs
            # in again then, and so does this client.
            fresh = self._proxy_login()
            if fresh:
                self.relogins += 1
                self.proxy_client.close()
                self.proxy_client = fresh
        return False

    def _proxy_login(self):
        try:
            user, token = credentials(self.supervisor)
            if not token:   # the restarted proxy has not published it yet
                return None
            client = ProxyClient(self.supervisor.instance.host,
                                 self.supervisor.instance.proxy_port)
            client.login(user, token)
            client.call('getstatus')
            return client
        except (ProxyError, OSError, AssertionError, KeyError):
            return None

    def run(self, victim: str, rng: random.Random):
        # The proxy's link to a restarted daemon may still be coming back.
        try:
            wait_until(self._proxy_serves, BACK_WITHIN)
        except AssertionError:
            raise AssertionError(f'the proxy did not serve in {BACK_WITHIN} s; '
                                 f'it said last: {self.last_refusal}') from None
        client = self.proxy_client if victim == 'proxy' else self.daemon_client
        options = {'daemon': {},
                   'proxy': {'interrupts': False},
                   'dry run': {'interrupts': False, 'breaks': False},
                   'black box': {'interrupts': False, 'breaks': False,
                                 'long_job': BLACK_BOX, 'ends_as': 'failed'}}[victim]
        result, client = crash_round(client, self.kill(victim), self.restart(victim),
                                     rng, **options)
        if victim == 'proxy':
            self.proxy_client = client
        else:
            self.daemon_client = client
        # Each round leaves the jobs it queued; thousands of them would make
        # later rounds measure a queue no instrument has.
        if len(self.daemon_client.call('ss_queue')['waiting']) > WAITING_LIMIT:
            self.daemon_client.call('ss_clear')
            self.clears += 1
        return result


def main(rounds: int) -> int:
    # Also when started in the background (which ignores SIGINT), and
    # by kill: stop and print the rounds done.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.default_int_handler)
    seed = int(os.environ.get('KILL_SEED', time.time()))
    rng = random.Random(seed)
    done, lost, acked = Counter(), Counter(), Counter()
    problems = []
    begun = time.monotonic()
    # Kept when a round fails: the services' logs say why.
    tmp = Path(tempfile.mkdtemp(prefix='kill-rounds-'))
    # Each service is killed again a few rounds later. With the default
    # minute of running before a crash counts as a new one, that looks
    # like a crash loop: the restart delay grows to its 30 s cap (which
    # the recovery times would measure) and the supervisor gives up at
    # the 8th. Here a run of HEALTHY_AFTER seconds is healthy, and the
    # supervisor never gives up.
    supervisor = Supervisor(tmp / 'data', '--give-up-after', str(rounds + 1),
                            '--healthy-after', str(HEALTHY_AFTER))
    try:
        bench = Rounds(supervisor)
        for index in range(rounds):
            victim = VICTIMS[index % len(VICTIMS)]
            try:
                result = bench.run(victim, rng)
            except (AssertionError, ProxyError, ServerError, OSError) as err:
                # Not back in time: a failure of its own, with what the
                # supervisor said last.
                problems.append(f'round {index} ({victim}): not back: {err!r}; '
                                f'supervisor: {"".join(supervisor.lines[-5:])}')
                break
            except KeyboardInterrupt:
                print(f'stopped at round {index} (SIGINT or SIGTERM); the rounds before it:')
                break
            done[victim] += 1
            acked[victim] += result.ops_acknowledged
            lost[victim] += len(result.lost)
            problems += [f'round {index} ({victim}): {p}' for p in result.lost]
    finally:
        supervisor.close()
    if problems:
        problems.append(f'the services\' logs: {tmp / "data" / "log"}')
    else:
        shutil.rmtree(tmp)
    took, rounds_run = time.monotonic() - begun, sum(done.values())
    print(f'seed {seed}: {rounds_run} of {rounds} kill -9 rounds through the supervisor in '
          f'{took:.0f} s ({took / max(rounds_run, 1):.2f} s a round; 1,000 rounds: about '
          f'{took / max(rounds_run, 1) * 1000 / 60:.0f} min)')
    for victim in VICTIMS:
        times = bench.recovery[victim]
        print(f'  {victim:9}: {done[victim]:4} rounds, {acked[victim]:6} changes acknowledged, '
              f'{lost[victim]} lost (target 0), no victim found {bench.missed[victim]}, '
              f'recovery p50 {pct(times, 50):.2f} s, p99 {pct(times, 99):.2f} s')
    print(f'  the proxy answered again (a new connection) after p50 '
          f'{pct(bench.proxy_answered, 50):.2f} s, p99 {pct(bench.proxy_answered, 99):.2f} s '
          f'(its recovery above: the client\'s request in flight times out after 5 s, '
          f'then it reads the new token and logs in)')
    print(f'  the proxy client found itself logged out (a request timed out) and logged '
          f'in again {bench.relogins} times; the waiting list was cleared {bench.clears} '
          f'times (over {WAITING_LIMIT} jobs)')
    for problem in problems:
        print(problem)
    return 1 if problems else 0


if __name__ == '__main__':
    sys.exit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000))
