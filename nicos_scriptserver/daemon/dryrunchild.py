"""The dry-run process: NICOS's ``nicos-simulate``, with tracebacks.

``python -m nicos_scriptserver.daemon.dryrunchild ADDRESS UUID SETUPS USER``
takes the arguments of NICOS's ``bin/nicos-simulate`` and runs it. NICOS's
simulation session writes no log file when it talks over a Unix socket
(it takes that for a sandbox), and it was the log file's formatter that
filled in a record's traceback text before the record went to the daemon.
Without it a failed dry run would say "Exception in dry run", but not
which line of the script failed, nor why. So this formats the traceback
as the log file would, then runs the stock program.
"""

import runpy
import sys
import traceback
from os import path

from nicos import config
from nicos.core.sessions.simulation import SimLogSender

_stock_emit = SimLogSender.emit


def _emit_with_traceback(self, record):
    if record.exc_info and not record.exc_text:
        record.exc_text = ''.join(
            traceback.format_exception(*record.exc_info)).rstrip('\n')
    _stock_emit(self, record)


def main() -> None:
    SimLogSender.emit = _emit_with_traceback
    program = path.join(config.nicos_root, 'bin', 'nicos-simulate')
    sys.argv[0] = program
    runpy.run_path(program, run_name='__main__')


if __name__ == '__main__':
    main()
