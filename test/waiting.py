"""Waiting on a condition, or on a line of a process's output, in tests,
with a timeout instead of a fixed sleep."""

import os
import selectors
import subprocess
import time


def wait_until(condition, timeout=30.0):
    """Poll *condition* until it returns something true; return that."""
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        assert time.monotonic() < deadline, 'condition not met in time'
        time.sleep(0.05)
    return result


def wait_output_line(proc: subprocess.Popen, expected: str,
                     timeout: float = 90.0) -> str:
    """Read *proc*'s stdout until a line starts with *expected*; return it
    (a start beside busy processes took 30 s, hence the default).

    Reads the pipe unbuffered (os.read): a buffered reader may swallow
    later lines, which a select() on the pipe then never reports.
    """
    deadline = time.monotonic() + timeout
    fd = proc.stdout.fileno()
    pending = getattr(proc, 'pending_output', b'')
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        while True:
            while b'\n' in pending:
                line, pending = pending.split(b'\n', 1)
                text = line.decode(errors='replace')
                if text.startswith(expected):
                    proc.pending_output = pending
                    return text.strip()
            left = deadline - time.monotonic()
            if left <= 0 or not sel.select(left):
                break
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            pending += chunk
    raise AssertionError(f'no {expected!r} within {timeout} s; exit code '
                         f'{proc.poll()}, left over {pending!r}')
