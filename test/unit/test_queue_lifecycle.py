"""The job lifecycle: the transition table, and the queue following it.

Requests (a pause asked for, an abort under way) are stages of their own:
the queue records them at once and announces them, so that clients see
them, and refuses what a stage does not allow with the rule.
"""

import re

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from nicos_scriptserver.queue import (InvalidTransition, JobState,
                                      QueueMachine)
from nicos_scriptserver.queue.lifecycle import TRANSITIONS, advance, allows
from nicos_scriptserver.queue.model import Request
from test_queue_machine import add, refused, spec


@pytest.fixture
def m():
    machine = QueueMachine()
    yield machine
    assert machine.data().problems() == []


def test_the_table_ends_jobs_without_requests_and_never_leaves_an_end():
    for operation, moves in TRANSITIONS.items():
        for (before, _), (after, requested) in moves.items():
            assert not before.finished, operation
            if after.finished or after.waiting:
                assert requested is None, operation
            if requested is not None:
                assert after.current, operation


def test_a_pause_request_is_announced_and_the_pause_clears_it(m):
    add(m, 2)
    m.start(1, 20.0)
    change = m.request_pause()
    job = change.result
    assert (job.state, job.requested) == (JobState.RUNNING, Request.PAUSE)
    assert change.events == [('job_changed', job.to_dict())]
    assert job.to_dict()['requested'] == 'pause' and not change.durable
    # Asked again, it is sent again.
    assert m.request_pause().result.requested is Request.PAUSE
    paused = m.pause(25.0).result
    assert (paused.state, paused.requested) == (JobState.PAUSED, None)
    with refused(InvalidTransition, 'job 1 is already paused'):
        m.request_pause()


def test_an_abort_request_holds_the_queued_jobs_and_blocks_pause_and_resume(m):
    add(m, 3)
    m.start(1, 20.0)
    m.pause(21.0)
    change = m.request_abort('job aborted by bob')
    assert change.durable and [name for name, _ in change.events] == \
        ['job_changed', 'queue_state']
    assert m.current().requested is Request.ABORT
    assert (m.queue.hold_kind, m.queue.protected) == ('safety', (2, 3))
    for operation in (m.request_pause, lambda: m.resume(22.0),
                      lambda: m.pause(22.0)):
        with refused(InvalidTransition, 'job 1 is being aborted'):
            operation()
    aborted = m.finish('aborted', 23.0).result
    assert (aborted.state, aborted.requested) == (JobState.ABORTED, None)


def test_an_abort_request_with_nothing_queued_writes_nothing(m):
    add(m)
    m.start(1, 20.0)
    change = m.request_abort('job aborted by bob')
    assert not change.durable and not m.queue.held


def test_a_request_that_could_not_be_passed_on_is_withdrawn(m):
    add(m)
    m.start(1, 20.0)
    with refused(InvalidTransition, 'nothing was asked of job 1'):
        m.withdraw_request()
    m.request_pause()
    assert m.withdraw_request().result.requested is None
    m.request_abort('job aborted by bob')
    m.withdraw_request()
    assert m.current().requested is None and m.request_pause()


def test_a_job_ends_as_it_ends_whatever_was_asked_of_it(m):
    add(m, 2)
    m.start(1, 20.0)
    m.request_abort('job aborted by bob')
    assert m.finish('done', 30.0).result.requested is None
    m.release()
    m.start(2, 31.0)
    m.request_pause()
    assert m.finish('failed', 32.0).result.state is JobState.FAILED


def test_a_job_that_ends_before_it_can_pause_holds_the_queued_jobs(m):
    add(m, 3)
    m.start(1, 20.0)
    m.request_pause()
    change = m.finish('done', 21.0)
    assert change.durable and change.result.state is JobState.DONE
    assert (m.queue.held, m.queue.hold_kind, m.queue.protected,
            m.queue.hold_reason) == \
        (True, 'safety', (2, 3), 'job 1 ended before it could pause')
    assert m.next_job() is None
    with refused(InvalidTransition, 'cannot start job 2: the queue is held '
                                    '(job 1 ended before it could pause); '
                                    'release it first'):
        m.start(2, 22.0)
    m.release()
    assert m.next_job().id == 2


def test_a_job_that_ends_before_it_can_pause_holds_nothing_with_nothing_queued(m):
    add(m)
    m.start(1, 20.0)
    m.request_pause()
    m.finish('done', 21.0)
    assert not m.queue.held
    later, = add(m)
    assert m.next_job().id == later


@pytest.mark.parametrize('policy, reason', [
    ('hold', 'job 1 failed'),
    ('continue', 'job 1 ended before it could pause'),
])
def test_a_failure_while_a_pause_is_asked_for_holds_the_queue(m, policy, reason):
    add(m, 2)
    m.set_on_failure(policy)
    m.start(1, 20.0)
    m.request_pause()
    m.finish('failed', 21.0)
    assert m.queue.held and m.queue.hold_reason == reason


def test_a_person_s_hold_stays_when_a_job_ends_before_it_can_pause(m):
    add(m, 2)
    m.start(1, 20.0)
    m.hold('bob is aligning')
    m.request_pause()
    m.finish('done', 21.0)
    assert (m.queue.hold_kind, m.queue.hold_reason) == ('manual', 'bob is aligning')


def test_a_withdrawn_pause_holds_nothing_at_the_end(m):
    add(m, 2)
    m.start(1, 20.0)
    m.request_pause()
    m.withdraw_request()
    m.finish('done', 21.0)
    assert not m.queue.held and m.next_job().id == 2


def test_requests_need_a_current_job_that_can_pause(m):
    with refused(InvalidTransition, 'cannot pause the current job: no job is '
                                    'running'):
        m.request_pause()
    with refused(InvalidTransition, 'cannot abort the current job: no job is '
                                    'running'):
        m.request_abort('job aborted by bob')
    m.submit(spec(kind='blackbox'), 'alice', 1.0)
    m.start(1, 2.0)
    with refused(InvalidTransition, 'job 1 is a black-box job: it cannot be '
                                    'paused, only aborted'):
        m.request_pause()
    assert m.request_abort('job aborted by bob').result.requested is \
        Request.ABORT


def test_an_interrupted_job_loses_its_request(m):
    add(m)
    m.start(1, 20.0)
    m.request_pause()
    job = m.recover(30.0).result
    assert (job.state, job.requested) == (JobState.INTERRUPTED, None)


class Lifecycle(RuleBasedStateMachine):
    """Random operations on the current job: each is done exactly when the
    table allows it, and leads where the table says."""

    def __init__(self):
        super().__init__()
        self.m = QueueMachine()
        self.now = 0.0

    def tick(self):
        self.now += 1.0
        return self.now

    def check(self, operation, table_name, do):
        job = self.m.current()
        allowed = job is not None and allows(job, table_name) and not (
            table_name in ('pause', 'request pause') and
            job.kind.value == 'blackbox')
        if not allowed:
            with pytest.raises(InvalidTransition):
                do()
            assert self.m.current() == job
            return
        expected = advance(job, table_name)
        result = do().result
        assert (result.state, result.requested) == expected, operation

    @rule(kind=st.sampled_from(['aware', 'blackbox']))
    def submit_and_start(self, kind):
        self.m.submit(spec(kind=kind), 'alice', self.tick())
        self.m.release()
        job = self.m.next_job()
        if job is not None:
            self.m.start(job.id, self.tick())

    @rule()
    def request_pause(self):
        self.check('request pause', 'request pause', self.m.request_pause)

    @rule()
    def pause(self):
        self.check('pause', 'pause', lambda: self.m.pause(self.tick()))

    @rule()
    def resume(self):
        self.check('resume', 'resume', lambda: self.m.resume(self.tick()))

    @rule()
    def request_abort(self):
        self.check('request abort', 'request abort',
                   lambda: self.m.request_abort('a test'))

    @rule()
    def withdraw(self):
        self.check('withdraw', 'withdraw', self.m.withdraw_request)

    @rule(outcome=st.sampled_from(['done', 'failed', 'aborted']))
    def finish(self, outcome):
        job = self.m.current()
        queued = any(waiting.state is JobState.QUEUED
                     for waiting in self.m.waiting())
        self.check(outcome, outcome, lambda: self.m.finish(outcome,
                                                           self.tick()))
        if job is not None and job.requested is Request.PAUSE and queued:
            # It ended without pausing: nothing starts by itself.
            assert self.m.queue.held and self.m.next_job() is None

    @invariant()
    def consistent(self):
        assert self.m.data().problems() == []
        current = self.m.current()
        if current is not None and current.requested is Request.PAUSE:
            assert current.state is JobState.RUNNING


TestLifecycle = Lifecycle.TestCase
TestLifecycle.settings = settings(
    max_examples=60, stateful_step_count=30, deadline=None,
    suppress_health_check=[HealthCheck.too_slow])


def test_refusals_name_the_rule():
    m = QueueMachine()
    add(m)
    m.start(1, 2.0)
    with pytest.raises(InvalidTransition, match=re.escape(
            'job 1 is not paused: only a paused job can be resumed')):
        m.resume(3.0)
