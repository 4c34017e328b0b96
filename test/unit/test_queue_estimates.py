"""The queue's side of dry runs: reports on jobs, holding back, waiting."""

import pytest

from nicos_scriptserver.app.spec import parse_spec, parse_specs
from nicos_scriptserver.queue import (Caller, InvalidValue, JobQueue,
                                      JobState, NotEditable)

PENDING = {'state': 'pending', 'seconds': None}
OK = {'state': 'ok', 'seconds': 12.5}
FAILED = {'state': 'failed', 'seconds': None}


@pytest.fixture
def queue(tmp_path):
    with JobQueue(tmp_path / 'queue.db') as opened:
        yield opened


def submit(queue, *sources):
    return queue.submit(parse_specs([{'kind': 'aware', 'source': s}
                                     for s in sources]), owner='u')


def test_report_is_stored_with_the_next_change_and_a_hold_at_once(queue, tmp_path):
    first, second = submit(queue, 'a()', 'b()')
    queue.set_estimate(first.id, OK, for_source='a()')
    queue.set_estimate(second.id, FAILED, hold_reason='dry run: limit')
    queue.close()
    with JobQueue(tmp_path / 'queue.db') as reopened:
        # An unsaved report is redone after a restart; a hold is kept.
        assert reopened.get(first.id).estimate is None
        assert reopened.get(second.id).estimate == FAILED
        assert reopened.get(second.id).held
        reopened.set_estimate(first.id, OK)
        reopened.skip(first.id)
    with JobQueue(tmp_path / 'queue.db') as again:
        assert again.get(first.id).estimate == OK


def test_report_of_an_edited_script_is_refused(queue):
    job, = submit(queue, 'a()')
    queue.edit(job.id, by=Caller('u', 10), source='b()')
    with pytest.raises(NotEditable, match='edited after its dry run'):
        queue.set_estimate(job.id, OK, for_source='a()')
    assert queue.get(job.id).estimate is None


def test_editing_drops_the_report(queue):
    job, = submit(queue, 'a()')
    queue.set_estimate(job.id, OK)
    assert queue.edit(job.id, by=Caller('u', 10), source='b()').estimate is None
    assert queue.edit(job.id, by=Caller('u', 10), name='renamed').estimate is None


def test_failed_dry_run_holds_the_job_back_until_confirmed(queue):
    first, second = submit(queue, 'a()', 'b()')
    queue.set_estimate(first.id, FAILED, hold_reason='dry run: limit (line 2)')
    held = queue.get(first.id)
    assert held.held and held.hold_reason == 'dry run: limit (line 2)'
    assert queue.start_next().id == second.id   # passed over
    queue.finish('done')
    queue.confirm(first.id)
    assert queue.start_next().id == first.id


def test_a_passing_dry_run_of_an_edited_script_releases_it(queue, tmp_path):
    job, = submit(queue, 'a()')
    queue.set_estimate(job.id, FAILED, hold_reason='dry run: limit')
    assert queue.get(job.id).held_by_dry_run
    queue.edit(job.id, by=Caller('u', 10), source='b()')
    # A report that is not a verdict (pending, running) changes nothing.
    queue.set_estimate(job.id, PENDING, for_source='b()')
    assert queue.get(job.id).held and queue.start_next() is None
    released = queue.set_estimate(job.id, OK, for_source='b()', passed=True)
    assert not released.held and not released.held_by_dry_run
    assert released.hold_reason == ''
    queue.close()
    with JobQueue(tmp_path / 'queue.db') as reopened:   # written at once
        assert not reopened.get(job.id).held
        assert reopened.start_next().id == job.id


def test_a_passing_dry_run_does_not_release_a_job_submitted_held(queue):
    job, = queue.submit(parse_spec({'kind': 'aware', 'source': 'a()',
                                    'held': True,
                                    'hold_reason': 'needs the beam'}),
                        owner='u')
    assert queue.set_estimate(job.id, OK, passed=True).held
    queue.confirm(job.id)
    assert queue.start_next().id == job.id


def test_current_job_may_get_its_report_late(queue):
    job, = submit(queue, 'a()')
    queue.start_next()
    queue.set_estimate(job.id, OK, hold_reason='ignored for a running job')
    current = queue.current()
    assert current.estimate == OK and not current.held


def test_finished_job_gets_no_report(queue):
    job, = submit(queue, 'a()')
    queue.start_next()
    queue.finish('done')
    with pytest.raises(NotEditable, match='finished'):
        queue.set_estimate(job.id, OK)


def test_report_must_be_json_data(queue):
    job, = submit(queue, 'a()')
    with pytest.raises(InvalidValue):
        queue.set_estimate(job.id, {'seconds': object()})


def test_mark_unestimated_marks_only_jobs_without_a_report(queue):
    first, second, third = submit(queue, 'a()', 'b()', 'c()')
    queue.set_estimate(second.id, OK)
    events = []
    queue.add_listener(events.append)
    assert queue.mark_unestimated(PENDING) == [first.id, third.id]
    assert len(events) == 1   # one write, one delivery
    assert queue.get(first.id).estimate == PENDING
    assert queue.get(second.id).estimate == OK
    assert queue.mark_unestimated(PENDING) == []


def test_start_next_waits_for_the_first_job_that_is_not_ready(queue):
    first, second = submit(queue, 'a()', 'b()')
    ready = {second.id}
    assert queue.start_next(lambda job: job.id in ready) is None
    assert queue.get(first.id).state is JobState.QUEUED
    ready.add(first.id)
    assert queue.start_next(lambda job: job.id in ready).id == first.id
