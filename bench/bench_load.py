"""Many watching clients and a slow reader while jobs report progress often
(prints figures; not a test).

Run: .venv/bin/python bench/bench_load.py   (about 3 minutes)

A job reports progress 20 times a second, stamping each report with the
time it was made; 50 clients (in 5 processes) log in at the daemon,
unmask the script server's events and measure when each report reaches
them. Phases of 10 s: the 50 alone; the 50 plus a client that never reads
its event connection (a GUI frozen on a slow link); the 50 alone again;
the 50 plus 50 clients polling the proxy's ``ss_queue`` every 100 ms; the
50 alone twice more, to see whether memory levels off. Figures: event
latency p50/p99/max per phase, watchers that lost their connection (on
stderr), the daemon's and proxy's RSS after each phase. Targets: the slow
reader does not delay the others; memory does not grow without bound;
issue #20's goals, printed next to the figures: an event reaches the 50
watchers with p99 at most 20 ms, and the daemon stays at most 250 MiB with
them.
"""

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _daemon_bench import gather_latencies, pct  # noqa: E402
from bench_proxy import read_token  # noqa: E402

from nicos_scriptserver.instance.config import Instance  # noqa: E402
from nicos_scriptserver.supervisor.processes import ServerProcesses, free_instance_ports  # noqa: E402

ALLOW_ROOT = os.geteuid() == 0
WATCHERS, PROCESSES, PHASE = 50, 5, 10.0
#: Issue #20's goals: event latency to the watchers (p99), daemon RSS.
GOAL_P99_MS, GOAL_DAEMON_MIB = 20, 250

PROGRESS_JOB = '''
import time
for i in range(100000):
    progress((i % 1000) / 1000, repr(time.time()))
    sleep(0.05)
'''

# Watches ss_job progress events for a given time; prints latencies (s).
WATCHER = '''
import json, sys, threading, time
from nicos_scriptserver.clients.daemonclient import ScriptServerClient
port, password, count, seconds = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
lat, lock = [], threading.Lock()
class Watcher(ScriptServerClient):
    def signal(self, name, *args):
        if name == 'ss_job' and args and args[0].get('progress_message'):
            with lock:
                lat.append(time.time() - float(args[0]['progress_message']))
clients = [Watcher(keep_events=False).login('127.0.0.1', port, 'guest', password)
           for _ in range(count)]
print('ready', flush=True)
sys.stdin.readline()
with lock: lat.clear()
time.sleep(seconds)
with lock: print(json.dumps(lat), flush=True)
lost = sum(not client.isconnected for client in clients)
print(f'{lost} of {count} watchers lost their connection', file=sys.stderr)
for client in clients: client.disconnect()
'''

# Polls the proxy like an IBEX GUI, 50 sockets at 10 Hz.
POLLERS = '''
import sys, time, zmq
from nicos_scriptserver.clients.proxyclient import ProxyClient
port, count, seconds = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
token = sys.stdin.readline().strip()
context = zmq.Context()
clients = [ProxyClient('127.0.0.1', port, context=context) for _ in range(count)]
for client in clients: client.login('scriptserver', token)
end = time.monotonic() + seconds
while time.monotonic() < end:
    for client in clients: client.call('ss_queue')
    time.sleep(0.1)
'''


def rss_mb(proc: psutil.Process) -> float:
    return proc.memory_info().rss / 2**20


def watch(inst: Instance, password: str, extra=None) -> list:
    procs = [subprocess.Popen([sys.executable, '-c', WATCHER, str(inst.daemon_port),
                               password, str(WATCHERS // PROCESSES), str(PHASE)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
             for _ in range(PROCESSES)]
    return gather_latencies(procs, extra)


def report(label: str, lat: list) -> None:
    if not lat:
        print(f'  {label:<42} no events arrived')
        return
    print(f'  {label:<42} p50 {pct(lat, 50) * 1e3:7.2f} ms  p99 {pct(lat, 99) * 1e3:7.2f} ms'
          f' (goal <= {GOAL_P99_MS} ms)  max {max(lat) * 1e3:7.1f} ms  ({len(lat)} events)')


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        inst = Instance(datadir=Path(tmp), **free_instance_ports(),
                        dry_run_policy='off')
        servers = ServerProcesses(inst, allow_root=ALLOW_ROOT, proxy=True).start()
        try:
            from nicos_scriptserver.clients.daemonclient import ScriptServerClient
            user = ScriptServerClient(keep_events=False).login(
                '127.0.0.1', inst.daemon_port, 'user', servers.passwords['user'])
            daemon = psutil.Process(servers.procs['daemon'].pid)
            proxy = psutil.Process(servers.procs['proxy'].pid)
            before = rss_mb(daemon), rss_mb(proxy)
            job, = user.call('ss_submit', {'source': PROGRESS_JOB, 'name': 'progress'})
            time.sleep(2)
            running = user.call('ss_job', job['id'])
            assert running['state'] == 'running', running
            guest = servers.passwords['guest']
            print(f'{WATCHERS} watchers, progress every 50 ms, {PHASE:.0f} s per phase')
            report('watchers alone', watch(inst, guest))
            print(f'    RSS daemon {rss_mb(daemon):.0f} MiB')
            readers = []
            report('with a client that never reads events',
                   watch(inst, guest, lambda: readers.append(
                       frozen_client(inst.daemon_port, guest))))
            print(f'    RSS daemon {rss_mb(daemon):.0f} MiB')
            report('watchers alone, again', watch(inst, guest))
            print(f'    RSS daemon {rss_mb(daemon):.0f} MiB')
            token = read_token(inst)
            pollers = []

            def start_pollers():
                proc = subprocess.Popen([sys.executable, '-c', POLLERS, str(inst.proxy_port),
                                         '50', str(PHASE + 5)], stdin=subprocess.PIPE, text=True)
                proc.stdin.write(token + '\n')
                proc.stdin.flush()
                pollers.append(proc)
                time.sleep(2)
            report('with 50 IBEX-like clients polling the proxy',
                   watch(inst, guest, start_pollers))
            for proc in pollers:
                proc.wait(60)
            print(f'    RSS daemon {rss_mb(daemon):.0f} MiB, proxy {rss_mb(proxy):.0f} MiB')
            # Python keeps freed memory: more rounds of the same load show
            # whether it levels off or keeps growing.
            for round_number in (3, 4):
                report(f'watchers alone, round {round_number}', watch(inst, guest))
                print(f'    RSS daemon {rss_mb(daemon):.0f} MiB, proxy {rss_mb(proxy):.0f} MiB')
            after = rss_mb(daemon), rss_mb(proxy)
            print(f'  RSS daemon {before[0]:.0f} -> {after[0]:.0f} MiB '
                  f'(goal <= {GOAL_DAEMON_MIB} MiB), '
                  f'proxy {before[1]:.0f} -> {after[1]:.0f} MiB')
            final = user.call('ss_job', job['id'])
            print(f"  the job is {final['state']}: {final['error']}")
        finally:
            servers.stop()


def frozen_client(port: int, password: str):
    """A client that logs in, unmasks every event and never reads them
    (the proxy's daemon link, so nothing drains its event socket)."""
    from nicos_scriptserver.proxy.classic import ALL_EVENTS
    from nicos_scriptserver.proxy.daemonlink import DaemonLink
    link = DaemonLink('127.0.0.1', port, 'guest', password)
    link.open()
    # DaemonLink masks every event: unmask them all, then never read.
    link.call('eventunmask', [sorted(ALL_EVENTS)])
    link.event_sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    return link


if __name__ == '__main__':
    main()
