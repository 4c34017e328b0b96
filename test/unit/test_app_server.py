"""The application layer without NICOS: its use cases over a real queue,
with the script thread, the catalog and the dry runs stood in for."""

import logging
import time

import pytest

from nicos_scriptserver.app.dryruns import DryRuns, DryRunSettings
from nicos_scriptserver.app.ports import Ports
from nicos_scriptserver.app.server import ScriptServer
from nicos_scriptserver.estimates import DryRunFacts
from nicos_scriptserver.queue import (Caller, InvalidTransition, JobKind,
                                      JobQueue, JobSpec, JobState, Request)

ALICE = Caller('alice', 10)
LEVELS = {'alice': 10, 'bob': 10}


class Thread:
    """The script thread: records what it is asked, or refuses it."""

    def __init__(self):
        self.asked = []
        self.refuse = False

    def _ask(self, *what):
        if self.refuse:
            raise InvalidTransition('job did not reach a point where it can '
                                    'be interrupted; try again')
        self.asked.append(what)

    def pause(self, job, level, by):
        self._ask('pause', job.id, level, by.name)

    def resume(self, by):
        self._ask('resume', by.name)

    def abort(self, job, level, by):
        self._ask('abort', job.id, level, by.name)

    def emergency_stop(self, job, by):
        self._ask('emergency', job and job.id, by.name)

    def line(self):
        return 7

    def wake(self):
        self.asked.append(('wake',))


class Commands:
    def lookup(self):
        return None

    def between_jobs(self):
        pass


class Runner:
    """Dry runs that take no time and find nothing wrong."""

    def __call__(self, script, user, bridged=None):
        return self

    cancelled = False

    def run(self):
        return DryRunFacts(block_seconds={0: 2.0}, end=(2.0, {}))

    def cancel(self):
        pass


@pytest.fixture
def thread():
    return Thread()


@pytest.fixture
def app(tmp_path, thread):
    queue = JobQueue(tmp_path / 'queue.db')
    made = ScriptServer(queue, Ports(thread, Commands(), LEVELS.get,
                                     lambda: logging.getLogger('test')))
    yield made
    queue.close()


def submit(app, count=1, **spec):
    return [job.id for job in app.submit(
        [dict({'source': f'x = {n}'}, **spec) for n in range(count)], ALICE)]


def started(app):
    job, account = app.next_job()
    assert account == ALICE
    return job.id


def test_a_spec_without_kind_is_an_aware_job_and_ids_come_as_text(app):
    job_id, = submit(app)
    assert app.get(str(job_id)).kind.value == 'aware'
    app.move(str(job_id), 'top')
    with pytest.raises(InvalidTransition, match='no job is running'):
        app.pause(ALICE, 2)


def test_a_pause_is_recorded_then_passed_on(app, thread):
    submit(app, 2)
    job_id = started(app)
    app.pause(ALICE, '3')
    assert thread.asked == [('pause', job_id, 3, 'alice')]
    assert app.queue.current().requested is Request.PAUSE
    app.paused(4)
    job = app.queue.current()
    assert (job.state, job.requested, job.current_line) == \
        (JobState.PAUSED, None, 4)
    app.resume(ALICE)
    assert thread.asked[-1] == ('resume', 'alice')
    app.resumed()
    assert app.queue.current().state is JobState.RUNNING


def test_a_request_the_thread_cannot_take_is_withdrawn(app, thread):
    submit(app, 2)
    started(app)
    thread.refuse = True
    with pytest.raises(InvalidTransition, match='try again'):
        app.pause(ALICE, 2)
    with pytest.raises(InvalidTransition, match='try again'):
        app.abort(ALICE, 2)
    assert app.queue.current().requested is None
    assert app.queue.state.hold_kind == 'safety'   # the hold stays


def test_an_abort_holds_the_queued_jobs_and_blocks_pause_and_resume(app, thread):
    first, second = submit(app, 2)
    started(app)
    app.abort(ALICE, 2)
    assert thread.asked == [('abort', first, 2, 'alice')]
    assert app.queue.state.protected == (second,)
    for refused in (lambda: app.pause(ALICE, 2), lambda: app.resume(ALICE)):
        with pytest.raises(InvalidTransition, match='being aborted'):
            refused()
    app.finished('aborted', None)
    assert app.get(first).state is JobState.ABORTED


def test_continue_releases_a_hold_or_confirms_the_first_held_back_job(app):
    with pytest.raises(InvalidTransition, match='nothing to continue'):
        app.continue_(ALICE)
    first, = submit(app, held=True, hold_reason='needs the beam')
    assert app.attention() == ('held back', first)
    app.continue_(ALICE)
    assert not app.get(first).held
    app.hold(ALICE)
    app.continue_(ALICE)
    assert not app.queue.state.held


def test_stop_without_a_job_keeps_a_waiting_queue_held(app):
    with pytest.raises(InvalidTransition, match='no script is running'):
        app.stop(ALICE, 2)
    job_id, = submit(app, held=True)
    app.stop(ALICE, 2)
    assert app.queue.state.protected == (job_id,)


def test_emergency_and_watchdog_stops_hold_the_queued_jobs(app, thread):
    job_id, = submit(app)
    app.emergency_stop(ALICE)
    assert thread.asked == [('emergency', None, 'alice')]
    assert app.queue.state.hold_reason == 'emergency stop by alice'
    app.release()
    app.safety_stop(Caller('watchdog', 20), 2)
    assert app.queue.state.protected == (job_id,)
    app.release()
    started(app)
    app.emergency_stop(ALICE)
    assert thread.asked[-1] == ('emergency', job_id, 'alice')
    assert app.queue.current().requested is Request.ABORT


def test_a_job_of_an_account_that_is_gone_fails_and_the_next_starts(app):
    gone, = [job.id for job in app.submit({'source': 'x = 1'},
                                          Caller('carol', 10))]
    app.queue.set_on_failure('continue')
    nxt, = submit(app)
    assert started(app) == nxt
    assert app.get(gone).error['type'] == 'UnknownAccount'


def test_the_view_of_a_running_job_has_its_live_line(app):
    submit(app)
    job = app.get(started(app))
    assert app.job_view(job)['current_line'] == 7


def test_jobs_wait_for_their_dry_run_unless_started_now(tmp_path, thread):
    queue = JobQueue(tmp_path / 'queue.db')
    dry_runs = DryRuns(queue, Runner(), LEVELS.get,
                       DryRunSettings('hold', 1, 10), logging.getLogger('t'))
    app = ScriptServer(queue, Ports(thread, Commands(), LEVELS.get,
                                    lambda: logging.getLogger('test')),
                       dry_runs)
    try:
        now, = [job.id for job in app.submit({'source': 'x = 1'}, ALICE,
                                             start_now=True)]
        assert thread.asked == [('wake',)]
        later, = submit(app)
        assert app.next_job()[0].id == now
        app.finished('done', None)
        deadline = time.monotonic() + 10
        while app.next_job() is None:   # its dry run comes first
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert app.queue.current().id == later
        assert app.get(later).estimate['state'] == 'ok'
    finally:
        app.close()
        queue.close()



def test_unnamed_jobs_are_named_after_what_they_run(app):
    job_id, = submit(app)
    assert app.get(job_id).name == 'x = 0'
    named, = submit(app, name='mine')
    # An edit of the content renames a job named after its content ...
    assert app.edit(job_id, {'source': 'y = 1\n'}, ALICE).name == 'y = 1'
    # ... but never a name someone gave it; an emptied name is made anew.
    assert app.edit(named, {'source': 'z = 2\n'}, ALICE).name == 'mine'
    assert app.edit(named, {'name': ''}, ALICE).name == 'z = 2'


def test_a_requeued_unnamed_job_gets_a_name(app):
    # Jobs queued before names were made have none.
    job, = app.queue.submit([JobSpec(kind=JobKind.AWARE, source='1/0\n')],
                            owner='alice')
    assert job.name == ''
    started(app)
    app.queue.finish('failed')
    assert app.requeue(job.id, None, None, ALICE).name == '1/0'


def test_a_command_left_after_its_job_stopped_running_raises_nothing(app):
    submit(app)
    started(app)
    app.enter_command()
    app.report_progress(0.5, 'half')
    app.paused(3)  # as if the job had been stopped meanwhile
    app.leave_command()
    assert app.queue.current().progress == 0.5
