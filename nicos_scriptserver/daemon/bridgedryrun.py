"""Dry runs of bridged jobs (black-box, isolated aware), inside NICOS's
simulation process (`dryrunchild`).

The job's script runs in a child exactly as in the real run
(`runner.bridgechild`, through a socket pair only this process holds),
and its calls are served by the real run's `bridgerun.Bridge`, here
against the simulation session: moves, counts and ``sleep`` take
simulated time and limits are checked, nothing reaches the instrument.
The child's own wall time between two calls (plain Python work) is added
to the simulated clock, so the estimate counts both.

The child's environment has ``SCRIPTSERVER_DRY_RUN=1`` (`DRY_RUN_ENV`): a
script's plain-Python side effects (files, processes) happen in a dry run
too unless it looks at that. Past *limit* wall seconds the child's process
tree is killed and the dry run reports `OVER_LIMIT` (the report is then
"not possible"). A failed script ends the simulation with
`BridgedScriptFailed`, whose traceback is the child's, with its lines as
the script's (``<script>``), as for an aware job.
"""

import time
from typing import Any, Dict, Optional

from nicos import session

from nicos_scriptserver.daemon.bridgerun import Bridge

DRY_RUN_ENV = 'SCRIPTSERVER_DRY_RUN'
#: The option of `dryrunchild` that asks for a bridged dry run.
OPTION = '--bridged='
#: The key of the result that says the dry run was cut off (its value:
#: the limit in seconds).
OVER_LIMIT = 'bridged_over_limit'
#: The one block the simulation runs instead of the script (which the
#: child runs): `prepare` left it what to run.
ENTRY = ("__import__('nicos_scriptserver.daemon.bridgedryrun', "
         "fromlist=['run_prepared']).run_prepared()\n")

_prepared: Optional[Dict[str, Any]] = None


class BridgedScriptFailed(Exception):
    """The child's script failed; *traceback* is the child's, in the
    script's lines."""

    def __init__(self, message: str, traceback: str):
        super().__init__(message)
        self.traceback = traceback


class DryRunBridge(Bridge):
    """The real run's bridge, against the simulation session, with a
    wall-time *limit*: no client sees it, nothing pauses."""

    def __init__(self, script: str, isolated: bool, limit: float):
        super().__init__(script, None, isolated, None, {DRY_RUN_ENV: '1'})
        self.limit = limit
        self.deadline = time.monotonic() + limit
        self.over_limit = False
        self._answering = 0.0

    def _output(self, stream: str, text: str) -> None:
        session.log.info('%s', text.rstrip('\n'))

    def _line_changed(self, line: int) -> None:
        pass   # nobody watches a dry run's line

    def _pause_point(self) -> None:
        pass   # a dry run never pauses

    def _answer(self, request: Dict[str, Any]) -> None:
        started = time.monotonic()
        super()._answer(request)
        self._answering += time.monotonic() - started

    def serve(self) -> bool:
        if self._past_limit():
            return False
        started, self._answering = time.monotonic(), 0.0
        more = super().serve()
        # The child's own time, the simulated time of the call aside.
        waited = time.monotonic() - started - self._answering
        session.clock.tick(max(waited, 0.0))
        return more

    def ended(self) -> bool:
        return self._past_limit() or super().ended()

    def _past_limit(self) -> bool:
        if time.monotonic() > self.deadline:
            self.over_limit = True
        return self.over_limit


def prepare(script: str, isolated: bool, limit: float) -> str:
    """Remember the job's *script*; the code the simulation runs instead."""
    global _prepared
    _prepared = {'script': script, 'isolated': isolated, 'limit': limit}
    return ENTRY


def run_prepared() -> None:
    """Run the prepared script through the bridge (in the simulation)."""
    bridge = DryRunBridge(_prepared['script'], _prepared['isolated'],
                          _prepared['limit'])
    try:
        bridge.start()
        while bridge.serve():
            pass
        while not bridge.ended():
            pass
    finally:
        bridge.finish(aborted=bridge.over_limit)
    if bridge.over_limit:
        session.log_sender.add_result({OVER_LIMIT: bridge.limit})
        return
    result = bridge.run.result
    if result is not None and result.error:
        raise _failure(result.error, bridge.run.script_path)


def _failure(error: Dict[str, Any], script_path: str) -> BridgedScriptFailed:
    message = f"{error['type']}: {error['message']}"
    trace = error.get('traceback') or message
    return BridgedScriptFailed(
        message, trace.replace(f'File "{script_path}"', 'File "<script>"'))
