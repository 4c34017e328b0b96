"""I/O errors injected into the daemon's queue database, switched at run time.

`build_shim` compiles faults/diskfaults.c (an LD_PRELOAD library that fails
write/pwrite/fsync/fdatasync on queue.sqlite and its -wal/-journal files)
into a private directory; `FaultyDisk` is the switch, a private control
directory that only the daemon's environment names.
"""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import List, Optional

from conftest import ALLOW_ROOT, TEST_TIMESCALE, RunningServer
from nicos_scriptserver.instance.config import Instance
from nicos_scriptserver.supervisor.processes import ServerProcesses, free_instance_ports

SOURCE = Path(__file__).with_name('faults') / 'diskfaults.c'


def build_shim(into: Path) -> Optional[str]:
    """Compile the shim into *into*; return why it cannot be, or None."""
    compiler = shutil.which('gcc')
    if compiler is None:
        return 'no C compiler (gcc) to build the I/O fault shim'
    done = subprocess.run([compiler, '-shared', '-fPIC', '-O2', '-o',
                           str(into / 'diskfaults.so'), str(SOURCE), '-ldl'],
                          capture_output=True, text=True)
    return f'cannot build the I/O fault shim: {done.stderr}' if done.returncode else None


class FaultyDisk:
    """The shim and its switch, in a 0700 directory of their own."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix='diskfaults-'))   # 0700
        self.control = self.dir / 'control'
        self.control.mkdir(mode=0o700)
        self.why_not = build_shim(self.dir)

    @property
    def library(self) -> Path:
        return self.dir / 'diskfaults.so'

    def fail(self, error: str = 'eio') -> None:
        """From now on the queue database's writes and syncs fail with
        *error* ('eio' or 'enospc')."""
        (self.control / error).touch(mode=0o600)

    def heal(self) -> None:
        for flag in self.control.iterdir():
            flag.unlink()

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


class FaultyDaemonProcesses(ServerProcesses):
    """`ServerProcesses` whose daemon (only) runs with the shim loaded."""

    def __init__(self, instance: Instance, disk: FaultyDisk, **args):
        super().__init__(instance, **args)
        self.disk = disk

    def command(self, name: str, args: List[str]) -> List[str]:
        if name != 'daemon':
            return super().command(name, args)
        return ['env', f'LD_PRELOAD={self.disk.library}',
                f'SCRIPTSERVER_DISK_FAULTS={self.disk.control}',
                sys.executable, *args]


def start_faulty_server(datadir: Path, disk: FaultyDisk, **instance_args) -> RunningServer:
    """Cache and daemon (and proxy if asked) on free ports, the daemon
    writing its queue through the shim."""
    proxy = instance_args.pop('proxy', False)
    instance = Instance(datadir=datadir, **free_instance_ports(),
                        timescale=TEST_TIMESCALE, **instance_args)
    return RunningServer(FaultyDaemonProcesses(
        instance, disk, allow_root=ALLOW_ROOT, proxy=proxy).start())


def stat_mode(path: Path) -> int:
    return os.stat(path).st_mode & 0o777
