"""The durable queue: SQLite persistence, failures, threads and events."""

import json
import os
import random
import re
import sqlite3
import threading
from contextlib import closing

import pytest

from nicos_scriptserver.app.spec import parse_spec
from nicos_scriptserver.queue import (BadPosition, Caller, JobNotFound,
                                      JobQueue, JobState, NotEditable,
                                      QueueState, QueueStore, StoreError)

ALICE = Caller('alice', 10)


def spec(source='measure(1)', **extra):
    return parse_spec({'kind': 'aware', 'source': source, **extra})


class Clock:
    """A clock that advances by one second each time it is read."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        self.now += 1.0
        return self.now


@pytest.fixture
def path(tmp_path):
    return tmp_path / 'queue.db'


@pytest.fixture
def queue(path):
    with JobQueue(path, clock=Clock()) as opened:
        yield opened


def order(queue):
    return [job.id for job in queue.waiting()]


def reopen(queue, path):
    queue.close()
    return JobQueue(path, clock=Clock())


def rows_written(queue, operation):
    """How many rows of jobs and queue state *operation* inserted, updated
    or deleted (its one audit entry and that entry's index rows aside)."""
    db = queue._store._db

    def audited():
        return sum(db.execute(f'SELECT count(*) FROM {table}').fetchone()[0]
                   for table in ('audit', 'audit_jobs'))

    before, entries = db.total_changes, audited()
    operation()
    return db.total_changes - before - (audited() - entries)


def test_reopening_restores_the_queue_exactly(queue, path):
    queue.submit([spec(name='a'), spec(name='b'), spec(name='c')], 'alice')
    queue.submit(parse_spec({'kind': 'generated', 'source': 'x()', 'calls': [
        {'command': 'x', 'args': {'v': [1, 2]}}]}), 'bob', position=1)
    queue.edit(2, by=ALICE, name='edited', source='measure(2)')
    queue.skip(3)
    queue.move(1, 'bottom')
    queue.set_estimate(4, {'seconds': 12.5})
    job = queue.start_next()
    queue.report_progress(0.5, 'half')
    queue.finish('failed', error={'type': 'E', 'message': 'bad', 'line': 2})
    queue.set_on_failure('continue')
    before = queue.snapshot()
    queue = reopen(queue, path)
    assert queue.snapshot() == before
    assert job.id == 4 and queue.state.hold_reason == 'job 4 failed: E: bad'
    assert [j.to_dict() for j in queue.waiting()] == \
        [before.jobs[i].to_dict() for i in before.order]
    queue.close()


def test_database_uses_wal_and_full_sync(queue, path):
    db = queue._store._db
    assert db.execute('PRAGMA journal_mode').fetchone()[0] == 'wal'
    assert db.execute('PRAGMA synchronous').fetchone()[0] == 2  # FULL


def test_changes_are_on_disk_when_the_operation_returns(queue, path):
    other = sqlite3.connect(path)

    def stored():
        rows = other.execute('SELECT data FROM jobs ORDER BY pos').fetchall()
        return [json.loads(data)['name'] for data, in rows]

    queue.submit([spec(name='a'), spec(name='b')], 'alice')
    assert stored() == ['a', 'b']
    queue.move(2, 'top')
    assert stored() == ['b', 'a']
    other.close()


def test_ids_are_not_reused_after_restart(queue, path):
    queue.submit([spec()] * 3, 'alice')
    queue.clear()
    queue = reopen(queue, path)
    assert queue.submit(spec(), 'alice')[0].id == 4
    queue.close()


@pytest.mark.parametrize('paused', [False, True])
def test_current_job_is_interrupted_by_a_restart(queue, path, paused):
    queue.submit([spec(), spec()], 'alice')
    queue.start_next()
    if paused:
        queue.pause()
    queue = reopen(queue, path)
    job = queue.get(1)
    assert job.state is JobState.INTERRUPTED and job.finished_at is not None
    assert queue.current() is None and order(queue) == [2]
    assert queue.state.hold_reason == 'job 1 was interrupted by a server restart'
    assert queue.start_next() is None
    queue = reopen(queue, path)
    assert queue.get(1) == job
    queue.close()


def synchronous_of_commits(queue, operation):
    """The ``synchronous`` setting (NORMAL or FULL) under which each
    transaction of *operation* committed."""
    db = queue._store._db
    setting, commits = 'FULL', []

    def trace(statement):
        nonlocal setting
        if statement.startswith('PRAGMA synchronous='):
            setting = statement.split('=')[1]
        elif statement == 'COMMIT':
            commits.append(setting)
    db.set_trace_callback(trace)
    try:
        operation()
    finally:
        db.set_trace_callback(None)
    return commits


def test_progress_reports_do_not_wait_for_the_disk_and_changes_do(queue, path):
    """A sync before each report reached any client took 3 to 16 ms; a
    report is a note that the next one replaces."""
    queue.submit(spec(), 'alice')
    assert synchronous_of_commits(queue, queue.start_next) == ['FULL']
    assert synchronous_of_commits(
        queue, lambda: queue.report_progress(0.5, 'half')) == ['NORMAL']
    assert queue._store._db.execute('PRAGMA synchronous').fetchone()[0] == 2
    assert synchronous_of_commits(queue, lambda: queue.finish('done')) == ['FULL']
    queue = reopen(queue, path)
    assert queue.get(1).progress == 1.0
    queue.close()


def test_line_is_saved_with_the_next_durable_change(queue, path):
    queue.submit(spec(), 'alice')
    queue.start_next()
    queue.set_line(7)
    queue.report_progress(0.1)
    queue.set_line(9)
    queue = reopen(queue, path)
    assert queue.get(1).current_line == 7
    queue.close()


def test_moving_a_job_writes_one_row(queue):
    queue.submit([spec()] * 2000, 'alice')
    ids = order(queue)
    rng = random.Random(1)
    for _ in range(50):
        assert rows_written(queue, lambda: queue.move(
            rng.choice(ids), rng.randrange(len(ids)))) <= 1
    assert rows_written(queue, lambda: queue.move(ids[7], 'top')) == 1
    assert rows_written(queue, lambda: queue.move(ids[9], 'up')) == 1


def test_the_queues_own_state_is_updated_in_place(queue, path):
    # A row that moves (a new rowid) rewrites its name's index page too:
    # one page more to write and sync with every change.
    def rowids():
        with closing(sqlite3.connect(path)) as db:
            return dict(db.execute('SELECT name, rowid FROM meta'))
    queue.hold()
    queue.submit(spec(), 'alice')
    before = rowids()
    queue.submit(spec(), 'alice')
    queue.release()
    assert rowids() == before and {'next_id', 'queue'} <= set(before)
    assert reopen(queue, path).submit(spec(), 'alice')[0].id == 3


def test_rearrange_writes_only_the_jobs_that_moved(queue):
    queue.submit([spec()] * 100, 'alice')
    ids = order(queue)
    assert rows_written(queue, lambda: queue.rearrange([ids[50], ids[10]])) == 2


# -- failures --------------------------------------------------------------------

FAILED_SAVE = re.escape('could not save to the queue database ') + '.*' + \
    re.escape('; nothing was changed')


def failing_operations(queue):
    return [
        lambda: queue.submit(spec(), 'alice'),
        lambda: queue.move(4, 'top'),
        lambda: queue.edit(3, by=ALICE, name='new'),
        lambda: queue.remove(3),
        lambda: queue.clear(),
        lambda: queue.hold('why'),
        lambda: queue.requeue(1),
        lambda: queue.finish('done'),
    ]


def prepare(queue):
    """Job 1 aborted, job 2 running, jobs 3 and 4 waiting."""
    queue.submit([spec(), spec(), spec(), spec()], 'alice')
    queue.start_next()
    queue.finish('aborted')
    queue.release()
    queue.start_next()


def check_refused(queue, path, operations, message):
    """Each operation fails with *message*; nothing changes, also on disk."""
    events = []
    queue.add_listener(events.append)
    before = queue.snapshot()
    for operation in operations:
        with pytest.raises(StoreError, match=FAILED_SAVE) as failure:
            operation()
        assert message in str(failure.value)
        assert queue.snapshot() == before
    assert events == []
    queue = reopen(queue, path)
    assert queue.get(2).state is JobState.INTERRUPTED
    assert queue.snapshot().order == before.order == [3, 4]
    queue.close()


def test_read_only_database_leaves_everything_unchanged(queue, path):
    prepare(queue)
    queue._store._db.execute('PRAGMA query_only = 1')
    check_refused(queue, path, failing_operations(queue),
                  'attempt to write a readonly database')


def test_full_disk_leaves_everything_unchanged(queue, path):
    prepare(queue)
    db = queue._store._db
    # The file may not grow: any write that needs a new page fails.
    db.execute('PRAGMA max_page_count = %d'
               % db.execute('PRAGMA page_count').fetchone()[0])
    big = 'measure(1)\n' * 2000
    check_refused(queue, path, [
        lambda: queue.submit(spec(big), 'alice'),
        lambda: queue.edit(3, by=ALICE, source=big),
        lambda: queue.repeat(3, 100),
    ], 'database or disk is full')


def test_closed_database_refuses_changes(queue):
    prepare(queue)
    before = queue.snapshot()
    queue.close()
    with pytest.raises(StoreError, match='Cannot operate on a closed database'):
        queue.move(4, 'top')
    assert queue.snapshot() == before
    assert order(queue) == [3, 4]  # reading still works


@pytest.mark.skipif(os.geteuid() == 0, reason='root may write read-only files')
def test_read_only_file_refuses_changes(queue, path):
    prepare(queue)
    queue.close()
    os.chmod(path, 0o444)
    os.chmod(path.parent, 0o555)
    try:
        with pytest.raises(StoreError):
            with JobQueue(path) as reopened:
                reopened.move(4, 'top')
    finally:
        os.chmod(path.parent, 0o755)
        os.chmod(path, 0o644)


def test_open_refuses_what_is_not_a_queue_database(tmp_path):
    with pytest.raises(StoreError, match='^cannot open the queue database .*'
                                         'unable to open database file$'):
        JobQueue(tmp_path)
    garbage = tmp_path / 'garbage.db'
    garbage.write_bytes(b'not a database at all' * 100)
    with pytest.raises(StoreError, match='file is not a database'):
        JobQueue(garbage)


def test_open_refuses_newer_format(path):
    QueueStore(path).close()
    db = sqlite3.connect(path)
    db.execute("UPDATE meta SET value = '4' WHERE name = 'schema'")
    db.commit()
    db.close()
    with pytest.raises(StoreError, match='has format 4, this version reads '
                                         'formats 1 to 3$'):
        JobQueue(path)


def test_holds_of_both_kinds_survive_a_restart(queue, path):
    queue.submit([spec(), spec(), spec()], 'alice')
    queue.hold_for_safety('emergency stop by bob')
    queue.submit(spec(), 'alice')
    queue = reopen(queue, path)
    assert (queue.state.hold_kind, queue.state.protected) == ('safety',
                                                              (1, 2, 3))
    queue.remove(1)
    queue.remove(2)
    queue = reopen(queue, path)
    assert queue.state.protected == (1, 2, 3)
    queue.skip(3)   # the last job it protected: the hold ends, on disk too
    queue = reopen(queue, path)
    assert not queue.state.held and queue.start_next().id == 4
    queue.hold('held by alice')
    queue.finish('done')
    queue = reopen(queue, path)
    assert (queue.state.held, queue.state.hold_kind) == (True, 'manual')
    queue.close()


def format_2_file(path, queue_state, jobs):
    """A queue file as format 2 wrote it: holds without a kind, jobs
    without ``held_by_dry_run``."""
    with JobQueue(path) as current:
        for job in jobs:
            current.submit(spec(**job), 'alice')
    db = sqlite3.connect(path)
    for job_id, text in db.execute('SELECT id, data FROM jobs').fetchall():
        data = json.loads(text)
        del data['held_by_dry_run']
        db.execute('UPDATE jobs SET data = ? WHERE id = ?',
                   (json.dumps(data), job_id))
    db.execute("INSERT OR REPLACE INTO meta VALUES ('queue', ?)",
               (json.dumps(queue_state),))
    db.execute("UPDATE meta SET value = '2' WHERE name = 'schema'")
    db.commit()
    db.close()


def test_format_2_holds_become_a_persons_hold_and_dry_run_holds_stay_theirs(
        path):
    format_2_file(path, {'held': True, 'hold_reason': 'job 3 was aborted',
                         'on_failure': 'continue'},
                  [{'held': True, 'hold_reason': 'dry run: LimitError'},
                   {'held': True, 'hold_reason': 'needs the beam'}, {}])
    with JobQueue(path) as queue:
        # Who held it is not known: it stays as strong as it was.
        assert queue.state == QueueState(True, 'job 3 was aborted', 'continue',
                                         'manual', ())
        assert [job.held_by_dry_run for job in queue.waiting()] == \
            [True, False, False]
        queue.set_estimate(1, {'state': 'ok'}, passed=True)
        queue.set_estimate(2, {'state': 'ok'}, passed=True)
        assert [job.held for job in queue.waiting()] == [False, True, False]
    db = sqlite3.connect(path)
    assert db.execute("SELECT value FROM meta WHERE name = 'schema'"
                      ).fetchone() == ('3',)
    db.close()
    format_2_file(path.with_name('released.db'), {
        'held': False, 'hold_reason': '', 'on_failure': 'hold'}, [{}])
    with JobQueue(path.with_name('released.db')) as queue:
        assert queue.state == QueueState()
        assert queue.start_next().id == 1


def test_open_refuses_damaged_rows(queue, path):
    queue.submit([spec(), spec()], 'alice')
    queue.close()
    db = sqlite3.connect(path)
    db.execute("UPDATE jobs SET state = 'running', data = replace(data, "
               "'\"queued\"', '\"running\"')")
    db.commit()
    db.close()
    with pytest.raises(StoreError, match=r'is damaged: .*more than one current '
                                         r'job: \[1, 2\]'):
        JobQueue(path)


# -- threads and events -------------------------------------------------------------

def test_listeners_get_each_operations_events_after_commit(queue, path):
    seen = []

    def listener(events):
        on_disk = sqlite3.connect(path).execute(
            'SELECT count(*) FROM jobs').fetchone()[0]
        seen.append(([name for name, _ in events], on_disk))

    queue.add_listener(listener)
    queue.submit([spec(), spec()], 'alice')
    queue.move(2, 'top')
    queue.remove_listener(listener)
    queue.move(2, 'bottom')
    assert seen == [(['job_changed', 'job_changed', 'queue_changed'], 2),
                    (['queue_changed'], 2)]


def test_failing_listener_does_not_stop_others(queue, caplog):
    seen = []
    queue.add_listener(lambda events: 1 / 0)
    queue.add_listener(seen.append)
    queue.submit(spec(), 'alice')
    assert len(seen) == 1
    assert 'queue event listener' in caplog.text


def test_listener_may_call_back_into_the_queue(queue):
    lengths = []
    queue.add_listener(lambda events: lengths.append(len(queue.waiting())))
    queue.submit(spec(), 'alice')
    assert lengths == [1]


def test_listener_waiting_for_the_script_thread_does_not_deadlock(queue):
    # The daemon's feed holds its condition while it calls start_next, and
    # its listener takes that condition to wake the script thread.
    wakeup = threading.Condition()
    started = []

    def script_thread():
        with wakeup:
            while not started:
                job = queue.start_next()
                if job is None:
                    wakeup.wait(5)
                else:
                    started.append(job)

    def wake(events):
        with wakeup:
            wakeup.notify_all()

    queue.add_listener(wake)
    thread = threading.Thread(target=script_thread)
    thread.start()
    queue.submit(spec(), 'alice')
    thread.join(10)
    assert not thread.is_alive() and started[0].id == 1


def test_concurrent_clients_keep_the_queue_consistent(queue, path):
    orders = []
    queue.add_listener(lambda events: orders.extend(
        payload['order'] for name, payload in events
        if name == 'queue_changed'))
    queue.submit([spec()] * 20, 'alice')
    errors = []

    def client(seed):
        rng = random.Random(seed)
        try:
            for _ in range(40):
                ids = order(queue)
                action = rng.choice(['submit', 'move', 'move', 'skip'])
                try:
                    if action == 'submit':
                        queue.submit(spec(), f'user{seed}')
                    elif action == 'move':
                        queue.move(rng.choice(ids), rng.choice(['top', 'up',
                                                                'bottom']))
                    else:
                        queue.skip(rng.choice(ids))
                except BadPosition:  # 'up' for the job at the top
                    pass
        except Exception as err:
            errors.append(err)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    final = queue.snapshot()
    assert final.problems() == []
    assert orders[-1] == final.order  # events arrived in commit order
    assert len(final.order) == len(set(final.order))
    queue = reopen(queue, path)
    assert queue.snapshot() == final
    queue.close()


def test_summary_lists_current_and_waiting_jobs(queue):
    queue.submit([spec(name='a'), spec(name='b')], 'alice')
    queue.start_next()
    queue.pause()
    summary = queue.summary()
    assert summary['current']['state'] == 'paused' and queue.is_paused()
    assert [job['name'] for job in summary['waiting']] == ['b']
    assert (summary['held'], summary['on_failure']) == (False, 'hold')
    json.dumps(summary)


# -- history beyond memory ---------------------------------------------------------

def finish_jobs(queue, outcomes):
    for outcome in outcomes:
        queue.submit(spec(), 'alice')
        queue.start_next()
        queue.finish(outcome)
        queue.release()


def test_only_the_newest_finished_jobs_stay_in_memory(path):
    queue = JobQueue(path, clock=Clock(), keep_history=3)
    finish_jobs(queue, ['failed', 'done', 'aborted', 'done', 'done', 'done'])
    assert queue.snapshot().history == [4, 5, 6]
    assert set(queue.snapshot().jobs) == {4, 5, 6}
    assert queue.get(1).state is JobState.FAILED
    assert [job.id for job in queue.history()] == [6, 5, 4, 3, 2, 1]
    assert [job.id for job in queue.history(2, before_id=5)] == [4, 3]
    assert [job.id for job in queue.history(3, before_id=3)] == [2, 1]
    assert queue.requeue(1).requeued_from == 1
    assert queue.snapshot().jobs[7].source == queue.get(1).source
    with pytest.raises(NotEditable, match='^job 2 is done: finished jobs cannot '
                                          'be edited'):
        queue.edit(2, by=ALICE, name='x')
    with pytest.raises(JobNotFound, match='^no job 7 in the history$'):
        queue.history(5, before_id=7)
    before = queue.snapshot()
    queue.close()
    queue = JobQueue(path, clock=Clock(), keep_history=3)
    assert queue.snapshot() == before
    queue.close()
    queue = JobQueue(path, clock=Clock(), keep_history=100)
    assert queue.snapshot().history == [1, 2, 3, 4, 5, 6]
    queue.close()
