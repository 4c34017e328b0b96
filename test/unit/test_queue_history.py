"""The history at scale: filtered, keyset-paged pages from the store's
indexes, in a real SQLite file."""

import json
import sqlite3

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nicos_scriptserver.app.spec import parse_spec
from nicos_scriptserver.queue import (Change, InvalidValue, Job, JobKind,
                                      JobNotFound, JobQueue, JobState,
                                      QueueStore)
from nicos_scriptserver.queue.historyfilter import (FINISHED_STATES,
                                                    HistoryFilter)

OWNERS = ('alice', 'bob', 'carol')


def finished(job_id, owner, state, finished_at):
    return Job(id=job_id, kind=JobKind.AWARE, source='measure(1)',
               owner=owner, changed_by=owner, state=JobState(state),
               created=0.0, started_at=0.0, finished_at=finished_at)


def write_history(path, jobs):
    """A queue file whose history is *jobs*, in that order."""
    store = QueueStore(path)
    change = Change(next_id=len(jobs) + 1)
    for position, job in enumerate(jobs):
        change.put[job.id] = job
        change.history[job.id] = position
    store.commit(change)
    store.close()


def all_pages(queue, where, limit):
    """Every job that paging through *where* returns, page by page."""
    seen, before = [], None
    while True:
        page = queue.history(limit, before, where)
        assert len(page) <= limit
        seen += page
        if len(page) < limit:
            return seen
        before = page[-1].id


histories = st.lists(
    st.tuples(st.sampled_from(OWNERS), st.sampled_from(FINISHED_STATES),
              # Few distinct times: equal ones, and a clock set back.
              st.integers(0, 6)),
    max_size=40)
filters = st.builds(
    HistoryFilter,
    owner=st.none() | st.sampled_from(OWNERS + ('nobody',)),
    states=st.none() | st.sets(st.sampled_from(FINISHED_STATES),
                               min_size=1).map(lambda s: tuple(sorted(s))),
    since=st.none() | st.integers(0, 6).map(float),
    until=st.none() | st.integers(0, 7).map(float))


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(histories, filters, st.integers(1, 7))
def test_keyset_pages_are_the_filtered_history_without_gaps_or_repeats(
        tmp_path_factory, rows, where, limit):
    path = tmp_path_factory.mktemp('history') / 'queue.sqlite'
    jobs = [finished(position + 1, owner, state, float(at))
            for position, (owner, state, at) in enumerate(rows)]
    write_history(path, jobs)
    # Unfiltered: the history's order; filtered: that of (finish time,
    # position), which differs only where the clock was set back.
    expected = sorted((job for job in jobs if where.matches(job)),
                      key=(lambda job: job.id) if where.empty else
                      (lambda job: (job.finished_at, job.id)), reverse=True)
    with JobQueue(path) as queue:
        got = all_pages(queue, where, limit)
    assert [job.id for job in got] == [job.id for job in expected]


def test_filters_select_what_a_user_asks_for(tmp_path):
    path = tmp_path / 'queue.sqlite'
    write_history(path, [finished(1, 'alice', 'done', 100.0),
                         finished(2, 'bob', 'failed', 200.0),
                         finished(3, 'alice', 'aborted', 300.0),
                         finished(4, 'alice', 'failed', 400.0)])
    with JobQueue(path) as queue:
        def ids(**asked):
            return [job.id for job in
                    queue.history(50, None, HistoryFilter.parse(**asked))]
        assert ids(user='alice') == [4, 3, 1]
        assert ids(state='failed') == [4, 2]
        assert ids(state=['failed', 'aborted'], user='alice') == [4, 3]
        assert ids(since=200, until=400) == [3, 2]
        assert ids(user='nobody') == []
        assert [job.id for job in queue.history(2, 4)] == [3, 2]


def test_paging_from_a_job_outside_the_history_is_refused(tmp_path):
    path = tmp_path / 'queue.sqlite'
    write_history(path, [finished(1, 'alice', 'done', 1.0)])
    with JobQueue(path) as queue:
        with pytest.raises(JobNotFound, match='no job 99 in the history'):
            queue.history(5, 99, HistoryFilter(owner='alice'))


@pytest.mark.parametrize('asked, message', [
    ({'state': 'queued'}, 'the history state must be one or more of'),
    ({'state': []}, 'the history state must be one or more of'),
    ({'user': 5}, 'the history user must be an account name'),
    ({'since': 'yesterday'}, 'the history since must be epoch seconds'),
    ({'until': float('nan')}, 'the history until must be epoch seconds'),
])
def test_bad_filters_get_a_clear_error(asked, message):
    with pytest.raises(InvalidValue, match=message):
        HistoryFilter.parse(**asked)


def test_a_file_without_the_history_indexes_gets_them_when_opened(tmp_path):
    # A file written by the version before the indexes: the same format,
    # so it opens as it is and gains them.
    path = tmp_path / 'queue.sqlite'
    write_history(path, [finished(1, 'alice', 'done', 1.0),
                         finished(2, 'bob', 'done', 2.0)])
    db = sqlite3.connect(str(path))
    for index in ('jobs_history_finished', 'jobs_history_owner',
                  'jobs_history_state', 'jobs_history_owner_state'):
        db.execute(f'DROP INDEX {index}')
    db.commit()
    db.close()
    with JobQueue(path) as queue:
        assert [job.id for job in queue.history(
            5, None, HistoryFilter(owner='bob'))] == [2]
        plan = queue._store._db.execute(
            "EXPLAIN QUERY PLAN SELECT data FROM jobs WHERE hist IS NOT NULL "
            "AND json_extract(data, '$.owner') = 'bob' ORDER BY "
            "json_extract(data, '$.finished_at') DESC, hist DESC").fetchall()
        assert 'jobs_history_owner' in str(plan)


def test_a_filtered_page_costs_the_same_however_deep(tmp_path):
    # Keyset paging: the SQLite steps a page takes stay the same as the
    # page goes deeper (an OFFSET or a scan would take ever more).
    path = tmp_path / 'queue.sqlite'
    write_history(path, [finished(i, OWNERS[i % 3], 'done', float(i))
                         for i in range(1, 3001)])
    with JobQueue(path) as queue:
        steps = []
        queue._store._db.set_progress_handler(lambda: steps.append(1), 10)

        def cost(before):
            steps.clear()
            assert len(queue.history(10, before, HistoryFilter('alice'))) == 10
            return len(steps)
        first, deepest = cost(None), cost(33)
    assert deepest <= first * 1.5 + 20, (first, deepest)


def test_a_rare_owner_and_state_costs_what_a_common_one_does(tmp_path):
    # Alice's failed jobs are one in 100 of hers: a page of them must not
    # read through all her done jobs to fill itself.
    path = tmp_path / 'queue.sqlite'
    write_history(path, [finished(i, OWNERS[i % 3],
                                  'failed' if i % 300 == 0 else 'done',
                                  float(i)) for i in range(1, 30001)])
    with JobQueue(path) as queue:
        steps = []
        queue._store._db.set_progress_handler(lambda: steps.append(1), 10)

        def cost(state):
            steps.clear()
            page = queue.history(10, None, HistoryFilter('alice', (state,)))
            assert [job.state.value for job in page] == [state] * 10
            return len(steps)
        common, rare = cost('done'), cost('failed')
    assert rare <= common * 1.5 + 20, (common, rare)


def test_old_finished_jobs_move_to_a_private_archive_that_reads_back(
        tmp_path):
    path = tmp_path / 'queue.sqlite'
    archive = tmp_path / 'queue-archive.sqlite'
    day = 86400.0
    # 2,600 jobs, one an hour up to day 200 (the clock's "now").
    jobs = [finished(i, OWNERS[i % 3], 'done', 200 * day - (2601 - i) * 3600)
            for i in range(1, 2601)]
    write_history(path, jobs)
    with JobQueue(path, clock=lambda: 200 * day, keep_history=1000) as queue:
        # Older than 100 days: the first 2,600 - 2,400 = 200 jobs.
        assert queue.archive_history(100, archive) == 200
        assert queue.archive_history(100, archive) == 0
        # Older than a day, except the newest 1,000 kept in memory:
        # 1,400 more, in two batches.
        assert queue.archive_history(1, archive) == 1400
        assert [job.id for job in queue.history(3, 1602)] == [1601]
        with pytest.raises(JobNotFound):
            queue.get(1600)
    assert archive.stat().st_mode & 0o777 == 0o600
    db = sqlite3.connect(str(archive))
    stored = db.execute('SELECT id, hist, data FROM jobs ORDER BY hist'
                        ).fetchall()
    db.close()
    assert [row[0] for row in stored] == list(range(1, 1601))
    assert [row[1] for row in stored] == list(range(0, 1600))
    assert Job.from_dict(json.loads(stored[5][2])) == jobs[5]
    # What stays opens as before: the newest 1,000 and no gap.
    with JobQueue(path) as queue:
        assert [job.id for job in queue.history(1000)] == \
            list(range(2600, 1600, -1))


def test_a_job_left_in_both_files_by_a_crash_is_settled_by_the_next_run(
        tmp_path):
    path = tmp_path / 'queue.sqlite'
    archive = tmp_path / 'queue-archive.sqlite'
    write_history(path, [finished(i, 'alice', 'done', float(i))
                         for i in range(1, 6)])
    # As if the archive had committed and the queue file had not.
    with JobQueue(path, clock=lambda: 86400.0 * 10, keep_history=2) as queue:
        queue.archive_history(1, archive)
    store = QueueStore(path)
    change = Change()
    for job_id in (1, 2, 3):
        change.put[job_id] = finished(job_id, 'alice', 'done', float(job_id))
        change.history[job_id] = job_id - 1
    store.commit(change)
    store.close()
    with JobQueue(path, clock=lambda: 86400.0 * 10, keep_history=2) as queue:
        assert queue.archive_history(1, archive) == 3
    db = sqlite3.connect(str(archive))
    assert db.execute('SELECT id FROM jobs ORDER BY id').fetchall() == \
        [(1,), (2,), (3,)]
    db.close()
