"""Start a script server (cache, daemon and proxy) in the foreground.

Prints where to connect and how to log in, then keeps the services
running: one that crashes is started again (`watchdog`), and one that keeps
crashing stops everything. Ctrl-C or SIGTERM stops every process it
started.
"""

import argparse
import os
import signal
import sys
import threading
from pathlib import Path
from typing import List, Optional

from nicos_scriptserver.instance.accounts import secrets_path
from nicos_scriptserver.instance.config import REPO, Instance
from nicos_scriptserver.supervisor.backoff import RestartPolicy
from nicos_scriptserver.supervisor.processes import ServerProcesses, StartupError, port_open
from nicos_scriptserver.supervisor.watchdog import Watchdog, log, setup_log


def _banner(instance: Instance) -> str:
    """Where to connect and how to log in.

    No password: a password in a suggested command line ends up in the
    process list, which every local account can read, and in the shell's
    history; printed here, it ends up in terminal logs. NICOS's console
    client and GUI ask for it when the connect string has none.
    """
    host, port = instance.host, instance.daemon_port
    venv_bin = REPO / '.venv' / 'bin'
    return f"""
nicos-scriptserver is running the demo instrument.

  NICOS daemon   {host}:{port}   (loopback only; NICOS GUI, console, CLI)
  proxy          {instance.proxy_address}   (loopback only; IBEX GUI, NICOS protocol over ZeroMQ/JSON)
  proxy events   {host}:{instance.proxy_port + 1}   (its event socket, for clients logged in at the proxy)
  NICOS cache    {instance.cache_address}
  PVs            {instance.pv_prefix}USER, {instance.pv_prefix}TOKEN   (Channel Access on {host}:{instance.pv_port})
  data and logs  {instance.datadir}   (logs in {instance.logdir})

Log in as admin, user or guest (watch only). The passwords are in
  {secrets_path(instance.datadir)}
which only the account that started the server may read. The clients ask
for the password; never put it on a command line, where others see it.

Connect with the NICOS console client:
  INSTRUMENT=nicos_scriptserver.demo {venv_bin}/python \\
      {REPO}/.venv/nicos-root/nicos-3.12.2/bin/nicos-client user@{host}:{port}

Through the proxy, log in as the name on {instance.pv_prefix}USER with the
token on {instance.pv_prefix}TOKEN (a new token at every start; only the CA
users allowed by the access-security file, by default you, may read it):
  EPICS_CA_ADDR_LIST={host}:{instance.pv_port} EPICS_CA_AUTO_ADDR_LIST=NO {venv_bin}/python -c \
      "import epics; print(epics.caget('{instance.pv_prefix}TOKEN', as_string=True))"

Stop with Ctrl-C.
"""


def root_warning(euid: int, service_user: Optional[str],
                 secrets: Path) -> Optional[str]:
    """The one-line warning for running every service as root, if it applies."""
    if euid != 0 or service_user:
        return None
    return (f'warning: the daemon runs as root, so any job can read {secrets} '
            '(all passwords, admin\'s too); pass --service-user NAME (an '
            'unprivileged account, e.g. nobody) to run cache and daemon as NAME')


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """The command line (also of the systemd unit, tools/systemd/)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--data', type=Path, default=REPO / 'run' / 'demo',
                        help='data directory (default: run/demo in the repository)')
    parser.add_argument('--port', type=int, default=Instance.daemon_port,
                        help='daemon port (default %(default)s)')
    parser.add_argument('--cache-port', type=int, default=Instance.cache_port,
                        help='cache port (default %(default)s)')
    parser.add_argument('--proxy-port', type=int, default=Instance.proxy_port,
                        help='proxy port (default %(default)s, the IBEX GUI\'s; '
                        'its events on the next)')
    parser.add_argument('--pv-port', type=int, default=Instance.pv_port,
                        help='CA server port of the token PVs (default %(default)s)')
    parser.add_argument('--timescale', type=float, default=1.0,
                        help='speed factor of the demo devices (default 1)')
    parser.add_argument('--allow-root', action='store_true',
                        help='run the services as root (containers only)')
    parser.add_argument('--service-user', metavar='NAME',
                        help='started as root: run cache and daemon as this '
                        'unprivileged account (the proxy stays yours, and '
                        'alone reads the secrets file)')
    parser.add_argument('--token-reader', action='append', default=[],
                        metavar='NAME', help='CA user name that may read the '
                        'token PV, e.g. the IBEX GUI\'s account (repeatable; '
                        'default: the account running the proxy)')
    parser.add_argument('--give-up-after', type=int, metavar='N',
                        default=RestartPolicy.give_up_after,
                        help='stop everything when a service fails N times in '
                        'a row, none running for --healthy-after seconds '
                        '(default %(default)s)')
    parser.add_argument('--healthy-after', type=float, metavar='SECONDS',
                        default=RestartPolicy.healthy_after,
                        help='a service that ran this long before it failed '
                        'is restarted after the first, shortest delay again '
                        '(default %(default)s)')
    args = parser.parse_args(argv)
    if args.give_up_after < 1:
        parser.error('--give-up-after must be at least 1')
    if not args.healthy_after > 0:
        parser.error('--healthy-after must be more than 0 seconds')
    return args


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)

    instance = Instance(datadir=args.data.resolve(), daemon_port=args.port,
                        cache_port=args.cache_port, proxy_port=args.proxy_port,
                        pv_port=args.pv_port, timescale=args.timescale)
    for name, port, option in (('daemon', instance.daemon_port, 'port'),
                               ('cache', instance.cache_port, 'cache-port'),
                               ('proxy', instance.proxy_port, 'proxy-port'),
                               ('proxy\'s events', instance.proxy_port + 1,
                                'proxy-port')):
        if port_open(instance.host, port):
            print(f'port {port} for the {name} is in use: is a server already '
                  f'running? Choose another with --{option}.', file=sys.stderr)
            return 2
    if args.service_user and os.geteuid() != 0:
        print('--service-user needs the demo to be started as root',
              file=sys.stderr)
        return 2
    if args.allow_root:
        warning = root_warning(os.geteuid(), args.service_user,
                               secrets_path(instance.datadir))
        if warning:
            print(warning, file=sys.stderr)

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    servers = ServerProcesses(
        instance, allow_root=args.allow_root, proxy=True,
        service_user=args.service_user,
        proxy_args=[arg for name in args.token_reader
                    for arg in ('--token-reader', name)])
    try:
        servers.make_datadir()
        setup_log(instance.logdir)
    except OSError as err:
        print(f'error: cannot write to the data directory {instance.datadir}: '
              f'{err.strerror}', file=sys.stderr)
        return 1
    print(f'starting the script server in {instance.datadir} ...', flush=True)
    try:
        servers.start()
    except StartupError as err:
        log.error('%s', err)
        return 1
    try:
        print(_banner(instance), flush=True)
        log.info('serving: %s', ', '.join(
            f'{name} (pid {proc.pid})' for name, proc in servers.procs.items()))
        policy = RestartPolicy(give_up_after=args.give_up_after,
                               healthy_after=args.healthy_after)
        return Watchdog(servers, policy).run(stop)
    finally:
        print('stopping ...', flush=True)
        servers.stop()
        log.info('stopped')


if __name__ == '__main__':
    sys.exit(main())
