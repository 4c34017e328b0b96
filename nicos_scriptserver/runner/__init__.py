"""Runs black-box jobs: opaque Python scripts in a child process.

Pure Python stdlib (Linux): it never imports NICOS, zmq, EPICS or Qt; the
daemon adapter (`nicos_scriptserver.daemon.blackbox`) drives it from
NICOS's script thread.

- `BlackBoxRun`: start a script, stream its output, wait, abort
- `RunResult`: exit code, ok/aborted, duration and error report
- `PauseNotSupported`: what `BlackBoxRun.pause` raises
"""

from nicos_scriptserver.runner.blackbox import (BlackBoxRun,
                                                PauseNotSupported, RunResult)

__all__ = ['BlackBoxRun', 'PauseNotSupported', 'RunResult']
