"""The daemon's side of the dry-run fork server (`dryrunforkserver`).

`ForkServer.fork` starts a dry run's process and returns a `ForkedChild`,
which `DryRunProcess` polls, waits for and kills as it did a
`subprocess.Popen`. The server starts with the first dry run and again
with the first one after it ended (killed, crashed): its dry runs then
end as killed, since they die with it.

What comes back from the server is read as plain data (JSON): it runs
none of the users' code, but its dry runs are its children.
"""

import itertools
import json
import queue
import signal
import subprocess
import sys
import threading
from typing import Dict, List, Optional

from nicos_scriptserver.runner.childenv import child_env
from nicos_scriptserver.runner.lifetime import parent_death_env

#: How the server's dry runs end when the server itself ends.
KILLED = -signal.SIGKILL


class ForkedChild:
    """The process of one dry run: `poll`, `wait` and `kill` as for a
    `subprocess.Popen`; `kill` ends its whole process group."""

    def __init__(self, server: 'ForkServer', number: int):
        self._server = server
        self.number = number
        self.returncode: Optional[int] = None
        self._ended = threading.Event()

    def poll(self) -> Optional[int]:
        return self.returncode if self._ended.is_set() else None

    def wait(self, timeout: Optional[float] = None) -> Optional[int]:
        if not self._ended.wait(timeout):
            raise subprocess.TimeoutExpired('dry run', timeout)
        return self.returncode

    def kill(self) -> None:
        self._server.kill(self.number)

    def _end(self, code: Optional[int]) -> None:
        self.returncode = code
        self._ended.set()


class ForkServer:
    """One dry-run fork server process, started when first needed.

    *deprioritize* is called with the server's pid once it runs (its
    dry runs inherit its scheduling).
    """

    def __init__(self, deprioritize=lambda pid: None):
        self._deprioritize = deprioritize
        self._lock = threading.Lock()
        self._proc: Optional[subprocess.Popen] = None
        self._children: Dict[int, ForkedChild] = {}
        self._numbers = itertools.count(1)

    def fork(self, argv: List[str], script: str, env: Dict[str, str],
             stderr: str) -> ForkedChild:
        """Start a dry run: `dryrunchild` with *argv*, *script* on its
        stdin, *env* as its environment, error output appended to the file
        *stderr*. Raises OSError if the server cannot be started."""
        with self._lock:
            proc = self._proc or self._start()
            child = ForkedChild(self, next(self._numbers))
            self._children[child.number] = child
            self._send(proc, {'fork': child.number, 'argv': argv,
                              'script': script, 'env': env,
                              'stderr': stderr})
        return child

    def kill(self, number: int) -> None:
        """End dry run *number*'s process group, if it still runs."""
        with self._lock:
            if number in self._children and self._proc is not None:
                self._send(self._proc, {'kill': number})

    def stop(self) -> None:
        """End the server; its dry runs end with it (as killed)."""
        with self._lock:
            if self._proc is not None:
                self._proc.kill()

    def pid(self) -> Optional[int]:
        """The server's pid while it runs."""
        proc = self._proc
        return proc.pid if proc is not None else None

    def _start(self) -> subprocess.Popen:
        # Started by a thread that lives as long as the server: the
        # parent-death signal comes when the thread that forked ends.
        started: queue.Queue = queue.Queue()
        threading.Thread(target=self._serve, args=(started,), daemon=True,
                         name='dry-run fork server').start()
        proc = started.get()
        if isinstance(proc, OSError):
            raise proc
        self._proc = proc
        return proc

    def _serve(self, started: queue.Queue) -> None:
        try:
            proc = subprocess.Popen(
                [sys.executable, '-m',
                 'nicos_scriptserver.daemon.dryrunforkserver'],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                close_fds=True, start_new_session=True,
                env=child_env(parent_death_env(signal.SIGKILL)))
        except OSError as err:
            started.put(err)
            return
        self._deprioritize(proc.pid)
        started.put(proc)
        for line in proc.stdout:
            try:
                message = json.loads(line)
                number, code = int(message['ended']), message['code']
            except (ValueError, KeyError, TypeError):
                continue
            with self._lock:
                child = self._children.pop(number, None)
            if child is not None:
                child._end(code if isinstance(code, int) else None)
        proc.kill()
        proc.wait()
        with self._lock:
            self._proc = None
            gone, self._children = self._children, {}
        for child in gone.values():
            child._end(KILLED)

    @staticmethod
    def _send(proc: subprocess.Popen, message: dict) -> None:
        try:
            proc.stdin.write(json.dumps(message).encode() + b'\n')
            proc.stdin.flush()
        except (BrokenPipeError, ValueError):
            pass   # it ended: _serve ends the children
