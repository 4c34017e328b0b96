"""What stock clients see of the queue, against a real queue file.

A client that follows only the stock events (``status``, ``request``,
``blocked``, ``updated``, ``rearranged``, ``processing``) must agree with
``getstatus`` after every change, whatever the changes are; and what both
say must be the queue: its queued jobs in order, held-back ones named so,
and the status paused exactly while nothing runs and the queue waits for
a person.
"""

import logging
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nicos.protocols.daemon import STATUS_IDLE, STATUS_IDLEEXC, \
    STATUS_INBREAK, STATUS_RUNNING

from nicos_scriptserver.app.spec import parse_specs
from nicos_scriptserver.app.attention import HELD, HELD_BACK
from nicos_scriptserver.daemon.stockview import StockView
from nicos_scriptserver.queue import JobQueue, QueueError

LOG = logging.getLogger('stockview test')


class Controller:
    """NICOS's execution controller, as far as the view reads it."""

    def __init__(self):
        self.status, self.lineno = STATUS_IDLE, -1


class Mirror:
    """The status and requests, from the events alone."""

    def __init__(self, status, requests):
        self.status = status[0]
        self.requests = [dict(r) for r in requests]

    def __call__(self, name, data):
        if name == 'status':
            self.status = data[0]
        elif name == 'request':
            self.requests.append(dict(data))
        elif name == 'updated':
            self.requests = [dict(data) if r['reqid'] == data['reqid'] else r
                             for r in self.requests]
        elif name == 'blocked':
            self.requests = [r for r in self.requests if r['reqid'] not in data]
        elif name == 'rearranged':
            index = {r['reqid']: r for r in self.requests}
            self.requests = [index[i] for i in data]
        elif name == 'processing':
            self.requests = [r for r in self.requests
                             if r['reqid'] != data['reqid']]

    def view(self):
        return self.status, [(r['reqid'], r['name']) for r in self.requests]


class Daemon:
    """A queue, its stock view, a controller, and a client of the events."""

    def __init__(self, path):
        self.jobs = JobQueue(path)
        self.controller = Controller()
        self.events = []
        self.stock = StockView(self.jobs, self.emit, lambda: LOG)
        self.stock.attach(self.controller)
        self.jobs.add_listener(self.stock)
        self.mirror = Mirror(*self.stock.snapshot())

    def emit(self, name, data):
        self.events.append((name, data))
        if hasattr(self, 'mirror'):
            self.mirror(name, data)

    def set_status(self, status):
        """The controller's status changes (its observer's event)."""
        self.controller.status = status
        self.stock.controller_event('status', (status, self.controller.lineno))

    def run_next(self):
        """The script thread starts the next job: NICOS says 'processing'
        (its request, serialized: `JobRequest.serialize`)."""
        job = self.jobs.start_next()
        if job is not None:
            self.stock.controller_event('processing', {
                'reqid': str(job.id), 'name': job.name, 'script': job.source,
                'user': job.owner, 'job': job.id})
            self.set_status(STATUS_RUNNING)
        return job

    def finish(self, outcome):
        self.jobs.finish(outcome)
        self.set_status(STATUS_IDLE if outcome == 'done' else STATUS_IDLEEXC)

    def expected(self):
        """What stock clients should see, from the queue itself."""
        queued = [job for job in self.jobs.waiting() if job.state.value == 'queued']
        names = [(str(job.id), f'[held: {job.hold_reason}] {job.name}'.rstrip()
                  if job.held else job.name) for job in queued]
        waits = self.jobs.current() is None and queued and (
            self.jobs.state.held or all(job.held for job in queued))
        idle = self.controller.status in (STATUS_IDLE, STATUS_IDLEEXC)
        return (STATUS_INBREAK if waits and idle else self.controller.status,
                names)

    def check(self):
        status, requests = self.stock.snapshot()
        seen = (status[0], [(r['reqid'], r['name']) for r in requests])
        assert seen == self.mirror.view() == self.expected()


@pytest.fixture
def daemon(tmp_path):
    made = Daemon(tmp_path / 'queue.db')
    yield made
    made.jobs.close()


def submit(daemon, *names):
    return submit_to(daemon.jobs, *names)


def submit_to(jobs, *names):
    return [job.id for job in jobs.submit(
        parse_specs([{'kind': 'aware', 'name': name, 'source': f'{name}()'}
                     for name in names]), 'alice')]


def test_a_held_back_job_is_listed_with_why_and_released_by_a_passing_dry_run(
        daemon):
    job, = submit(daemon, 'scan')
    daemon.jobs.set_estimate(job, {'state': 'failed'}, hold_reason='dry run: '
                             'T_sample 400 K above 300 K')
    assert daemon.stock.requests()[0]['name'] == \
        '[held: dry run: T_sample 400 K above 300 K] scan'
    assert daemon.events[-2:] == [
        ('updated', daemon.stock.requests()[0]), ('status', (STATUS_INBREAK, -1))]
    assert daemon.stock.attention() == (HELD_BACK, job)
    daemon.jobs.set_estimate(job, {'state': 'ok'}, passed=True)
    assert daemon.stock.requests()[0]['name'] == 'scan'
    assert daemon.stock.attention() is None
    daemon.check()


def test_the_status_is_paused_while_a_hold_keeps_queued_jobs_waiting(daemon):
    daemon.jobs.hold('held by alice')
    daemon.check()
    assert daemon.stock.snapshot()[0][0] == STATUS_IDLE   # nothing waits
    first, = submit(daemon, 'first')
    assert daemon.stock.snapshot()[0][0] == STATUS_INBREAK
    assert daemon.stock.attention() == (HELD, None)
    daemon.jobs.skip(first)   # a skipped job waits for nobody
    assert daemon.stock.snapshot()[0][0] == STATUS_IDLE
    daemon.check()


def test_the_log_says_why_once_per_reason(daemon, caplog):
    caplog.set_level(logging.WARNING, LOG.name)
    daemon.jobs.hold('held by alice')
    submit(daemon, 'a', 'b')
    submit(daemon, 'c')
    assert [r.getMessage() for r in caplog.records] == [
        'Queue held (held by alice): 2 jobs waiting; continue runs them.']
    daemon.jobs.release()
    daemon.jobs.hold('held by bob')
    assert caplog.records[-1].getMessage() == \
        'Queue held (held by bob): 3 jobs waiting; continue runs them.'


def started_while_delivered(daemon, change):
    """Run *change* in another thread, whose delivery of it to this view
    waits behind a slow listener (one that writes to many clients) while
    the script thread starts the next job; return that job."""
    gate, reached = threading.Event(), threading.Event()

    def slow_listener(events):
        if not gate.is_set():
            reached.set()
            gate.wait(10)
    daemon.jobs.remove_listener(daemon.stock)
    daemon.jobs.add_listener(slow_listener)
    daemon.jobs.add_listener(daemon.stock)
    changer = threading.Thread(target=change)
    changer.start()
    try:
        assert reached.wait(10)
        job = daemon.run_next()   # its own delivery is left to the changer
        assert job is not None
    finally:
        gate.set()
        changer.join(10)
    assert 'processing' in [name for name, _ in daemon.events]
    daemon.check()
    assert daemon.stock.snapshot()[0][0] == STATUS_RUNNING
    return job


def test_a_job_started_while_its_submission_is_delivered_is_not_listed_again(
        daemon):
    """The thread that delivers the queue's changes delivers those of other
    threads too, so the script thread can start a job, and NICOS announce
    it ('processing'), while its submission is still on its way to this
    view. Its 'request' must not reach clients after its 'processing':
    they would list a running job as waiting until they asked again."""
    started_while_delivered(daemon, lambda: submit(daemon, 'scan'))
    daemon.finish('done')
    submit(daemon, 'next')
    daemon.check()


def test_a_held_back_job_started_while_its_release_is_delivered_is_not_listed_again(
        daemon):
    """The same for a listed job whose release (its dry run passed) is on
    its way while it starts: the proxy's mirror listed it as waiting after
    it was done, with getstatus empty."""
    job, = submit(daemon, 'scan')
    daemon.jobs.set_estimate(job, {'state': 'failed'}, hold_reason='dry run: '
                             'T_sample 400 K above 300 K')
    started = started_while_delivered(daemon, lambda: daemon.jobs.set_estimate(
        job, {'state': 'ok'}, passed=True))
    assert started.id == job
    daemon.finish('done')
    daemon.check()


OPERATIONS = st.lists(st.tuples(
    st.sampled_from(['submit', 'skip', 'unskip', 'move', 'remove', 'hold',
                     'release', 'safety', 'fail_dry_run', 'pass_dry_run',
                     'confirm', 'run', 'pause', 'finish']),
    st.integers(0, 5)), min_size=3, max_size=40)


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(operations=OPERATIONS)
def test_events_and_getstatus_agree_with_the_queue_after_every_change(
        tmp_path_factory, operations):
    daemon = Daemon(tmp_path_factory.mktemp('queue') / 'queue.db')
    try:
        daemon.check()
        for name, number in operations:
            waiting = [job.id for job in daemon.jobs.waiting()]
            job_id = waiting[number % len(waiting)] if waiting else 1
            try:
                apply(daemon, name, number, job_id)
            except QueueError:
                pass   # not allowed now: changes nothing
            daemon.check()
    finally:
        daemon.jobs.close()


def apply(daemon, name, number, job_id):
    jobs = daemon.jobs
    if name == 'submit':
        submit(daemon, *[f'job{n}' for n in range(number % 3 + 1)])
    elif name in ('skip', 'unskip', 'remove', 'confirm'):
        getattr(jobs, name)(job_id)
    elif name == 'move':
        jobs.move(job_id, ['top', 'bottom', 'up', 'down', 0, 1][number])
    elif name == 'hold':
        jobs.hold('held for a test')
    elif name == 'release':
        jobs.release()
    elif name == 'safety':
        jobs.hold_for_safety('emergency stop for a test')
    elif name == 'fail_dry_run':
        jobs.set_estimate(job_id, {'state': 'failed'},
                          hold_reason=f'dry run: problem {number}')
    elif name == 'pass_dry_run':
        jobs.set_estimate(job_id, {'state': 'ok'}, passed=True)
    elif name == 'run' and jobs.current() is None:
        daemon.run_next()
    elif name == 'pause' and jobs.current() is not None:
        jobs.pause()
        daemon.set_status(STATUS_INBREAK)
    elif name == 'finish' and jobs.current() is not None:
        if jobs.is_paused():
            jobs.resume()
            daemon.set_status(STATUS_RUNNING)
        daemon.finish(['done', 'failed', 'aborted'][number % 3])


def test_nicos_starting_its_setup_says_nothing_of_a_waiting_queue(
        tmp_path, caplog):
    """After a restart the queue is held; NICOS first runs the request that
    sets it up ('processing', status still idle). Why the queue waits is
    said once that is done, after the setup's messages, where a client
    that shows the last few messages (the IBEX GUI) sees it."""
    caplog.set_level(logging.WARNING, LOG.name)
    jobs = JobQueue(tmp_path / 'queue.db')
    try:
        submit_to(jobs, 'a', 'b')
        jobs.hold('job 1 was interrupted by a server restart')
        events, controller = [], Controller()
        stock = StockView(jobs, lambda *event: events.append(event),
                          lambda: LOG)
        stock.attach(controller)
        jobs.add_listener(stock)
        stock.controller_event('processing', {
            'reqid': '0', 'name': 'setting up NICOS', 'script': 'NicosSetup()',
            'user': 'system'})
        assert [name for name, _ in events] == ['processing']
        assert not caplog.records
        for status in (STATUS_RUNNING, STATUS_IDLE):
            controller.status = status
            stock.controller_event('status', (status, -1))
        assert events[-1] == ('status', (STATUS_INBREAK, -1))
        assert [r.getMessage() for r in caplog.records] == [
            'Queue held (job 1 was interrupted by a server restart): '
            '2 jobs waiting; continue runs them.']
    finally:
        jobs.close()
