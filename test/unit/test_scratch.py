"""Temporary folders of a process: what a killed process leaves is removed
by the next one, what a living one uses never is."""

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from nicos_scriptserver.runner.scratch import ROOT_PREFIX, remove_abandoned

# A process that makes a scratch folder, says where, and waits to be killed.
HOLDER = textwrap.dedent('''
    import sys, time
    from nicos_scriptserver.runner.scratch import scratch_dir
    print(scratch_dir('job-'), flush=True)
    time.sleep(600)
''')


@pytest.fixture
def holders(tmp_path):
    """Start processes whose temporary directory is *tmp_path*; each
    returns (process, its scratch folder)."""
    started = []

    def start():
        proc = subprocess.Popen(
            [sys.executable, '-c', HOLDER], stdout=subprocess.PIPE, text=True,
            env={**os.environ, 'TMPDIR': str(tmp_path)})
        started.append(proc)
        return proc, proc.stdout.readline().strip()
    yield start
    for proc in started:
        proc.kill()
        proc.wait()


def roots(folder):
    return sorted(p.name for p in folder.iterdir())


def test_a_folder_is_private_and_inside_its_processs_root(holders, tmp_path):
    _proc, folder = holders()
    root = os.path.dirname(folder)
    assert os.path.dirname(root) == str(tmp_path)
    assert os.path.basename(root).startswith(ROOT_PREFIX)
    assert os.stat(folder).st_mode & 0o777 == 0o700
    assert os.stat(root).st_mode & 0o777 == 0o700


def test_the_root_of_a_killed_process_is_removed_and_a_living_ones_kept(
        holders, tmp_path):
    killed, killed_folder = holders()
    _living, living_folder = holders()
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert os.path.isdir(killed_folder)   # nothing cleaned up after it

    removed = remove_abandoned(str(tmp_path))
    assert removed == [os.path.dirname(killed_folder)]
    assert not os.path.exists(os.path.dirname(killed_folder))
    assert os.path.isdir(living_folder)
    assert remove_abandoned(str(tmp_path)) == []


def test_the_next_process_removes_what_a_killed_one_left(holders, tmp_path):
    killed, killed_folder = holders()
    killed.kill()
    killed.wait()
    _next, next_folder = holders()
    assert roots(tmp_path) == [os.path.basename(os.path.dirname(next_folder))]


def test_a_process_that_ends_removes_its_root(tmp_path):
    subprocess.run([sys.executable, '-c', 'from nicos_scriptserver.runner.'
                    'scratch import scratch_dir; scratch_dir("job-")'],
                   env={**os.environ, 'TMPDIR': str(tmp_path)}, check=True)
    assert roots(tmp_path) == []


def test_look_alikes_that_are_not_roots_are_left_alone(tmp_path):
    (tmp_path / (ROOT_PREFIX + 'file')).write_text('not a folder')
    (tmp_path / (ROOT_PREFIX + 'nolock')).mkdir()
    os.symlink(tmp_path / (ROOT_PREFIX + 'nolock'),
               tmp_path / (ROOT_PREFIX + 'link'))
    before = roots(tmp_path)
    assert remove_abandoned(str(tmp_path)) == []
    assert roots(tmp_path) == before
