"""Start and stop the processes of one script-server instance.

Used by the demo command and by the integration tests alike, so the tests
exercise exactly what users run. Children get their own session (a Ctrl-C
in the terminal reaches only the supervisor, which then stops them in
order) and die with the supervisor if it is killed (PR_SET_PDEATHSIG).
"""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Callable, Dict, List, Optional, Sequence

from nicos_scriptserver.instance.accounts import ensure_accounts
from nicos_scriptserver.runner.childenv import child_env
from nicos_scriptserver.instance.config import REPO, Instance
from nicos_scriptserver.runner.lifetime import die_with_parent


class StartupError(RuntimeError):
    """A service did not come up; the message points at its log."""


def free_port(host: str = '127.0.0.1', span: int = 1) -> int:
    """Return a port such that *port* .. *port*+*span*-1 are free now."""
    while True:
        with socket.socket() as sock:
            sock.bind((host, 0))
            port = sock.getsockname()[1]
        if port + span <= 65535 and all(_is_free(host, port + i)
                                        for i in range(1, span)):
            return port


def _is_free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_instance_ports(host: str = '127.0.0.1') -> Dict[str, int]:
    """Ports for one instance, free now and all different: the daemon's,
    the cache's, the proxy's (whose event socket takes the next one too)
    and the PV server's, as `Instance` arguments."""
    taken: set = set()
    ports = {}
    for name, span in (('proxy_port', 2), ('daemon_port', 1),
                       ('cache_port', 1), ('pv_port', 1)):
        port = free_port(host, span)
        while taken & set(range(port, port + span)):
            port = free_port(host, span)
        taken.update(range(port, port + span))
        ports[name] = port
    return ports


def open_private_log(path: Path, mode: str = 'ab') -> IO:
    """Open log file *path* for appending, readable by this account only
    (also when an older run left it readable), never through a symbolic
    link; creates its directory (not the data directory above it)."""
    path.parent.mkdir(exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW,
                 0o600)
    os.fchmod(fd, 0o600)
    return os.fdopen(fd, mode)


def port_open(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


class ServerProcesses:
    """The cache, daemon and (optionally) proxy of one instance, as child
    processes.

    Their environment is `child_env` (nothing else of this process's) with
    the instance's variables and *env*.
    """

    def __init__(self, instance: Instance, allow_root: bool = False,
                 env: Optional[Dict[str, str]] = None, proxy: bool = False,
                 proxy_args: Sequence[str] = (),
                 service_user: Optional[str] = None,
                 service_group: Optional[str] = None):
        self.instance = instance
        self.allow_root = allow_root
        self.service_user = service_user
        self.service_group = service_group
        self.proxy = proxy
        self.proxy_args = list(proxy_args)
        self.env = child_env({**instance.to_env(), **(env or {})})
        self.env['PYTHONPATH'] = os.pathsep.join(
            filter(None, [str(REPO), self.env.get('PYTHONPATH')]))
        self.procs: Dict[str, subprocess.Popen] = {}
        #: When each process was started (`time.monotonic`).
        self.started: Dict[str, float] = {}
        self.passwords: Dict[str, str] = {}

    def command(self, name: str, args: List[str]) -> List[str]:
        """The command line that starts process *name* (a hook for tests
        that must wrap a service, e.g. in a mount namespace)."""
        return [sys.executable, *args]

    def _spawn(self, name: str, args: List[str],
               umask: Optional[int] = None) -> subprocess.Popen:
        try:
            # Private: the proxy's output is its log, and the daemon's may
            # hold whatever jobs print.
            out = open_private_log(self.instance.logdir / f'{name}.out', 'ab')
        except OSError as err:
            raise StartupError(f'cannot write to the data directory '
                               f'{self.instance.datadir}: {err.strerror}') from None
        arm = die_with_parent()

        def preexec() -> None:
            arm()
            if umask is not None:
                os.umask(umask)
        with out:
            proc = subprocess.Popen(
                self.command(name, args), env=self.env, stdout=out,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, preexec_fn=preexec)
        self.procs[name] = proc
        self.started[name] = time.monotonic()
        return proc

    def start_service(self, service: str) -> subprocess.Popen:
        args = ['-m', 'nicos_scriptserver.supervisor.service', service]
        if self.service_user:
            args += ['--user', self.service_user]
            if self.service_group:
                args += ['--group', self.service_group]
        elif self.allow_root:
            args.append('--allow-root')
        return self._spawn(service, args)

    def spawn_proxy(self) -> subprocess.Popen:
        """Start the proxy, without waiting until it serves."""
        inst = self.instance
        return self._spawn('proxy', [
            '-m', 'nicos_scriptserver.proxy', '--data', str(inst.datadir),
            '--listen', inst.proxy_address, '--daemon', inst.daemon_address,
            '--pv-port', str(inst.pv_port), '--pv-prefix', inst.pv_prefix,
            *(['--daemon-user', self.service_user] if self.service_user else []),
            *self.proxy_args], umask=0o077)

    def start_proxy(self, timeout: float = 30.0) -> subprocess.Popen:
        """Start the proxy and wait until it serves (token published)."""
        out = self.instance.logdir / 'proxy.out'
        offset = out.stat().st_size if out.exists() else 0
        proc = self.spawn_proxy()

        def printed_ready() -> bool:
            with open(out, 'rb') as fp:
                fp.seek(offset)
                return b'proxy ready on' in fp.read()
        self._wait('proxy', printed_ready, 'did not get ready', timeout)
        return proc

    def respawn(self, name: str) -> subprocess.Popen:
        """Start process *name* (cache, daemon or proxy) again, without
        waiting: the others reconnect to it by themselves."""
        return self.spawn_proxy() if name == 'proxy' else self.start_service(name)

    def _wait_port(self, name: str, port: int, timeout: float) -> None:
        self._wait(name, lambda: port_open(self.instance.host, port),
                   f'not listening on port {port}', timeout)

    def _wait(self, name: str, ready: Callable[[], bool], failure: str,
              timeout: float) -> None:
        """Wait until *ready*; `StartupError` if service *name* exits or
        the time is up."""
        deadline = time.monotonic() + timeout
        proc = self.procs[name]
        out = self.instance.logdir / f'{name}.out'
        while not ready():
            if proc.poll() is not None:
                raise StartupError(f'{name} exited with status '
                                   f'{proc.returncode}; see {out}')
            if time.monotonic() > deadline:
                raise StartupError(f'{name} {failure} after {timeout:.0f} s; '
                                   f'see {out}')
            time.sleep(0.05)

    def make_datadir(self) -> None:
        """Create the data directory, private from the start (the services
        keep it so: service.py)."""
        self.instance.datadir.mkdir(mode=0o700, parents=True, exist_ok=True)

    def start(self, timeout: float = 60.0) -> 'ServerProcesses':
        """Start cache, daemon and proxy; wait until they serve the demo."""
        if self.service_user and os.geteuid() != 0:
            raise StartupError(f'only root can run the services as '
                               f'{self.service_user}')
        self.make_datadir()
        self.passwords = ensure_accounts(self.instance.datadir)
        try:
            self.start_service('cache')
            self._wait_port('cache', self.instance.cache_port, timeout)
            self.start_daemon(timeout)
            if self.proxy:
                self.start_proxy(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def start_daemon(self, timeout: float = 60.0) -> None:
        """Start the daemon (again) and wait until it serves the demo."""
        self.start_service('daemon')
        self._wait_port('daemon', self.instance.daemon_port, timeout)
        self.wait_ready(timeout)

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Wait until a login works and the instrument setups are loaded."""
        from nicos_scriptserver.clients.daemonclient import ScriptServerClient, ServerError
        deadline = time.monotonic() + timeout
        client = ScriptServerClient(keep_events=False)
        try:
            # As guest: the admin password is never sent to the daemon, in
            # whose memory job scripts run.
            client.login(self.instance.host, self.instance.daemon_port, 'guest',
                         self.passwords['guest'])
            while True:
                status = client.call('getstatus')
                # Idle (-2, -1), or paused (1): a queue held after a
                # restart shows so; running (0) is the start-up script.
                if status['setups'][1] and status['status'][0] in (-2, -1, 1):
                    return
                if time.monotonic() > deadline:
                    raise StartupError('daemon did not load its setups within '
                                       f'{timeout:.0f} s; see {self.instance.logdir}')
                time.sleep(0.1)
        except ServerError as err:
            raise StartupError(f'cannot log into the daemon: {err}') from err
        finally:
            client.disconnect()

    def stop(self, timeout: float = 15.0) -> None:
        """Stop all services, newest first; kill what does not stop in time."""
        for name, proc in reversed(list(self.procs.items())):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self.procs.clear()

    def __enter__(self) -> 'ServerProcesses':
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
