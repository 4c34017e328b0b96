"""Child processes of the server: bridged jobs, and how every child starts.

Pure Python stdlib (Linux): it never imports NICOS, zmq, EPICS or Qt; the
daemon adapter (`nicos_scriptserver.daemon.bridgerun`) drives bridged
(black-box and isolated) jobs from NICOS's script thread.

- `BlackBoxRun`: start a script, stream its output, wait, abort
- `RunResult`: exit code, ok/aborted, duration and error report
- `PauseNotSupported`: what `BlackBoxRun.pause` raises
- `childenv`: the environment of every child process, from an allowlist
- `lifetime`: children that die with the thread that started them
- `bridgewire`: the frames between a bridged job's child and the daemon
- `bridgechild`: the child: the script's instrument globals, over the bridge
"""

__all__ = ['BlackBoxRun', 'PauseNotSupported', 'RunResult']


def __getattr__(name: str):
    # Imported when first used: a bridged job's child starts as a module
    # of this package and must not pay for the runner's imports.
    if name in __all__:
        from nicos_scriptserver.runner import blackbox
        return getattr(blackbox, name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
