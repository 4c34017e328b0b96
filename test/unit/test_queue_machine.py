"""The queue's state machine, operation by operation, in memory.

Refusals are checked by their exact message: it is what the user reads.
"""

import dataclasses
import json
import re
import subprocess
import sys

import pytest

from nicos_scriptserver.app.spec import parse_edits, parse_spec, parse_specs
from nicos_scriptserver.queue import (BadPosition, Caller, InvalidTransition,
                                      InvalidValue, Job, JobKind, JobNotFound,
                                      JobState, NotEditable, QueueMachine,
                                      QueueState)

#: The owner of the jobs `add` submits, at user level.
ALICE = Caller('alice', 10)


def spec(source='measure(1)', kind='aware', **extra):
    return parse_spec({'kind': kind, 'source': source, **extra})


def generated(*commands):
    return spec(kind='generated', source='\n'.join(f'{c}()' for c in commands),
                calls=[{'command': c, 'args': {}} for c in commands])


@pytest.fixture
def m():
    machine = QueueMachine()
    yield machine
    assert machine.data().problems() == []


def add(m, count=1, now=10.0, **kwargs):
    """Submit *count* single jobs; return their ids."""
    return [m.submit(spec(name=f'job {i}'), 'alice', now, **kwargs).result[0].id
            for i in range(count)]


def order(m):
    return [job.id for job in m.waiting()]


def run(m, job_id=None, now=20.0):
    """Start *job_id* (or the next job); return its id."""
    job_id = job_id or m.next_job().id
    m.start(job_id, now)
    return job_id


def refused(error, message):
    return pytest.raises(error, match=f'^{re.escape(message)}$')


@pytest.mark.parametrize('module', ['nicos_scriptserver.queue',
                                    'nicos_scriptserver.app.server',
                                    'nicos_scriptserver.catalog',
                                    'nicos_scriptserver.estimates'])
def test_core_imports_no_instrument_libraries(module):
    # The application layer too: it reaches NICOS only through its ports.
    loaded = subprocess.run(
        [sys.executable, '-c', f'import sys, {module}; '
         'print(sorted({m.split(".")[0] for m in sys.modules}))'],
        capture_output=True, text=True, check=True).stdout
    for name in ('nicos', 'zmq', 'epics', 'PyQt5'):
        assert f"'{name}'" not in loaded


# -- the job record -----------------------------------------------------------

def test_job_dict_round_trip_is_json_ready(m):
    job = m.submit(generated('set_ei', 'measure'), 'alice', 5.0).result[0]
    data = json.loads(json.dumps(job.to_dict()))
    assert Job.from_dict(data) == job
    assert Job.from_dict(data).to_dict() == dataclasses.replace(job).to_dict()
    assert data['kind'] == 'generated' and data['state'] == 'queued'


def test_job_from_dict_ignores_fields_of_newer_servers(m):
    job = m.submit(spec(), 'alice', 5.0).result[0]
    assert Job.from_dict({**job.to_dict(), 'colour': 'red'}) == job


def test_job_dict_is_a_new_dict_each_time(m):
    job = m.submit(spec(name='mine'), 'alice', 5.0).result[0]
    job.to_dict()['name'] = 'changed'
    assert job.to_dict()['name'] == 'mine'


def test_elapsed_and_active_time_exclude_pauses(m):
    job_id = add(m)[0]
    assert m.get(job_id).elapsed(100.0) == 0.0
    m.start(job_id, 100.0)
    m.pause(110.0)
    assert m.current().active_time(115.0) == 10.0
    assert m.current().elapsed(115.0) == 15.0
    m.resume(130.0)
    m.finish('done', 150.0)
    job = m.get(job_id)
    assert (job.elapsed(999.0), job.active_time(999.0)) == (50.0, 30.0)
    assert job.paused_total == 20.0 and job.paused_since is None


# -- submit ---------------------------------------------------------------------

def test_submit_one_job(m):
    change = m.submit(spec(name='scan'), 'alice', 7.0)
    job, = change.result
    assert (job.id, job.state, job.owner, job.name) == (1, JobState.QUEUED,
                                                        'alice', 'scan')
    assert (job.created, job.queued_at) == (7.0, 7.0)
    assert (job.batch_id, job.batch_index, job.batch_size) == (None,) * 3
    assert change.events == [('job_changed', job.to_dict()),
                             ('queue_changed', {'order': [1], 'removed': []})]


def test_submit_batch_shares_a_batch_id(m):
    add(m)
    jobs = m.submit([spec(), generated('measure'), spec(kind='blackbox')],
                    'bob', 8.0).result
    assert [job.id for job in jobs] == [2, 3, 4]
    assert {job.batch_id for job in jobs} == {'batch-2'}
    assert [job.batch_index for job in jobs] == [0, 1, 2]
    assert {job.batch_size for job in jobs} == {3}
    assert [job.kind for job in jobs] == [JobKind.AWARE, JobKind.GENERATED,
                                          JobKind.BLACKBOX]


def test_submit_batch_announces_one_queue_change(m):
    events = m.submit([spec()] * 5, 'bob', 8.0).events
    assert [name for name, _ in events].count('queue_changed') == 1


@pytest.mark.parametrize('position, expected', [
    (None, [1, 2, 3]), ('bottom', [1, 2, 3]), ('top', [3, 1, 2]),
    (0, [3, 1, 2]), (1, [1, 3, 2]), (2, [1, 2, 3])])
def test_submit_at_position(m, position, expected):
    add(m, 2)
    m.submit(spec(), 'alice', 1.0, position=position)
    assert order(m) == expected


@pytest.mark.parametrize('position', [3, -1, 'up', True, 1.0])
def test_submit_at_bad_position(m, position):
    add(m, 2)
    with refused(BadPosition, f"cannot insert at position {position!r}: give "
                              "'top', 'bottom' or an index from 0 to 2"):
        m.submit(spec(), 'alice', 1.0, position=position)


def test_ids_are_never_reused(m):
    first = add(m, 3)
    m.remove(first[2])
    m.clear()
    assert add(m) == [4]


@pytest.mark.parametrize('bad, message', [
    ('measure(1)', 'the job must be a dict, not str'),
    ({'kind': 'aware', 'source': 'x', 'colour': 1},
     'the job has unknown fields colour; known are kind, name, source, '
     'calls, held, hold_reason, isolated'),
    ({'source': 'x'},
     'the job has no kind; give one of generated, aware, blackbox'),
    ({'kind': 'python', 'source': 'x'},
     "the job: unknown kind 'python'; give one of generated, aware, blackbox"),
    ({'kind': 'aware'}, 'the job has no script (source)'),
    ({'kind': 'aware', 'source': '  \n'}, 'the job has an empty script'),
    ({'kind': 'aware', 'source': 3}, 'the job: the script must be text, not int'),
    ({'kind': 'aware', 'source': 'x', 'name': None},
     'the job: the name must be text, not NoneType'),
    ({'kind': 'aware', 'source': 'x', 'calls': []},
     'the job: only generated jobs have command calls, this one is aware'),
    ({'kind': 'generated', 'source': 'x'},
     'the job: a generated job needs a non-empty list of command calls'),
    ({'kind': 'generated', 'source': 'x', 'calls': [{'cmd': 'x'}]},
     'the job, call 1: a call is a dict with "command", "args" and, for '
     'positional-only arguments and *args, "posargs"'),
    ({'kind': 'generated', 'source': 'x',
      'calls': [{'command': 'x', 'posargs': 5}]},
     'the job, call 1: "posargs" must be a list of values'),
    ({'kind': 'generated', 'source': 'x', 'calls': [{'command': ''}]},
     'the job, call 1: "command" must be a command name'),
    ({'kind': 'generated', 'source': 'x',
      'calls': [{'command': 'x', 'args': {1: 2}}]},
     'the job, call 1: "args" must map argument names to values'),
    ({'kind': 'generated', 'source': 'x',
      'calls': [{'command': 'x', 'args': {'a': object()}}]},
     'the job: the command calls cannot be sent to clients: Object of type '
     'object is not JSON serializable'),
    ({'kind': 'generated', 'source': 'x',
      'calls': [{'command': 'x', 'args': {'a': float('nan')}}]},
     'the job: the command calls cannot be sent to clients: Out of range '
     'float values are not JSON compliant'),
    ({'kind': 'aware', 'source': 'x', 'held': 'yes'},
     'the job: held must be true or false'),
    ({'kind': 'aware', 'source': 'x', 'isolated': 1},
     'the job: isolated must be true or false'),
    ({'kind': 'generated', 'calls': [{'command': 'x'}], 'isolated': True},
     'the job: only aware jobs can run isolated, this one is generated'),
])
def test_submit_refuses_bad_specs(m, bad, message):
    with refused(InvalidValue, message):
        m.submit(parse_specs(bad), 'alice', 1.0)


def test_bad_job_in_batch_is_named_and_nothing_is_queued(m):
    with refused(InvalidValue, 'job 2 of the batch has no script (source)'):
        m.submit(parse_specs([{'kind': 'aware', 'source': 'x'},
                              {'kind': 'aware'}]), 'alice', 1.0)
    assert m.waiting() == [] and add(m) == [1]


def test_submit_refuses_empty_batch_and_missing_owner(m):
    with refused(InvalidValue, 'nothing to submit: the batch is empty'):
        m.submit([], 'alice', 1.0)
    with refused(InvalidValue, 'a job needs an owner (a user name)'):
        m.submit(spec(), '', 1.0)


def test_calls_are_stored_as_they_read_back_from_json(m):
    job = m.submit(spec(kind='generated', source='x',
                        calls=[{'command': 'scan', 'args': {'v': (1, 2)}}]),
                   'alice', 1.0).result[0]
    assert job.calls == [{'command': 'scan', 'args': {'v': [1, 2]}}]


# -- edit ---------------------------------------------------------------------

def test_edit_waiting_job(m):
    job_id = add(m)[0]
    m.set_estimate(job_id, {'seconds': 60})
    assert m.edit(job_id, by=ALICE, name='new').result.estimate == {'seconds': 60}
    edited = m.edit(job_id, by=ALICE, source='measure(2)').result
    assert (edited.name, edited.source, edited.estimate) == ('new', 'measure(2)',
                                                             None)
    assert m.get(job_id) == edited


def test_edit_calls_of_generated_job(m):
    job_id = m.submit(generated('a'), 'alice', 1.0).result[0].id
    calls = [{'command': 'b', 'args': {'x': 1}}]
    assert m.edit(job_id, by=ALICE, calls=calls, source='b(x=1)').result.calls == calls


def test_edit_skipped_job_keeps_it_skipped(m):
    job_id = add(m)[0]
    m.skip(job_id)
    assert m.edit(job_id, by=ALICE, name='x').result.state is JobState.SKIPPED


def test_edit_with_same_values_announces_nothing(m):
    job_id = add(m)[0]
    assert m.edit(job_id, by=ALICE, name='job 0').events == []


def test_edit_current_job_is_refused(m):
    job_id = run(m, add(m)[0])
    with refused(NotEditable, f'job {job_id} is running: the current job cannot '
                              'be edited; abort it, then edit and re-queue it'):
        m.edit(job_id, by=ALICE, name='x')
    m.pause(21.0)
    with refused(NotEditable, f'job {job_id} is paused: the current job cannot '
                              'be edited; abort it, then edit and re-queue it'):
        m.edit(job_id, by=ALICE, name='x')


def test_edit_finished_job_is_refused(m):
    job_id = run(m, add(m)[0])
    m.finish('failed', 30.0)
    with refused(NotEditable, f'job {job_id} is failed: finished jobs cannot be '
                              'edited, they stay in the history as they ran; '
                              're-queue it to run it again'):
        m.edit(job_id, by=ALICE, name='x')


def test_edit_refusals(m):
    job_id = add(m)[0]
    with refused(JobNotFound, 'no job 17 in the queue'):
        m.edit(17, by=ALICE, name='x')
    with refused(InvalidValue, f'nothing to change in job {job_id}: give a '
                               'name, a source or calls'):
        m.edit(job_id, by=ALICE)
    with refused(InvalidValue, f'job {job_id}: only generated jobs have '
                               'command calls, this one is aware'):
        m.edit(job_id, by=ALICE, calls=[{'command': 'x', 'args': {}}])
    with refused(InvalidValue, f'job {job_id} has an empty script'):
        m.edit(job_id, by=ALICE, **parse_edits({'source': ''},
                                               label=f'job {job_id}'))


def test_estimate_must_be_a_json_dict(m):
    job_id = add(m)[0]
    with refused(InvalidValue, f'job {job_id}: an estimate must be a dict'):
        m.set_estimate(job_id, 60)


# -- moving -----------------------------------------------------------------------

@pytest.mark.parametrize('to, expected', [
    ('up', [1, 3, 2, 4]), ('down', [1, 2, 4, 3]), ('top', [3, 1, 2, 4]),
    ('bottom', [1, 2, 4, 3]), (0, [3, 1, 2, 4]), (1, [1, 3, 2, 4]),
    (3, [1, 2, 4, 3])])
def test_move(m, to, expected):
    add(m, 4)
    change = m.move(3, to, by='bob')
    assert order(m) == expected
    # One event; the moved job, and only it, is at its next version, saying
    # who moved it.
    assert change.events == [('queue_changed', {
        'order': expected, 'removed': [], 'versions': [[3, 2]]})]
    assert m.get(3).last_change == {
        'by': 'bob', 'what': f'moved it to position {expected.index(3)}'}
    assert [m.get(i).version for i in (1, 2, 3, 4)] == [1, 1, 2, 1]


def test_move_to_own_place_changes_nothing(m):
    add(m, 3)
    assert m.move(2, 1).events == [] and m.move(1, 'top').events == []


@pytest.mark.parametrize('job_id, to, message', [
    (1, 'up', 'job 1 is already at the top of the queue'),
    (3, 'down', 'job 3 is already at the bottom of the queue'),
    (1, 3, 'cannot move job 1 to position 3: the queue has 3 waiting jobs '
           '(positions 0 to 2)'),
    (1, -1, 'cannot move job 1 to position -1: the queue has 3 waiting jobs '
            '(positions 0 to 2)'),
    (1, 'first', "cannot move job 1 to 'first': give an index or one of up, "
                 'down, top, bottom'),
    (1, True, 'cannot move job 1 to True: give an index or one of up, down, '
              'top, bottom'),
])
def test_move_to_bad_position(m, job_id, to, message):
    add(m, 3)
    with refused(BadPosition, message):
        m.move(job_id, to)
    assert order(m) == [1, 2, 3]


def test_move_current_job_is_refused(m):
    add(m, 2)
    run(m, 1)
    with refused(NotEditable, 'job 1 is running: the current job cannot be '
                              'moved; it has already left the waiting list'):
        m.move(1, 'top')


def test_rearrange_whole_queue(m):
    add(m, 4)
    change = m.rearrange([4, 2, 1, 3])
    assert order(m) == [4, 2, 1, 3]
    assert [name for name, _ in change.events] == ['queue_changed']


def test_rearrange_some_jobs_among_their_places(m):
    add(m, 5)
    m.rearrange([4, 2])
    assert order(m) == [1, 4, 3, 2, 5]


def test_rearrange_refusals(m):
    add(m, 3)
    with refused(BadPosition, 'job 2 is listed twice in the new order'):
        m.rearrange([2, 1, 2])
    with refused(JobNotFound, 'no job 9 in the queue'):
        m.rearrange([3, 9])
    run(m, 1)
    with refused(NotEditable, 'job 1 is running: the current job cannot be '
                              'moved; it has already left the waiting list'):
        m.rearrange([3, 1, 2])
    assert order(m) == [2, 3]
    assert m.rearrange([]).events == []


# -- skip, repeat, remove ---------------------------------------------------------

def test_skipped_job_stays_in_place_and_is_passed_over(m):
    add(m, 3)
    assert m.skip(1).result.state is JobState.SKIPPED
    assert order(m) == [1, 2, 3] and m.next_job().id == 2
    with refused(InvalidTransition, 'job 1 is skipped: unskip it to start it'):
        m.start(1, 1.0)
    assert m.skip(1).events == []
    assert m.unskip(1).result.state is JobState.QUEUED
    assert m.next_job().id == 1


def test_skip_current_job_is_refused(m):
    run(m, add(m)[0])
    with refused(NotEditable, 'job 1 is running: the current job cannot be '
                              'skipped; abort it to stop it'):
        m.skip(1)


def test_repeat_inserts_copies_after_the_job(m):
    add(m, 3, now=5.0)
    copies = m.repeat(2, 2, now=9.0).result
    assert [job.id for job in copies] == [4, 5]
    assert order(m) == [1, 2, 4, 5, 3]
    original = m.get(2)
    for copy in copies:
        assert (copy.source, copy.name, copy.owner) == (original.source,
                                                        original.name, 'alice')
        assert (copy.created, copy.queued_at, copy.state) == (5.0, 9.0,
                                                              JobState.QUEUED)


def test_repeat_current_job_queues_copies_at_the_top(m):
    add(m, 2)
    run(m, 1)
    assert m.duplicate(1, 30.0).result.id == 3
    assert order(m) == [3, 2]


def test_repeat_refusals(m):
    add(m)
    with refused(InvalidValue, 'cannot repeat job 1 0 times: give a number '
                               'from 1 to 1000'):
        m.repeat(1, 0, 1.0)
    with refused(InvalidValue, 'cannot repeat job 1 1001 times: give a number '
                               'from 1 to 1000'):
        m.repeat(1, 1001, 1.0)
    run(m, 1)
    m.finish('done', 30.0)
    with refused(NotEditable, 'job 1 is done: only waiting jobs and the current '
                              'job can be repeated; submit it again instead'):
        m.repeat(1, 1, 40.0)
    with refused(JobNotFound, 'no job 5 in the queue or its history'):
        m.duplicate(5, 40.0)


def test_remove_waiting_job(m):
    add(m, 3)
    change = m.remove(2)
    assert order(m) == [1, 3]
    assert change.events == [('queue_changed', {'order': [1, 3],
                                                'removed': [2]})]
    with refused(JobNotFound, 'no job 2 in the queue or its history'):
        m.get(2)


def test_remove_refusals(m):
    add(m, 2)
    run(m, 1)
    with refused(NotEditable, 'job 1 is running: the current job cannot be '
                              'removed; abort it to stop it'):
        m.remove(1)
    m.finish('done', 30.0)
    with refused(NotEditable, 'job 1 is done: finished jobs cannot be removed, '
                              'they stay in the history as they ran'):
        m.remove(1)
    with refused(JobNotFound, 'no job 3 in the queue'):
        m.remove(3)


def test_clear_removes_all_waiting_jobs_in_one_change(m):
    add(m, 3)
    run(m, 1)
    change = m.clear()
    assert change.result == [2, 3] and m.waiting() == []
    assert change.events == [('queue_changed', {'order': [],
                                                'removed': [2, 3]})]
    assert m.current().id == 1
    assert m.clear().events == []


# -- requeue --------------------------------------------------------------------

@pytest.mark.parametrize('outcome', ['failed', 'aborted'])
def test_requeue_makes_a_new_job(m, outcome):
    add(m, 2, now=5.0)
    run(m, 1)
    m.finish(outcome, 30.0, error={'type': 'E', 'message': 'm'})
    before = m.get(1)
    new = m.requeue(1, 40.0).result
    assert (new.id, new.requeued_from, new.state) == (3, 1, JobState.QUEUED)
    assert (new.source, new.created, new.queued_at) == (before.source, 5.0, 40.0)
    assert (new.started_at, new.error, new.progress) == (None, None, None)
    assert m.get(1) == before and order(m) == [2, 3]


def test_a_requeued_job_is_dry_run_again(m):
    # Its dry run failed, it was confirmed anyway and failed: re-queued it
    # is held back again if its new dry run fails, as a new job would be.
    add(m)
    m.set_estimate(1, {'state': 'failed', 'seconds': None})
    run(m, 1)
    m.finish('failed', 30.0, error={'type': 'E', 'message': 'm'})
    new = m.requeue(1, 40.0).result
    assert new.estimate is None and not new.held


def test_requeue_with_edits_position_and_owner(m):
    add(m, 2)
    run(m, 1)
    m.finish('aborted', 30.0)
    new = m.requeue(1, 40.0, source='measure(5)', position='top',
                    owner='bob').result
    assert (new.source, new.owner) == ('measure(5)', 'bob')
    assert order(m) == [3, 2]


def test_requeue_refusals(m):
    add(m, 2)
    with refused(InvalidTransition, 'job 1 is queued: only aborted, failed or '
                                    'interrupted jobs can be re-queued'):
        m.requeue(1, 1.0)
    run(m, 1)
    m.finish('done', 30.0)
    with refused(InvalidTransition, 'job 1 is done: only aborted, failed or '
                                    'interrupted jobs can be re-queued'):
        m.requeue(1, 31.0)
    with refused(JobNotFound, 'no job 9 in the queue or its history'):
        m.requeue(9, 31.0)
    run(m, 2)
    m.finish('failed', 40.0)
    with refused(InvalidValue, 'cannot change kind when re-queuing; only name, '
                               'source and calls'):
        m.requeue(2, 41.0, **parse_edits({'kind': 'blackbox'},
                                         label='re-queued job 2',
                                         when='when re-queuing'))
    with refused(InvalidValue, 're-queued job 2 has an empty script'):
        m.requeue(2, 41.0, **parse_edits({'source': ''},
                                         label='re-queued job 2'))
    with refused(BadPosition, "cannot insert at position 4: give 'top', "
                              "'bottom' or an index from 0 to 0"):
        m.requeue(2, 41.0, position=4)
    assert m.waiting() == []


# -- hold and failure policy ----------------------------------------------------

def test_hold_lets_current_job_finish_but_starts_nothing(m):
    add(m, 2)
    run(m, 1)
    change = m.hold('held by alice')
    assert change.events == [('queue_state', {'held': True,
                                              'hold_reason': 'held by alice',
                                              'on_failure': 'hold',
                                              'hold_kind': 'manual',
                                              'protected': []})]
    m.finish('done', 30.0)
    assert m.next_job() is None
    with refused(InvalidTransition, 'cannot start job 2: the queue is held '
                                    '(held by alice); release it first'):
        m.start(2, 31.0)
    m.release()
    assert m.next_job().id == 2
    assert m.release().events == []


def test_a_persons_hold_holds_jobs_queued_later_and_an_empty_queue(m):
    m.hold('held by alice')
    add(m)
    m.remove(1)
    assert m.queue.held and m.queue.hold_kind == 'manual'
    add(m)
    assert m.next_job() is None


def test_failure_holds_the_queue_by_default(m):
    add(m, 2)
    run(m, 1)
    m.finish('failed', 30.0, error={'type': 'ValueError',
                                    'message': 'bad value\nmore', 'line': 3})
    assert m.queue.held
    assert m.queue.hold_reason == 'job 1 failed: ValueError: bad value'
    assert (m.queue.hold_kind, m.queue.protected) == ('safety', (2,))
    assert m.next_job() is None and order(m) == [2]


def test_failure_with_nothing_queued_holds_nothing(m):
    add(m, 2)
    m.skip(2)
    run(m, 1)
    m.finish('failed', 30.0)
    assert not m.queue.held
    assert m.next_job() is None   # job 2 is skipped
    add(m)
    assert m.next_job().id == 3


def test_failure_policy_continue(m):
    add(m, 2)
    m.set_on_failure('continue')
    run(m, 1)
    m.finish('failed', 30.0)
    assert not m.queue.held and m.next_job().id == 2
    with refused(InvalidValue, "unknown failure policy 'stop'; give one of "
                               'hold, continue'):
        m.set_on_failure('stop')


def test_an_abort_holds_nothing_by_itself(m):
    # Whoever asks for the abort holds the queue for safety at that moment.
    add(m, 3)
    run(m, 1)
    change = m.finish('aborted', 30.0)
    assert not m.queue.held and order(m) == [2, 3]
    assert [name for name, _ in change.events] == ['job_changed']


def test_safety_hold_protects_the_jobs_queued_at_that_moment(m):
    add(m, 4)
    m.skip(3)
    run(m, 1)
    change = m.hold_for_safety('job aborted by bob')
    assert change.events == [('queue_state', {
        'held': True, 'hold_reason': 'job aborted by bob', 'on_failure': 'hold',
        'hold_kind': 'safety', 'protected': [2, 4]})]
    m.finish('aborted', 30.0)
    assert m.queue.hold_reason == 'job aborted by bob'
    # A job queued later waits behind them, also at the top.
    later, = add(m, position='top')
    assert m.next_job() is None
    with refused(InvalidTransition, f'cannot start job {later}: the queue is '
                                    'held (job aborted by bob); release it '
                                    'first'):
        m.start(later, 31.0)
    m.release()
    assert m.next_job().id == later and m.queue == QueueState()


def test_safety_hold_with_nothing_queued_is_no_hold(m):
    add(m, 2)
    m.skip(2)
    run(m, 1)
    assert m.hold_for_safety('job aborted by bob').empty
    m.finish('aborted', 30.0)
    add(m)
    assert m.next_job().id == 3   # queued after the stop: it runs


def test_safety_hold_ends_when_none_of_its_jobs_is_queued_any_more(m):
    add(m, 3)
    m.hold_for_safety('emergency stop by bob')
    later, = add(m)
    m.remove(1)
    m.skip(3)
    assert m.queue.held and m.next_job() is None
    m.confirm(2)   # still queued: still protected
    m.edit(2, by=ALICE, name='renamed')
    assert m.queue.held
    change = m.remove(2)
    assert ('queue_state', QueueState(on_failure='hold').to_dict()) in \
        change.events
    assert not m.queue.held and m.next_job().id == later
    m.unskip(3)   # no longer protected: it runs in its turn
    assert m.next_job().id == 3


def test_a_persons_hold_outranks_a_safety_hold(m):
    add(m, 2)
    m.hold_for_safety('job 7 failed')
    m.hold('held by alice')
    assert (m.queue.hold_kind, m.queue.protected) == ('manual', ())
    m.clear()
    assert m.queue.held   # a person's hold lasts until released
    assert m.hold_for_safety('emergency stop by bob').empty
    assert m.queue.hold_reason == 'held by alice'


def test_a_second_safety_hold_keeps_the_reason_and_protects_every_queued_job(m):
    add(m, 2)
    m.hold_for_safety('job aborted by bob')
    add(m)
    m.hold_for_safety('emergency stop by carol')
    assert m.queue.hold_reason == 'job aborted by bob'
    assert m.queue.protected == (1, 2, 3)


# -- the running job -------------------------------------------------------------

def test_start_takes_the_job_out_of_the_waiting_list(m):
    add(m, 2)
    change = m.start(2, 20.0)
    job = change.result
    assert (job.state, job.started_at) == (JobState.RUNNING, 20.0)
    assert m.current() == job and order(m) == [1]
    assert change.events == [('job_changed', job.to_dict()),
                             ('queue_changed', {'order': [1], 'removed': []})]


def test_only_one_job_runs_at_a_time(m):
    add(m, 2)
    run(m, 1)
    assert m.next_job() is None
    with refused(InvalidTransition, 'cannot start job 2: job 1 is running and '
                                    'only one job runs at a time'):
        m.start(2, 21.0)
    with refused(NotEditable, 'job 1 is running: the current job cannot be '
                              'started; it has already started'):
        m.start(1, 21.0)


def test_paused_job_can_only_be_resumed_or_aborted(m):
    add(m, 2)
    run(m, 1)
    paused = m.pause(25.0).result
    assert (paused.state, paused.paused_since) == (JobState.PAUSED, 25.0)
    assert m.next_job() is None
    with refused(InvalidTransition, 'cannot start job 2: job 1 is paused and '
                                    'only one job runs at a time'):
        m.start(2, 26.0)
    for outcome in ('done', 'failed'):
        with refused(InvalidTransition, 'job 1 is paused: a paused job can only '
                                        'be resumed or aborted'):
            m.finish(outcome, 26.0)
    with refused(InvalidTransition, 'job 1 is already paused'):
        m.pause(26.0)
    with refused(InvalidTransition, 'cannot report the progress of job 1: it '
                                    'is paused'):
        m.report_progress(0.5)
    aborted = m.finish('aborted', 35.0).result
    assert (aborted.paused_total, aborted.paused_since) == (10.0, None)


def test_resume_needs_a_paused_job(m):
    run(m, add(m)[0])
    with refused(InvalidTransition, 'job 1 is not paused: only a paused job can '
                                    'be resumed'):
        m.resume(30.0)


def test_blackbox_job_cannot_pause(m):
    m.submit(spec(kind='blackbox'), 'alice', 1.0)
    run(m, 1)
    with refused(InvalidTransition, 'job 1 is a black-box job: it cannot be '
                                    'paused, only aborted'):
        m.pause(30.0)


def test_operations_on_the_current_job_need_one(m):
    with refused(InvalidTransition, 'cannot pause the current job: no job is '
                                    'running'):
        m.pause(1.0)
    with refused(InvalidTransition, 'cannot finish the current job: no job is '
                                    'running'):
        m.finish('done', 1.0)
    with refused(InvalidTransition, 'cannot set the line of the current job: '
                                    'no job is running'):
        m.set_line(3)


def test_progress_and_line(m):
    run(m, add(m)[0])
    job = m.report_progress(0.25, 'point 1 of 4').result
    assert (job.progress, job.progress_message) == (0.25, 'point 1 of 4')
    change = m.set_line(12)
    assert not change.durable
    assert change.events == []
    assert m.current().current_line == 12


@pytest.mark.parametrize('fraction', [-0.1, 1.5, float('nan'), True, '0.5'])
def test_progress_must_be_a_fraction(m, fraction):
    run(m, add(m)[0])
    with refused(InvalidValue, f'job 1: progress must be a number from 0 to 1, '
                               f'not {fraction!r}'):
        m.report_progress(fraction)


def test_finish_records_outcome(m):
    run(m, add(m)[0])
    m.set_line(4)
    job = m.finish('done', 30.0, result='42').result
    assert (job.state, job.finished_at, job.result) == (JobState.DONE, 30.0, '42')
    assert job.current_line == 4
    assert m.current() is None and m.history() == [job]
    assert not m.queue.held


def test_a_done_job_is_complete_and_a_failed_one_keeps_where_it_got(m):
    first, second = add(m, 2)
    run(m, first)
    m.report_progress(0.995, 'step 200 of 200')
    assert m.finish('done', 30.0).result.progress == 1.0
    run(m, second)
    m.report_progress(0.4, 'step 3 of 5')
    failed = m.finish('failed', 40.0).result
    assert (failed.progress, failed.progress_message) == (0.4, 'step 3 of 5')


def test_finish_refuses_unknown_outcome(m):
    run(m, add(m)[0])
    with refused(InvalidValue, "unknown outcome 'ok'; give one of done, "
                               'failed, aborted'):
        m.finish('ok', 30.0)
    with refused(InvalidValue, "unknown outcome 'running'; give one of done, "
                               'failed, aborted'):
        m.finish('running', 30.0)


def test_held_back_job_waits_for_confirmation(m):
    m.submit([spec(held=True, hold_reason='needs the beam'), spec()], 'alice',
             1.0)
    assert m.next_job().id == 2
    with refused(InvalidTransition, 'job 1 is held back (needs the beam): '
                                    'confirm it to start it'):
        m.start(1, 2.0)
    assert m.confirm(1).result.runnable
    assert m.next_job().id == 1


# -- history and restart -----------------------------------------------------------

def test_history_is_newest_first_and_pages(m):
    add(m, 5)
    for now in range(5):
        run(m, now=float(now))
        m.finish('done', now + 0.5)
    assert [job.id for job in m.history()] == [5, 4, 3, 2, 1]
    assert [job.id for job in m.history(2)] == [5, 4]
    assert [job.id for job in m.history(2, before_id=4)] == [3, 2]
    assert [job.id for job in m.history(9, before_id=2)] == [1]
    with refused(JobNotFound, 'no job 9 in the history'):
        m.history(2, before_id=9)
    with refused(InvalidValue, 'the history limit must be a positive number, '
                               'not 0'):
        m.history(0)


def test_history_follows_finishing_order_not_ids(m):
    add(m, 2)
    m.move(2, 'top')
    for now in (1.0, 2.0):
        run(m, now=now)
        m.finish('done', now + 0.5)
    assert [job.id for job in m.history()] == [1, 2]


def test_only_the_newest_finished_jobs_are_kept_in_memory():
    m = QueueMachine(keep_history=2)
    add(m, 3)
    for now in (1.0, 2.0, 3.0):
        run(m, now=now)
        m.finish('done', now + 0.5)
    assert [job.id for job in m.history()] == [3, 2]
    assert m.data().history_start == 1 and m.data().problems() == []
    with refused(JobNotFound, 'no job 1 in the queue or its history'):
        m.get(1)  # no archive to ask: see test_queue_store for one


def test_recover_interrupts_the_current_job_and_holds(m):
    add(m, 2)
    run(m, 1)
    m.pause(30.0)
    change = m.recover(50.0)
    job = change.result
    assert (job.state, job.finished_at, job.paused_total) == (
        JobState.INTERRUPTED, 50.0, 20.0)
    assert m.current() is None and m.history() == [job]
    assert m.queue.hold_reason == 'job 1 was interrupted by a server restart'
    assert (m.queue.hold_kind, m.queue.protected) == ('safety', (2,))
    assert order(m) == [2]
    assert m.requeue(1, 60.0).result.requeued_from == 1


def test_recover_with_nothing_queued_holds_nothing(m):
    run(m, add(m)[0])
    assert m.recover(50.0).result.state is JobState.INTERRUPTED
    assert not m.queue.held


def test_recover_without_current_job_changes_nothing(m):
    add(m)
    assert m.recover(50.0).empty


# -- all or nothing -----------------------------------------------------------------

def test_failed_commit_leaves_the_machine_unchanged():
    commits = []

    def commit(change):
        if fail:
            raise OSError('disk full')
        commits.append(change)

    fail = False
    m = QueueMachine(commit=commit)
    add(m, 3)
    run(m, 1)
    before = m.data()
    fail = True
    for operation in (lambda: add(m), lambda: m.move(3, 'top'),
                      lambda: m.remove(2), lambda: m.finish('failed', 30.0),
                      lambda: m.hold(), lambda: m.pause(25.0)):
        with pytest.raises(OSError):
            operation()
        assert m.data() == before
    m.set_line(5)  # kept in memory only: no commit needed
    assert len(commits) == 4
