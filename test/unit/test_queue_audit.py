"""The queue's audit trail: every change written, with who, when, from
which client, the operation and why, in the change's own transaction."""

import pytest

from nicos_scriptserver.app.spec import parse_spec
from nicos_scriptserver.queue import Caller, JobQueue
from nicos_scriptserver.queue.audit import Actor, acting

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
