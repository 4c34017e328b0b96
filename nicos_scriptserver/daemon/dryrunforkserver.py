"""The dry-run fork server: imports NICOS and SciPy once, then forks the
process of each dry run (`dryrunchild`).

``python -m nicos_scriptserver.daemon.dryrunforkserver``, started by the
daemon (`forkserver.ForkServer`), which speaks to it in lines of JSON on
its stdin and stdout:

- ``{"fork": N, "argv": [...], "script": TEXT, "env": {...},
  "stderr": PATH}``: start dry run N: `dryrunchild` with *argv*, the
  script as its stdin, *env* as its whole environment, its error output
  appended to the file PATH;
- ``{"kill": N}``: end dry run N's process group, if it has not ended;
- back: ``{"ended": N, "code": EXIT}`` once dry run N's process is
  reaped, EXIT as `subprocess` gives it (-9: killed).

Why: each dry run started Python and imported NICOS and SciPy anew,
0.65 s of CPU time, and the kernel took 5-10 ms to free the 100 MB each
time one ended. A forked process shares those pages with this one.

Nothing here makes ZeroMQ's context (NICOS's ``nicos.utils.messaging``
makes one when imported): a context must not be used across a fork.
Each dry run makes its own when it imports NICOS's simulation session.

A dry run gets nothing of this process's: its stdin and stdout are
/dev/null, every other descriptor but its error output is closed (it
cannot read other dry runs' scripts, nor answer in this process's name).
It leads a session of its own, so that a kill ends what it started too,
and it dies with this process, which dies with the daemon.
"""

import io
import json
import os
import select
import signal
import sys
import traceback
from typing import Dict

# Preloaded for the dry runs: NICOS's sessions; dryrunchild imports the
# bridge, NICOS's commands and through them SciPy.
import nicos.core.sessions  # noqa: F401

from nicos_scriptserver.daemon import dryrunchild
from nicos_scriptserver.runner.lifetime import arm_from_env, parent_death_env

#: Imported by a dry run itself, never here (see the module's text).
NOT_PRELOADED = 'nicos.utils.messaging'
#: How long a dry run that ends may take to send its last messages.
FLUSH_MS = 5000


def main() -> None:
    arm_from_env()
    if NOT_PRELOADED in sys.modules:
        raise SystemExit(f'{NOT_PRELOADED} was imported before the fork')
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_write, False)
    signal.set_wakeup_fd(wake_write)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    children: Dict[int, int] = {}   # dry run number -> pid
    pending = b''
    try:
        while True:
            ready, _, _ = select.select([0, wake_read], [], [])
            if wake_read in ready:
                os.read(wake_read, 4096)
            _reap(children)
            if 0 not in ready:
                continue
            data = os.read(0, 1 << 16)
            if not data:
                return   # the daemon closed the pipe, or ended
            *lines, pending = (pending + data).split(b'\n')
            for line in lines:
                _handle(json.loads(line), children)
    finally:
        for pid in children.values():
            _kill_group(pid)


def _handle(request: dict, children: Dict[int, int]) -> None:
    if 'kill' in request:
        pid = children.get(request['kill'])
        if pid is not None:
            _kill_group(pid)
        return
    env = dict(request['env'], **parent_death_env(signal.SIGKILL))
    try:
        pid = os.fork()
    except OSError as err:
        with open(request['stderr'], 'a') as stderr:
            stderr.write(f'the dry-run process could not start: {err}\n')
        _send({'ended': request['fork'], 'code': 1})
        return
    if pid == 0:
        _become_dry_run(request['argv'], request['script'], env,
                        request['stderr'])
    children[request['fork']] = pid


def _become_dry_run(argv: list, script: str, env: dict, stderr: str) -> None:
    """In the forked child: run the dry run, then exit (never returns)."""
    code = 1
    try:
        os.setsid()
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        null = os.open(os.devnull, os.O_RDWR)
        error = os.open(stderr, os.O_WRONLY | os.O_APPEND)
        os.dup2(null, 0)
        os.dup2(null, 1)
        os.dup2(error, 2)
        os.closerange(3, os.sysconf('SC_OPEN_MAX'))
        os.environ.clear()
        os.environ.update(env)
        sys.stdin = io.StringIO(script)
        sys.argv = [dryrunchild.__file__, *argv]
        dryrunchild.main()
        code = 0
    except SystemExit as end:
        code = end.code if isinstance(end.code, int) else \
            0 if end.code is None else 1
    except BaseException:
        traceback.print_exc()
    finally:
        _flush_messages()
        sys.stderr.flush()
        os._exit(code)


def _flush_messages() -> None:
    """Send what the dry run's sockets still hold: `os._exit` would drop
    it (the result comes last)."""
    messaging = sys.modules.get(NOT_PRELOADED)
    if messaging is not None:
        messaging.nicos_zmq_ctx.destroy(linger=FLUSH_MS)


def _reap(children: Dict[int, int]) -> None:
    numbers = {pid: number for number, pid in children.items()}
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        number = numbers.get(pid)
        if number is not None:
            del children[number]
            _send({'ended': number,
                   'code': os.waitstatus_to_exitcode(status)})


def _kill_group(pid: int) -> None:
    """Kill dry run *pid* and what it started. Until it has made its own
    session it has no group and has started nothing: the process alone
    is killed then. (It is not reaped yet, so *pid* is still its.)"""
    for kill in (os.killpg, os.kill):
        try:
            kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _send(message: dict) -> None:
    os.write(1, json.dumps(message).encode() + b'\n')


if __name__ == '__main__':
    main()
