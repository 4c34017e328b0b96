"""The black-box job runner, with real child processes (Linux)."""

import os
import signal
import sys
import textwrap
import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nicos_scriptserver.runner import BlackBoxRun, PauseNotSupported
from nicos_scriptserver.runner.blackbox import DRAIN, MAX_CHUNK, _Stream

pytestmark = pytest.mark.timeout(30)


class Output:
    """Collects what on_output is given; tests wait on it with a timeout."""

    def __init__(self):
        self.chunks = []
        self.cond = threading.Condition()

    def __call__(self, stream, text):
        with self.cond:
            self.chunks.append((stream, text))
            self.cond.notify_all()

    def text(self, stream='stdout'):
        with self.cond:
            return ''.join(t for s, t in self.chunks if s == stream)

    def wait_for(self, predicate, timeout=10.0):
        with self.cond:
            assert self.cond.wait_for(lambda: predicate(self), timeout), \
                f'condition not met; output so far: {self.chunks!r}'

    def pids(self, count):
        """Wait until *count* ``pid N`` lines were printed; return the pids."""
        self.wait_for(lambda out: out.text().count('pid ') >= count)
        return [int(line.split()[1]) for line in self.text().splitlines()
                if line.startswith('pid ')]


@pytest.fixture
def start(tmp_path):
    """``start(script, **kwargs)`` -> (started run, its Output); every run
    is aborted at the end of the test, also when the test fails."""
    runs = []

    def start_run(script, **kwargs):
        output = Output()
        kwargs.setdefault('cwd', str(tmp_path))
        kwargs.setdefault('on_output', output)
        run = BlackBoxRun(textwrap.dedent(script), **kwargs)
        runs.append(run)
        run.start()
        return run, output

    yield start_run
    for run in runs:
        run.abort(grace=0)
        run.wait(timeout=10)


def running(pid):
    """Whether *pid* is a live process (zombies are dead: in containers
    without an init that reaps, killed orphans stay zombies)."""
    try:
        with open(f'/proc/{pid}/stat', 'rb') as stat:
            data = stat.read()
    except FileNotFoundError:
        return False
    return data[data.rindex(b')') + 2:][:1] not in (b'Z', b'X')


def assert_reaped(pid):
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def test_output_arrives_in_order_line_by_line(start):
    run, output = start("""\
        import sys
        for i in range(500):
            print(f'line {i}')
        print('oops', file=sys.stderr)
    """)
    result = run.wait(timeout=10)
    assert result.ok and result.exit_code == 0 and not result.aborted
    assert result.error is None and 0 < result.duration < 10
    stdout = [text for stream, text in output.chunks if stream == 'stdout']
    assert stdout == [f'line {i}\n' for i in range(500)]
    assert output.text('stderr') == 'oops\n'


def test_a_line_arrives_while_the_script_still_runs(start):
    run, output = start("""\
        import time
        print('started')
        time.sleep(60)
    """)
    output.wait_for(lambda out: out.text() == 'started\n')
    with pytest.raises(TimeoutError):
        run.wait(timeout=0)
    run.abort(grace=1.0)
    assert run.wait(timeout=10).aborted


def test_an_unfinished_line_is_passed_on_after_a_short_delay(start):
    run, output = start("""\
        import time
        print('progress: 50%', end='', flush=True)
        time.sleep(60)
    """)
    output.wait_for(lambda out: out.text() == 'progress: 50%')
    assert run.result is None
    run.abort(grace=1.0)
    run.wait(timeout=10)


@pytest.mark.parametrize('script, code, kind, message, line', [
    ('import sys\nsys.exit(3)\n', 3, 'SystemExit',
     'the script exited with status 3', None),
    ("import sys\nsys.exit('no sample')\n", 1, 'SystemExit',
     'the script exited with status 1: no sample', None),
    ("def check(x):\n    if x > 1:\n        raise ValueError(f'too big:\\n{x}')\n"
     "\ncheck(5)\n", 1, 'ValueError', 'too big:\n5', 3),
    ("import json\njson.loads('{')\n", 1, 'JSONDecodeError',
     'Expecting property name enclosed in double quotes: line 1 column 2 '
     '(char 1)', 2),
    ("try:\n    1 / 0\nexcept ZeroDivisionError:\n    raise KeyError('k')\n", 1,
     'KeyError', "'k'", 4),
    ('class Stuck(Exception):\n    pass\n\nraise Stuck\n', 1, 'Stuck', '', 4),
    ('x = 1\nfor i in range(3):\nprint(i)\n', 1, 'IndentationError',
     "expected an indented block after 'for' statement on line 2", 3),
    ('import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n', -9,
     'Signal', 'the script was killed by SIGKILL', None),
])
def test_a_failure_has_an_error_report(start, script, code, kind, message,
                                       line):
    run, _ = start(script)
    result = run.wait(timeout=10)
    assert not result.ok and not result.aborted
    assert result.exit_code == code
    error = result.error
    assert (error['type'], error['message'], error['line']) == \
        (kind, message, line)
    if line is not None:
        assert f'job.py", line {line}' in error['traceback']


# Each process of the tree ignores SIGTERM and reports its pid: the script,
# two forked children with a forked grandchild each, and an exec'd `sleep`
# (SIG_IGN survives exec). One write per line, as processes share the pipe.
TREE = """\
    import os, signal, subprocess, time
    def report(pid):
        os.write(1, f'pid {pid}\\n'.encode())
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    for _ in range(2):
        if os.fork() == 0:
            if os.fork() == 0:
                report(os.getpid())
                time.sleep(60)
                os._exit(0)
            report(os.getpid())
            time.sleep(60)
            os._exit(0)
    report(subprocess.Popen(['sleep', '60']).pid)
    report(os.getpid())
    time.sleep(60)
"""


def test_abort_kills_a_tree_that_ignores_sigterm(start):
    run, output = start(TREE)
    pids = output.pids(6)
    assert run.pid in pids and all(map(running, pids))
    begin = time.monotonic()
    run.abort(grace=0.3)
    result = run.wait(timeout=10)
    assert 0.3 <= time.monotonic() - begin < 5
    assert result.aborted and not result.ok and result.exit_code == -9
    assert result.error is None
    assert [pid for pid in pids if running(pid)] == []
    assert_reaped(run.pid)


def test_abort_from_another_thread_during_wait_is_idempotent(start):
    run, output = start(TREE)
    pids = output.pids(6)
    results = []
    waiter = threading.Thread(target=lambda: results.append(run.wait()))
    waiter.start()
    run.abort(grace=60)
    run.abort(grace=60)
    assert run.result is None  # still within the grace period
    run.abort(grace=0)  # a shorter grace takes effect
    waiter.join(timeout=10)
    assert results and results[0].aborted
    assert [pid for pid in pids if running(pid)] == []
    run.abort()
    assert run.wait() is results[0]


def test_abort_of_a_script_that_exits_on_sigterm_is_quick(start):
    run, output = start("print('ready')\nimport time\ntime.sleep(60)\n")
    output.wait_for(lambda out: out.text() == 'ready\n')
    begin = time.monotonic()
    run.abort()
    result = run.wait(timeout=10)
    assert time.monotonic() - begin < 2
    assert result.aborted and result.exit_code == -signal.SIGTERM


def test_abort_after_the_end_or_before_the_start(start, tmp_path):
    run, _ = start('pass\n')
    result = run.wait(timeout=10)
    run.abort()
    run.abort(grace=0)
    assert run.wait() is result and result.ok and not result.aborted

    unstarted = BlackBoxRun('print(1)\n', cwd=str(tmp_path))
    unstarted.abort()
    unstarted.start()
    assert unstarted.pid is None
    result = unstarted.wait(timeout=0)
    assert result.aborted and result.exit_code is None and not result.ok


def test_processes_left_behind_by_the_script_are_stopped(start):
    run, output = start("""\
        import subprocess
        print('pid', subprocess.Popen(['sleep', '60']).pid)
    """)
    result = run.wait(timeout=10)
    assert result.ok and not result.aborted
    assert not running(output.pids(1)[0])


def test_a_process_that_left_the_session_does_not_hold_the_job(start):
    run, output = start("""\
        import subprocess
        child = subprocess.Popen(['sleep', '60'], start_new_session=True)
        print('pid', child.pid)
    """)
    begin = time.monotonic()
    try:
        assert run.wait(timeout=10).ok
        assert time.monotonic() - begin < DRAIN + 2
    finally:
        os.kill(output.pids(1)[0], signal.SIGKILL)


def test_undecodable_and_split_characters(start):
    run, output = start("""\
        import sys, time
        out = sys.stdout.buffer
        out.write(b'caf\\xe9 \\xff ok\\n\\xc3')
        out.flush()
        time.sleep(0.3)  # the rest of the character comes in a later read
        out.write(b'\\xa9t\\xc3\\xa9\\n')
        print('\\u00fcber')
    """)
    assert run.wait(timeout=10).ok
    assert output.text() == 'caf\ufffd \ufffd ok\n\u00e9t\u00e9\n\u00fcber\n'


def test_very_long_lines_come_in_bounded_chunks(start):
    run, output = start("""\
        print('x' * 1_000_000)
        print('y' * 150_000, end='')
    """)
    assert run.wait(timeout=10).ok
    assert output.text() == 'x' * 1_000_000 + '\n' + 'y' * 150_000
    assert max(len(text) for _, text in output.chunks) <= MAX_CHUNK


PIECES = st.sampled_from([b'\n', b'ab', b'\xc3\xa9', b'\xe2\x82\xac', b'\xff',
                          b'\r', b'x' * 70000])


@settings(max_examples=200, deadline=None)
@given(st.lists(PIECES, max_size=30), st.data())
def test_any_split_of_the_bytes_gives_the_same_text(pieces, data):
    raw = b''.join(pieces)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(raw)), max_size=8)))
    got = []
    stream = _Stream('stdout', lambda name, text: got.append(text))
    for begin, end in zip([0] + cuts, cuts + [len(raw)]):
        if end > begin:  # as os.read: empty only at the end of file
            stream.feed(raw[begin:end], 0.0)  # no time passes: no flush
    stream.feed(b'', 0.0)
    assert ''.join(got) == raw.decode('utf-8', 'replace')
    assert all(0 < len(text) <= MAX_CHUNK for text in got)
    assert all('\n' not in text[:-1] for text in got)


def test_environment_cwd_stdin_and_script_file(start, tmp_path):
    workdir = tmp_path / 'instrument'
    workdir.mkdir()
    # The script text must not be in the command line: this very line of
    # it would find the word.
    run, output = start("""\
        import os, sys
        print(os.environ['INSTRUMENT'], 'HOME' in os.environ)
        print(os.getcwd())
        print(repr(sys.stdin.read()))
        print(sys.argv == [__file__], os.path.basename(__file__))
        print('MARKER' in open('/proc/self/cmdline').read())
    """, cwd=str(workdir), env={'INSTRUMENT': 'demo-tof'},
        script_name='scan.py')
    assert run.wait(timeout=10).ok
    assert output.text().splitlines() == [
        'demo-tof False', str(workdir), "''", 'True scan.py', 'False']
    assert not os.path.exists(os.path.dirname(run.script_path))


def test_nothing_is_leaked(start):
    def fds():
        return len(os.listdir('/proc/self/fd'))

    warm, _ = start('pass\n')
    warm.wait(timeout=10)
    fds_before, threads_before = fds(), threading.active_count()
    runs = [start(script)[0] for script in
            ('print(1)\n', 'raise SystemExit(2)\n', 'import time\ntime.sleep(60)\n')]
    runs[-1].abort(grace=0.5)
    for run in runs:
        run.wait(timeout=10)
        assert_reaped(run.pid)
        assert not os.path.exists(os.path.dirname(run.script_path))
    assert fds() == fds_before
    assert threading.active_count() == threads_before


def test_a_failing_output_callback_does_not_stop_the_job(start, caplog):
    def broken(stream, text):
        raise RuntimeError('listener broke')

    run, _ = start('print(1)\nprint(2)\n', on_output=broken)
    assert run.wait(timeout=10).ok
    assert 'on_output failed' in caplog.text


def test_pause_is_refused_and_misuse_is_reported(tmp_path):
    run = BlackBoxRun('pass\n', cwd=str(tmp_path), python=sys.executable)
    assert run.can_pause is False
    with pytest.raises(PauseNotSupported,
                       match='black-box jobs cannot be paused; abort it instead'):
        run.pause()
    with pytest.raises(RuntimeError, match='start'):
        run.wait()
    run.start()
    with pytest.raises(RuntimeError, match='started already'):
        run.start()
    assert run.wait(timeout=10).ok
