"""The queue's audit trail: every change written, with who, when, from
which client, the operation and why, in the change's own transaction."""

import sqlite3

import pytest
from hypothesis import given, settings, strategies as st

from nicos_scriptserver.app.spec import parse_spec
from nicos_scriptserver.queue import Caller, JobQueue
from nicos_scriptserver.queue.audit import Actor, acting
from nicos_scriptserver.queue.store import QueueStore, write_audit

BOB = Caller('bob', 20)   # an admin: may edit alice's jobs


@pytest.fixture
def path(tmp_path):
    return tmp_path / 'queue.db'


def spec(source='x = 1'):
    return parse_spec({'kind': 'aware', 'source': source})


def test_each_change_is_recorded_with_who_when_where_and_why(path):
    clock = iter(range(100, 200)).__next__
    with JobQueue(path, clock=clock) as queue:
        with acting(Actor('alice', 'ss_submit from 127.0.0.1, connection 1')):
            first, second = queue.submit([spec(), spec()], 'alice')
        with acting(Actor('bob', 'ss_edit from 127.0.0.1, connection 2')):
            queue.edit(first.id, by=BOB, source='x = 2')
        with acting(Actor('bob', 'update from 127.0.0.1, connection 3',
                          why='typo')):
            queue.move(second.id, 'top', 'bob')
        queue.hold('held by carol')
        trail = queue.audit()
    assert [(e['who'], e['action'], e['jobs'], e['why']) for e in trail] == [
        ('server', 'hold', [], 'queue held: held by carol'),
        ('bob', 'move', [second.id], 'typo'),
        ('bob', 'edit', [first.id], f'job {first.id}: edited its script'),
        ('alice', 'submit', [first.id, second.id], ''),
    ]
    assert trail[2]['client'] == 'ss_edit from 127.0.0.1, connection 2'
    assert [e['at'] for e in trail] == sorted((e['at'] for e in trail),
                                              reverse=True)


def test_only_what_is_written_is_recorded_and_it_stays(path):
    with JobQueue(path) as queue:
        job, = queue.submit(spec(), 'alice')
        queue.set_estimate(job.id, {'state': 'ok'})   # not written by itself
        queue.start_next()
        queue.report_progress(0.5, 'half')            # nor is progress
        queue.finish('failed', error={'type': 'E', 'message': 'boom',
                                      'traceback': '', 'line': 1})
    with JobQueue(path) as queue:
        trail = queue.audit(job_id=job.id)
    assert [(e['action'], e['why']) for e in trail] == [
        ('finish', f'job {job.id} failed: boom'),
        ('start_next', f'job {job.id} running'), ('submit', '')]


def test_one_job_only_and_the_newest_first(path):
    with JobQueue(path) as queue:
        ids = [job.id for job in queue.submit([spec()] * 12, 'alice')]
        for job_id in ids:
            queue.skip(job_id)
        assert [e['jobs'] for e in queue.audit(limit=2)] == [[ids[-1]],
                                                             [ids[-2]]]
        assert [e['action'] for e in queue.audit(job_id=ids[1])] == [
            'skip', 'submit']


entries = st.lists(st.lists(st.integers(1, 6), max_size=3, unique=True),
                   max_size=40)


@settings(max_examples=60, deadline=None)
@given(entries, st.integers(1, 7), st.integers(1, 10))
def test_the_entries_of_one_job_are_the_trail_filtered(tmp_path_factory,
                                                       jobs_of, job_id,
                                                       limit):
    # ss_audit(job_id) reads an index by job; it must say exactly what
    # filtering the whole trail would, newest first, at most *limit*.
    path = tmp_path_factory.mktemp('audit') / 'queue.db'
    store = QueueStore(path)
    db = sqlite3.connect(str(path), isolation_level=None)
    db.execute('BEGIN')
    write_audit(db, [{'at': float(n), 'who': 'alice', 'client': '',
                      'action': 'move', 'jobs': jobs, 'why': str(n)}
                     for n, jobs in enumerate(jobs_of)])
    db.execute('COMMIT')
    db.close()
    whole = store.audit(len(jobs_of) + 1)
    assert store.audit(limit, job_id) == \
        [entry for entry in whole if job_id in entry['jobs']][:limit]
    store.close()
