"""Fixtures that start real script-server processes on free ports.

`server` starts one cache + daemon per test module in a temporary data
directory; `server_factory` starts extra ones inside a test. Both stop
every process they started, also when the test fails.
"""

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List

import pytest

from nicos_scriptserver.clients.daemonclient import ScriptServerClient
from nicos_scriptserver.instance.config import Instance
from nicos_scriptserver.supervisor.processes import ServerProcesses, free_instance_ports

# Containers and CI run as root; the services need an explicit opt-in.
ALLOW_ROOT = os.geteuid() == 0
# Demo devices run this many times faster than real in tests.
TEST_TIMESCALE = 20.0
# Black-box test scripts that sleep in plain Python (to be aborted, paused
# or killed) would otherwise wait the default 30 s for their dry run.
TEST_BRIDGED_DRY_RUN_LIMIT = 2.0


@dataclass
class RunningServer:
    """A started instance plus the clients a test opened on it."""

    processes: ServerProcesses
    clients: List[ScriptServerClient] = field(default_factory=list)

    @property
    def instance(self) -> Instance:
        return self.processes.instance

    @property
    def passwords(self) -> Dict[str, str]:
        return self.processes.passwords

    def client(self, user: str = 'user', **login) -> ScriptServerClient:
        """Log in as *user* (guest, user or admin) with its real password."""
        client = ScriptServerClient()
        client.login(self.instance.host, self.instance.daemon_port, user,
                     self.passwords[user], **login)
        self.clients.append(client)
        return client

    def stop(self) -> None:
        for client in self.clients:
            if client.isconnected:
                client.disconnect()
        self.processes.stop()


def start_server(datadir: Path, proxy: bool = False, proxy_args=(), env=None,
                 **instance_args) -> RunningServer:
    """Start cache and daemon (and the proxy with its PVs if *proxy*),
    with *env* added to their environment."""
    instance = Instance(datadir=datadir, **free_instance_ports(),
                        timescale=instance_args.pop('timescale', TEST_TIMESCALE),
                        bridged_dry_run_limit=instance_args.pop(
                            'bridged_dry_run_limit', TEST_BRIDGED_DRY_RUN_LIMIT),
                        **instance_args)
    return RunningServer(ServerProcesses(
        instance, allow_root=ALLOW_ROOT, proxy=proxy,
        proxy_args=proxy_args, env=env).start())


@pytest.fixture(scope='module')
def server_args():
    """Instance arguments of `server`; a test module may override this."""
    return {}


@pytest.fixture(scope='module')
def server(tmp_path_factory, server_args):
    """One running script server shared by the tests of a module."""
    running = start_server(tmp_path_factory.mktemp('server'), **server_args)
    yield running
    running.stop()


@pytest.fixture
def server_factory(tmp_path):
    """Start script servers inside a test: ``server_factory(**instance_args)``."""
    started = []

    def start(datadir=None, **instance_args):
        running = start_server(datadir or tmp_path / f'server{len(started)}',
                               **instance_args)
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop()


@pytest.fixture
def client(server):
    """A user client on `server`, with an empty, released queue and no job
    running (the module's earlier tests may have left some)."""
    client = server.client('user')
    client.call('ss_clear')
    current = client.queue()['current']
    if current:
        client.call('ss_abort')
        client.wait_for(lambda n, d: n == 'ss_job' and d['id'] == current['id']
                        and d['state'] in ('done', 'failed', 'aborted'))
    client.call('ss_release')
    return client
