"""Where one script-server instance keeps its data and which ports it uses.

Setups are plain files executed by NICOS; they read the instance from the
environment through `Instance.from_env`, so the demo command, tests and a
real deployment can run the same setups with different directories and
ports.
"""

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List

REPO = Path(__file__).resolve().parents[2]

ENV_DATA = 'SCRIPTSERVER_DATA'
ENV_HOST = 'SCRIPTSERVER_HOST'
ENV_DAEMON_PORT = 'SCRIPTSERVER_DAEMON_PORT'
ENV_CACHE_PORT = 'SCRIPTSERVER_CACHE_PORT'
ENV_TIMESCALE = 'SCRIPTSERVER_TIMESCALE'
ENV_COMMANDS = 'SCRIPTSERVER_COMMANDS'
ENV_DRY_RUN_POLICY = 'SCRIPTSERVER_DRY_RUN_POLICY'
ENV_DRY_RUN_LIMIT = 'SCRIPTSERVER_DRY_RUN_LIMIT'
ENV_BRIDGED_DRY_RUN_LIMIT = 'SCRIPTSERVER_BRIDGED_DRY_RUN_LIMIT'
ENV_HISTORY_DAYS = 'SCRIPTSERVER_HISTORY_DAYS'
INSTRUMENT = 'nicos_scriptserver.demo'


@dataclass
class Instance:
    """Directories, ports and the demo's time scale of one server instance."""

    datadir: Path
    host: str = '127.0.0.1'
    daemon_port: int = 1303
    cache_port: int = 14869
    # >1 makes every demo device faster by that factor (tests use it).
    timescale: float = 1.0
    command_folders: List[Path] = field(
        default_factory=lambda: [REPO / 'commands'])
    # The daemon's dryrunpolicy: hold, mark or off.
    dry_run_policy: str = 'hold'
    # Wall seconds after which a dry run is cut off.
    dry_run_limit: float = 60.0
    # Wall seconds after which a black-box or isolated job's dry run is cut off.
    bridged_dry_run_limit: float = 30.0
    # The daemon's historydays: finished jobs older than this many days
    # move to the archive file (0: never).
    history_days: float = 0.0
    # The proxy owns the port the IBEX GUI connects to, and the next one
    # (its event socket, where NICOS's ZeroMQ clients look); the daemon moved.
    proxy_port: int = 1301
    # The embedded CA server of the token and user-name PVs.
    pv_port: int = 5064
    pv_prefix: str = 'SCRIPTSERVER:'

    @classmethod
    def from_env(cls, environ=os.environ) -> 'Instance':
        if ENV_DATA not in environ:
            raise RuntimeError(f'{ENV_DATA} is not set: start the server with '
                               'nicos_scriptserver.supervisor.service or the demo command')
        folders = environ.get(ENV_COMMANDS)
        return cls(
            datadir=Path(environ[ENV_DATA]),
            host=environ.get(ENV_HOST, cls.host),
            daemon_port=int(environ.get(ENV_DAEMON_PORT, cls.daemon_port)),
            cache_port=int(environ.get(ENV_CACHE_PORT, cls.cache_port)),
            timescale=float(environ.get(ENV_TIMESCALE, cls.timescale)),
            dry_run_policy=environ.get(ENV_DRY_RUN_POLICY, cls.dry_run_policy),
            dry_run_limit=float(environ.get(ENV_DRY_RUN_LIMIT, cls.dry_run_limit)),
            bridged_dry_run_limit=float(environ.get(
                ENV_BRIDGED_DRY_RUN_LIMIT, cls.bridged_dry_run_limit)),
            history_days=float(environ.get(ENV_HISTORY_DAYS,
                                           cls.history_days)),
            **({'command_folders': [Path(p) for p in folders.split(os.pathsep)]}
               if folders else {}))

    def to_env(self) -> Dict[str, str]:
        """Environment variables that make `from_env` return this instance."""
        return {
            'INSTRUMENT': INSTRUMENT,
            ENV_DATA: str(self.datadir),
            ENV_HOST: self.host,
            ENV_DAEMON_PORT: str(self.daemon_port),
            ENV_CACHE_PORT: str(self.cache_port),
            ENV_TIMESCALE: repr(self.timescale),
            ENV_COMMANDS: os.pathsep.join(str(p) for p in self.command_folders),
            ENV_DRY_RUN_POLICY: self.dry_run_policy,
            ENV_DRY_RUN_LIMIT: repr(self.dry_run_limit),
            ENV_BRIDGED_DRY_RUN_LIMIT: repr(self.bridged_dry_run_limit),
            ENV_HISTORY_DAYS: repr(self.history_days),
        }

    @property
    def daemon_address(self) -> str:
        return f'{self.host}:{self.daemon_port}'

    @property
    def proxy_address(self) -> str:
        return f'{self.host}:{self.proxy_port}'

    @property
    def cache_address(self) -> str:
        return f'{self.host}:{self.cache_port}'

    @property
    def logdir(self) -> Path:
        return self.datadir / 'log'
