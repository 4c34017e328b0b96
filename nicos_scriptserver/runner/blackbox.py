"""`BlackBoxRun`: one black-box job, an opaque Python script in a child process.

The script is written to a private temporary directory (so tracebacks name
a real file and line) and run as ``python -u <file>`` in a new session with
stdin on /dev/null. A monitor thread passes its output on and does all the
signalling and reaping; `abort` only records the request and wakes it.

Abort, and also the end of the script, take down the whole session: the
script's process group and members that moved to another group of it. The
script's process is reaped only after that, so its pid (the group's id)
cannot be reused meanwhile and a signal to the group never hits a stranger.
Processes that start a session of their own (``setsid``) escape; only a
cgroup could hold them. Linux only: /proc tells what is left of a session.
"""

import codecs
import contextlib
import logging
import os
import re
import selectors
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import (Callable, Dict, List, Mapping, Optional, Sequence,
                    Tuple)

from nicos_scriptserver.runner.lifetime import die_with_parent
from nicos_scriptserver.runner.scratch import scratch_dir

log = logging.getLogger(__name__)

#: Called with ``('stdout' | 'stderr', text)`` from the monitor thread.
OutputCallback = Callable[[str, str], None]

PARTIAL_DELAY = 0.1    # s an unfinished line waits for its newline
MAX_CHUNK = 65536      # most characters passed to on_output at once
STDERR_TAIL = 65536    # bytes of stderr kept for the error report
DEFAULT_GRACE = 3.0    # s between SIGTERM and SIGKILL
DRAIN = 0.5            # s to wait for EOF once the session is gone
POLL = 0.02            # s between checks whether the session is gone
NEVER = float('inf')

_FRAME = re.compile(r'\s+File "(?P<file>.*)", line (?P<line>\d+)')
_EXCEPTION = re.compile(r'(?P<type>[A-Za-z_][\w.]*)(?::(?P<message>.*))?$')


class PauseNotSupported(RuntimeError):
    """Black-box jobs run outside NICOS: there is no point to pause at."""


@dataclass(frozen=True)
class RunResult:
    """How a black-box job ended.

    *exit_code* is negative if a signal killed the script, None if it never
    started (aborted before `start`). *error* is the error report
    ``{type, message, traceback, line}`` of a failure, else None.
    """

    exit_code: Optional[int]
    aborted: bool
    duration: float
    error: Optional[dict] = None

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.aborted


class _Stream:
    """Turns the bytes of one pipe into lines, and unfinished lines into chunks."""

    def __init__(self, name: str, deliver: OutputCallback):
        self.name = name
        self.deliver = deliver
        # Incremental, so that a character split between two reads stays whole.
        self.decoder = codecs.getincrementaldecoder('utf-8')('replace')
        self.pending = ''
        self.since = 0.0

    def feed(self, data: bytes, now: float) -> None:
        """Pass on the complete lines; *data* empty means end of file."""
        text = self.pending + self.decoder.decode(data, final=not data)
        # Only newline ends a line (str.splitlines would split at \r too).
        end = text.rfind('\n') + 1
        for line in text[:end].split('\n')[:-1]:
            self._send(line + '\n')
        if text[end:] and not self.pending:
            self.since = now
        self.pending = text[end:]
        # After the end of file nothing will complete the line; a huge line
        # is passed on in parts rather than kept in memory.
        self.flush(now, force=not data or len(self.pending) >= MAX_CHUNK)

    def flush(self, now: float, force: bool = False) -> None:
        if self.pending and (force or now >= self.since + PARTIAL_DELAY):
            self._send(self.pending)
            self.pending = ''

    def deadline(self) -> float:
        return self.since + PARTIAL_DELAY if self.pending else NEVER

    def _send(self, text: str) -> None:
        for start in range(0, len(text), MAX_CHUNK):
            self.deliver(self.name, text[start:start + MAX_CHUNK])


def session_members(sid: int) -> List[Tuple[int, int]]:
    """(pid, group) of the live (not zombie) processes of session *sid*."""
    members = []
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            with open(f'/proc/{entry}/stat', 'rb') as stat:
                data = stat.read()
        except OSError:  # exited meanwhile
            continue
        # The command name may contain spaces and parentheses: skip past it.
        fields = data[data.rindex(b')') + 2:].split()
        if int(fields[3]) == sid and fields[0] not in (b'Z', b'X'):
            members.append((int(entry), int(fields[2])))
    return members


def error_report(stderr: str, script_path: str, exit_code: int) -> dict:
    """The error report of a failed run, from the end of its stderr.

    The last traceback gives type, message and the innermost line in the
    script; without one, the exit status (or signal) is the message.
    """
    lines = stderr.splitlines()
    frames = [i for i, line in enumerate(lines) if _FRAME.match(line)]
    start = after = frames[-1] + 1 if frames else len(lines)
    while after < len(lines) and lines[after][:1].isspace():
        after += 1  # the source line and carets below the innermost frame
    match = _EXCEPTION.match(lines[after]) if after < len(lines) else None
    if match:
        while start > 0 and lines[start - 1][:1].isspace():
            start -= 1
        if start > 0 and lines[start - 1].startswith('Traceback ('):
            start -= 1
        found = [int(m['line']) for m in map(_FRAME.match, lines[start:after])
                 if m and m['file'] == script_path]
        return {'type': match['type'].rpartition('.')[2],
                'message': '\n'.join([match['message'] or '']
                                     + lines[after + 1:]).strip(),
                'traceback': '\n'.join(lines[start:]) + '\n',
                'line': found[-1] if found else None}
    if exit_code < 0:
        names = {sig.value: sig.name for sig in signal.Signals}
        kind = 'Signal'
        message = ('the script was killed by '
                   + names.get(-exit_code, f'signal {-exit_code}'))
    else:
        kind, message = 'SystemExit', f'the script exited with status {exit_code}'
    last = next((line.strip() for line in reversed(lines) if line.strip()), '')
    return {'type': kind, 'message': f'{message}: {last}' if last else message,
            'traceback': '', 'line': None}


class BlackBoxRun:
    """One black-box job: `start` it, `wait` for its `RunResult`, `abort` it.

    *env* is the complete environment of the script (default: this
    process's); ``PYTHONIOENCODING`` defaults to UTF-8 there, as the output
    is decoded as UTF-8 (undecodable bytes become U+FFFD). *on_output* gets
    each line of stdout and stderr with its newline, an unfinished line
    after `PARTIAL_DELAY`, at most `MAX_CHUNK` characters at once; order is
    kept within each stream, not across them. As for any script file,
    ``sys.path[0]`` is the script's own (temporary) directory, not *cwd*.
    *launcher* goes between ``python -u`` and the script's path (a module
    that runs the script: ``['-m', module, ...]``); the descriptors in
    *pass_fds* stay open in the child.
    """

    can_pause = False

    def __init__(self, script: str, cwd: str,
                 env: Optional[Mapping[str, str]] = None,
                 on_output: Optional[OutputCallback] = None,
                 python: str = sys.executable, script_name: str = 'job.py',
                 launcher: Sequence[str] = (), pass_fds: Sequence[int] = ()):
        self.script = script
        self.cwd = cwd
        self.env: Dict[str, str] = dict(os.environ if env is None else env)
        self.env.setdefault('PYTHONIOENCODING', 'utf-8')
        self.on_output = on_output
        self.python = python
        self.script_name = script_name
        self.launcher = list(launcher)
        self.pass_fds = tuple(pass_fds)
        self.script_path: Optional[str] = None
        self.result: Optional[RunResult] = None
        self._proc: Optional[subprocess.Popen] = None
        self._threads: List[threading.Thread] = []
        self._done = threading.Event()
        self._lock = threading.Lock()
        # Under the lock: what abort asked for, what the waiter saw, and
        # whether the monitor has closed the wake-up pipe.
        self._aborted = False
        self._kill_at = NEVER
        self._exited_at: Optional[float] = None
        self._closing = False

    @property
    def pid(self) -> Optional[int]:
        """The script's process id (also its process group and session id)."""
        return self._proc.pid if self._proc else None

    def start(self) -> None:
        """Start the script; does nothing if it was aborted already."""
        with self._lock:
            if self._aborted and not self._proc:
                return
            if self._proc:
                raise RuntimeError('this black-box run was started already')
            tmpdir = scratch_dir('blackbox-')
            self.script_path = os.path.join(tmpdir, self.script_name)
            try:
                with open(self.script_path, 'w', encoding='utf-8') as file:
                    file.write(self.script)
                self._started_at = time.monotonic()
                self._proc = subprocess.Popen(
                    [self.python, '-u', *self.launcher, self.script_path],
                    cwd=self.cwd, pass_fds=self.pass_fds,
                    env=self.env, stdin=subprocess.DEVNULL, bufsize=0,
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                    start_new_session=True,
                    preexec_fn=die_with_parent(signal.SIGKILL))
            except BaseException:
                shutil.rmtree(tmpdir, ignore_errors=True)
                raise
            self._wake_r, self._wake_w = os.pipe()
            os.set_blocking(self._wake_w, False)
            self._threads = [threading.Thread(
                target=target, daemon=True, name=f'blackbox-{self.pid}')
                for target in (self._wait_leader, self._monitor)]
            for thread in self._threads:
                thread.start()

    def wait(self, timeout: Optional[float] = None) -> RunResult:
        """Wait until the job ended and its threads, pipes and files are gone.

        Raises TimeoutError if it is still running after *timeout* seconds.
        """
        if not self._proc and not self._done.is_set():
            raise RuntimeError('start() this black-box run first')
        if not self._done.wait(timeout):
            raise TimeoutError(f'black-box job still running after {timeout} s')
        for thread in self._threads:
            thread.join()
        if self.result is None:
            raise RuntimeError('the black-box monitor failed; see the log')
        return self.result

    def ended(self) -> bool:
        """Whether the job has ended (its result is ready)."""
        return self._done.is_set()

    def abort(self, grace: float = DEFAULT_GRACE) -> None:
        """Terminate the job's processes: SIGTERM, SIGKILL after *grace* s.

        Returns at once (`wait` for the end). Safe from any thread, at any
        time and repeatedly; a shorter *grace* given later takes effect.
        The result is marked aborted unless the script had exited already.
        """
        with self._lock:
            if self._closing or self.result:
                return
            self._aborted = self._aborted or self._exited_at is None
            if not self._proc:
                self.result = RunResult(None, True, 0.0)
                self._done.set()
                return
            self._kill_at = min(self._kill_at, time.monotonic() + max(grace, 0))
            self._wake()

    def pause(self) -> None:
        """Always refused: the script runs outside NICOS's control."""
        raise PauseNotSupported('black-box jobs cannot be paused; abort it instead')

    def _wake(self) -> None:
        # Called with the lock held: the monitor closes the pipe under it.
        with contextlib.suppress(BlockingIOError):  # full of wake-ups already
            if not self._closing:
                os.write(self._wake_w, b'.')

    def _wait_leader(self) -> None:
        # WNOWAIT: the zombie keeps the group id reserved (see module doc).
        with contextlib.suppress(ChildProcessError):  # SIGCHLD is ignored
            os.waitid(os.P_PID, self._proc.pid, os.WEXITED | os.WNOWAIT)
        with self._lock:
            self._exited_at = time.monotonic()
            self._wake()

    def _signal(self, sig: int) -> None:
        """Signal the script's group and the rest of its session."""
        pid = self._proc.pid
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, sig)
        for member, group in session_members(pid):
            if group != pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(member, sig)

    def _deliver(self, stream: str, text: str) -> None:
        if self.on_output:
            try:
                self.on_output(stream, text)
            except Exception:  # a broken listener must not stop the job's I/O
                log.exception('on_output failed for black-box job %s', self.pid)

    def _monitor(self) -> None:
        """Pass output on; signal the session on abort, or when the script
        has exited and left processes behind; end when they are all gone."""
        streams = [_Stream('stdout', self._deliver),
                   _Stream('stderr', self._deliver)]
        selector = selectors.DefaultSelector()
        selector.register(self._wake_r, selectors.EVENT_READ)
        for stream, pipe in zip(streams, (self._proc.stdout, self._proc.stderr)):
            selector.register(pipe, selectors.EVENT_READ, stream)
        stderr = b''
        term_sent = kill_sent = False
        gone_at = timeout = None
        try:
            while True:
                for key, _ in selector.select(timeout):
                    data = os.read(key.fd, 65536)
                    if key.data is None:  # a wake-up
                        continue
                    if key.data is streams[1]:
                        stderr = (stderr + data)[-STDERR_TAIL:]
                    if not data:
                        selector.unregister(key.fileobj)
                    key.data.feed(data, time.monotonic())
                now = time.monotonic()
                for stream in streams:
                    stream.flush(now)
                with self._lock:
                    exited = self._exited_at is not None
                    alive = (session_members(self._proc.pid)
                             if exited and gone_at is None else [])
                    if alive and not term_sent:  # left behind by the script
                        self._kill_at = min(self._kill_at, now + DEFAULT_GRACE)
                    aborted, kill_at = self._aborted, self._kill_at
                if (aborted or alive) and not term_sent:
                    self._signal(signal.SIGTERM)
                    term_sent = True
                if now >= kill_at and not kill_sent:
                    self._signal(signal.SIGKILL)
                    kill_sent = True
                if exited and not alive and gone_at is None:
                    gone_at = now
                # Only a process outside the session can still hold a pipe
                # open then: stop reading soon.
                pipes_open = len(selector.get_map()) > 1
                if gone_at is not None and (not pipes_open or now >= gone_at + DRAIN):
                    break
                deadlines = [stream.deadline() for stream in streams]
                deadlines.append(NEVER if kill_sent else kill_at)
                if exited:
                    deadlines.append(now + POLL if gone_at is None else gone_at + DRAIN)
                deadline = min(deadlines)
                timeout = None if deadline == NEVER else max(deadline - now, 0)
        finally:
            self._finish(selector, stderr)

    def _finish(self, selector: selectors.BaseSelector, stderr: bytes) -> None:
        try:
            for key in list(selector.get_map().values()):
                if key.data:
                    key.data.feed(b'', time.monotonic())
            selector.close()
            self._proc.stdout.close()
            self._proc.stderr.close()
            with self._lock:
                self._closing = True
                aborted = self._aborted
                os.close(self._wake_r)
                os.close(self._wake_w)
                if self._exited_at is None:  # only after a failure in the monitor
                    self._signal(signal.SIGKILL)
            code = self._proc.wait()
            shutil.rmtree(os.path.dirname(self.script_path), ignore_errors=True)
            error = None
            if code != 0 and not aborted:
                error = error_report(stderr.decode('utf-8', 'replace'),
                                     self.script_path, code)
            ended = self._exited_at or time.monotonic()
            self.result = RunResult(code, aborted, ended - self._started_at, error)
        finally:
            self._done.set()
