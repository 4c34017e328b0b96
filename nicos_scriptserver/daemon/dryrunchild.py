"""The dry-run process: NICOS's ``nicos-simulate``, with tracebacks.

``python -m nicos_scriptserver.daemon.dryrunchild [--bridged=KIND,LIMIT]
ADDRESS UUID SETUPS USER`` takes the arguments of NICOS's
``bin/nicos-simulate`` and runs it (NICOS's own dry runs start it so,
through ``private-dryrun-channel``); the daemon's dry runs call `main` in
a process forked by `dryrunforkserver`.

NICOS's simulation session writes no log file when it talks over a Unix
socket (it takes that for a sandbox), and it was the log file's formatter
that filled in a record's traceback text before the record went to the
daemon. Without it a failed dry run would say "Exception in dry run", but
not which line of the script failed, nor why. So this formats the
traceback as the log file would, then runs the stock program.

With ``--bridged=black-box,30`` (or ``isolated``) the script on stdin is
a bridged job's: the simulation runs it through the bridge
(`bridgedryrun`), cut off after 30 wall seconds.
"""

import io
import runpy
import sys
import traceback
from os import path
from typing import List

from nicos import config

from nicos_scriptserver.daemon import bridgedryrun
from nicos_scriptserver.runner.lifetime import arm_from_env


def _with_traceback(stock_emit):
    def emit(self, record):
        if record.exc_info and not record.exc_text:
            error = record.exc_info[1]
            record.exc_text = error.traceback \
                if isinstance(error, bridgedryrun.BridgedScriptFailed) else \
                ''.join(traceback.format_exception(*record.exc_info)) \
                .rstrip('\n')
        stock_emit(self, record)
    return emit


def _bridge_if_asked(argv: List[str]) -> List[str]:
    """*argv* without our option; with it, stdin becomes the code that
    runs the script on stdin through the bridge."""
    if not argv or not argv[0].startswith(bridgedryrun.OPTION):
        return argv
    kind, limit = argv[0][len(bridgedryrun.OPTION):].split(',')
    sys.stdin = io.StringIO(bridgedryrun.prepare(
        sys.stdin.read(), kind == 'isolated', float(limit)))
    return argv[1:]


def main() -> None:
    # First: a daemon killed meanwhile must not leave this process behind.
    arm_from_env()
    # Imported only now: it makes ZeroMQ's context, which the fork server
    # must not (see dryrunforkserver).
    from nicos.core.sessions.simulation import SimLogSender
    SimLogSender.emit = _with_traceback(SimLogSender.emit)
    program = path.join(config.nicos_root, 'bin', 'nicos-simulate')
    sys.argv[1:] = _bridge_if_asked(sys.argv[1:])
    sys.argv[0] = program
    runpy.run_path(program, run_name='__main__')


if __name__ == '__main__':
    main()
