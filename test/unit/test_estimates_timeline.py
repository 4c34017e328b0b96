"""Expected times of the current and waiting jobs."""

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nicos_scriptserver.estimates import remaining_seconds, timeline
from nicos_scriptserver.queue import Job, JobKind, JobState

NOW = 1_000_000.0


def job(job_id, seconds=None, state=JobState.QUEUED, **values):
    estimate = None if seconds is None else {'state': 'ok', 'seconds': seconds}
    return Job(id=job_id, kind=JobKind.AWARE, source='x = 1', owner='u',
               changed_by='u',
               state=state, created=NOW - 100, estimate=estimate, **values)


def running(seconds, started_ago, state=JobState.RUNNING, **values):
    return job(1, seconds, state, started_at=NOW - started_ago, **values)


def test_waiting_jobs_follow_each_other():
    result = timeline(None, [job(2, 10), job(3, 20)], NOW)
    assert [(j['expected_start'], j['expected_end']) for j in result['jobs']] \
        == [(NOW, NOW + 10), (NOW + 10, NOW + 30)]
    assert result['queue_end'] == NOW + 30 and result['complete']


def test_running_job_remaining_from_its_estimate():
    current = running(60, started_ago=20)
    result = timeline(current, [job(2, 10)], NOW)
    assert result['current']['elapsed'] == 20
    assert result['current']['remaining'] == 40
    assert result['current']['expected_end'] == NOW + 40
    assert result['jobs'][0]['expected_start'] == NOW + 40


def test_paused_time_is_elapsed_but_not_progress():
    # Ran 20 s, then paused for 30 s so far.
    current = running(60, started_ago=50, state=JobState.PAUSED,
                      paused_since=NOW - 30)
    result = timeline(current, [], NOW)['current']
    assert result['elapsed'] == 50 and result['active'] == 20
    assert result['remaining'] == 40
    later = timeline(current, [], NOW + 100)['current']
    assert later['remaining'] == 40
    assert later['expected_end'] == NOW + 140


def test_progress_blends_with_the_estimate():
    # Half done after 20 s of a job estimated at 60 s: the rate says 20 s
    # more, the estimate 40 s; blended by the fraction: 30 s.
    assert remaining_seconds(running(60, 20, progress=0.5), NOW) == 30
    # Without an estimate the rate alone counts.
    assert remaining_seconds(running(None, 20, progress=0.25), NOW) == 60
    assert remaining_seconds(running(None, 20), NOW) is None


def test_overdue_job_has_nothing_left_by_its_estimate():
    assert remaining_seconds(running(10, started_ago=25), NOW) == 0


def test_skipped_and_held_back_jobs_get_no_times():
    skipped = job(2, 10, JobState.SKIPPED)
    held = job(3, 10, held=True, hold_reason='dry run: limit')
    result = timeline(None, [skipped, held, job(4, 5)], NOW)
    starts = [j['expected_start'] for j in result['jobs']]
    assert starts == [None, None, NOW]
    assert result['queue_end'] == NOW + 5


def test_unknown_estimate_leaves_later_jobs_unknown():
    result = timeline(None, [job(2, 10), job(3), job(4, 5)], NOW)
    assert result['jobs'][1] == {'id': 3, 'estimate': None,
                                 'expected_start': NOW + 10, 'expected_end': None}
    assert result['jobs'][2]['expected_start'] is None
    assert result['queue_end'] is None and not result['complete']
    assert result['unknown_from'] == 3


def test_a_current_job_without_estimate_or_progress_is_named():
    result = timeline(running(None, 20), [job(2, 10)], NOW)
    assert result['unknown_from'] == 1 and not result['complete']
    assert timeline(running(60, 20), [job(2, 10)], NOW)['unknown_from'] is None


def test_nothing_to_run_has_no_end():
    for waiting in ([], [job(2, 10, JobState.SKIPPED)],
                    [job(3, 10, held=True, hold_reason='dry run: limit')]):
        result = timeline(None, waiting, NOW)
        assert result['queue_end'] is None and result['complete']
        assert result['unknown_from'] is None


def test_held_queue_predicts_nothing():
    result = timeline(running(60, 20), [job(2, 10)], NOW, queue_held=True)
    assert result['current']['remaining'] == 40
    assert result['jobs'][0]['expected_start'] is None
    assert result['held'] and not result['complete']


durations = st.lists(st.floats(0, 1e5), min_size=1, max_size=20)


@given(durations, st.randoms())
def test_moving_jobs_keeps_the_queue_end_and_orders_the_starts(seconds, rnd):
    jobs = [job(i + 2, s) for i, s in enumerate(seconds)]
    shuffled = list(jobs)
    rnd.shuffle(shuffled)
    first, second = timeline(None, jobs, NOW), timeline(None, shuffled, NOW)
    assert second['queue_end'] == pytest.approx(first['queue_end'])
    starts = [j['expected_start'] for j in second['jobs']]
    assert starts == sorted(starts) and starts[0] == NOW
    for item in second['jobs']:
        # Epoch seconds carry about 1e-10 relative precision.
        assert item['expected_end'] - item['expected_start'] == \
            pytest.approx(item['estimate'], abs=1e-6)


@given(st.floats(1, 1e4), st.floats(0, 1e4), st.floats(0, 1e4))
def test_pausing_never_brings_the_end_closer(estimate, ran, paused):
    before = running(estimate, ran)
    during = running(estimate, ran + paused, state=JobState.PAUSED,
                     paused_since=NOW - paused)
    assert remaining_seconds(during, NOW) == pytest.approx(
        remaining_seconds(before, NOW), abs=1e-6)


def test_a_paused_job_says_how_long_it_has_been_paused():
    current = running(60, started_ago=50, state=JobState.PAUSED,
                      paused_since=NOW - 30, paused_total=5.0)
    assert timeline(current, [], NOW)['current']['paused_for'] == 30
    assert timeline(current, [], NOW + 10)['current']['paused_for'] == 40
    assert timeline(running(60, 20), [], NOW)['current']['paused_for'] is None


def test_a_black_box_job_has_progress_by_the_clock():
    def box(seconds, started_ago):
        return dataclasses.replace(running(seconds, started_ago),
                                   kind=JobKind.BLACKBOX)

    assert timeline(box(80, 20), [], NOW)['current']['progress_by_time'] == \
        0.25
    assert timeline(box(10, 20), [], NOW)['current']['progress_by_time'] == 1
    assert timeline(box(None, 20), [], NOW)['current'][
        'progress_by_time'] is None
    # Other jobs report their own progress.
    assert timeline(running(80, 20), [], NOW)['current'][
        'progress_by_time'] is None


@given(st.floats(0.001, 1e5), st.floats(0, 1e6))
def test_progress_by_time_is_a_fraction(estimate, ran):
    job = dataclasses.replace(running(estimate, ran), kind=JobKind.BLACKBOX)
    assert 0.0 <= timeline(job, [], NOW)['current']['progress_by_time'] <= 1.0
