"""Runs a black-box job from NICOS's script thread.

The script runs in a child process (`nicos_scriptserver.runner`); its output
becomes ``ss_output`` events and ordinary NICOS log messages, so stock
clients see it too. The wait runs under NICOS's execution controller, so
the daemon reports a running script for the whole time.
"""

import os
from typing import Optional, Tuple

from nicos import session
from nicos.utils.loggers import INPUT
from nicos.services.daemon.utils import formatScript

from nicos_scriptserver.runner.childenv import child_env
from nicos_scriptserver.runner.blackbox import BlackBoxRun


def run_blackbox(request, controller) -> Tuple[str, Optional[dict]]:
    """Run *request*'s script to the end; return (outcome, error report)."""
    daemon = session.daemon_device
    job_id = request.job_id

    def on_output(stream: str, text: str) -> None:
        daemon.emit_event('ss_output', {'id': job_id, 'stream': stream,
                                        'text': text})
        session.log.info('%s', text.rstrip('\n'))

    session.log.log(INPUT, formatScript(request, 'black-box'))
    run = BlackBoxRun(request.text, cwd=os.getcwd(), env=child_env(),
                      on_output=on_output)
    outcome = {}

    def wait_for_child():
        run.start()
        outcome['result'] = run.wait()

    # The controller ends the processes when the job is aborted.
    controller.blackbox = run
    try:
        controller.start_exec(compile('wait_for_child()', '<script>', 'exec'),
                              {'wait_for_child': wait_for_child}, None, None)
    finally:
        controller.blackbox = None
    result = outcome['result']
    if result.aborted:
        return 'aborted', None
    return ('done', None) if result.ok else ('failed', result.error)
