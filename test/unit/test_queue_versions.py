"""Versioned changes of waiting jobs: a change made to a job as a client
saw it, refused with who changed what if somebody changed it since.

Refusals are checked by their exact message: it is what the user reads.
"""

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nicos_scriptserver.app.spec import parse_spec
from nicos_scriptserver.queue import (Caller, Conflict, InvalidValue,
                                      QueueMachine)

ALICE, BOB = Caller('alice', 10), Caller('bob', 20)


def submit(m, count=3):
    return [m.submit(parse_spec({'kind': 'aware', 'source': f'x = {i}'}),
                     'alice', 1.0).result[0].id for i in range(count)]


@pytest.fixture
def m():
    machine = QueueMachine()
    yield machine
    assert machine.data().problems() == []


def conflict(message):
    return pytest.raises(Conflict, match=f'^{re.escape(message)}$')


def test_a_new_job_is_at_version_1_and_each_change_by_a_person_counts(m):
    job_id = submit(m, 2)[0]
    assert m.get(job_id).version == 1 and m.get(job_id).last_change is None
    m.edit(job_id, by=ALICE, name='scan', version=1)
    m.skip(job_id, 'alice', version=2)
    m.unskip(job_id, 'bob', version=3)
    m.move(job_id, 'bottom', 'bob', version=4)
    job = m.get(job_id)
    assert job.version == 5
    assert job.last_change == {'by': 'bob', 'what': 'moved it to position 1'}


def test_a_stale_version_is_a_conflict_naming_who_changed_what(m):
    job_id = submit(m)[1]
    m.edit(job_id, by=BOB, source='y = 2', version=1)
    before = m.data()
    message = (f'job {job_id} was changed after you saw it (version 1): bob '
               'edited its script (now version 2); nothing was changed, look '
               'at the job again')
    for attempt in (lambda: m.edit(job_id, by=ALICE, name='n', version=1),
                    lambda: m.move(job_id, 'top', 'alice', version=1),
                    lambda: m.skip(job_id, 'alice', version=1),
                    lambda: m.unskip(job_id, 'alice', version=1),
                    lambda: m.confirm(job_id, 'alice', version=1),
                    lambda: m.repeat(job_id, 2, 5.0, 'alice', version=1),
                    lambda: m.remove(job_id, version=1)):
        with conflict(message):
            attempt()
        assert m.data() == before


def test_without_a_version_changes_apply_to_the_job_as_it_is(m):
    # What stock clients do: they know nothing of versions.
    job_id = submit(m)[0]
    m.edit(job_id, by=BOB, name='theirs')
    m.edit(job_id, by=ALICE, name='mine')
    m.move(job_id, 'bottom')
    m.remove(job_id)
    assert job_id not in [job.id for job in m.waiting()]


def test_what_does_not_change_a_job_leaves_its_version(m):
    first, second, third = submit(m)
    m.move(first, 0, 'bob')
    m.edit(first, by=ALICE, name=m.get(first).name)
    m.set_estimate(first, {'state': 'ok'}, hold_reason='dry run: boom')
    m.repeat(first, 1, 2.0, 'bob', version=1)
    m.rearrange([third, second])
    assert [m.get(i).version for i in (first, second, third)] == [1, 1, 1]


def test_an_edit_says_what_it_changed_and_a_copy_starts_afresh(m):
    job_id = submit(m)[0]
    m.edit(job_id, by=BOB, name='a', source='z = 1')
    assert m.get(job_id).last_change == {'by': 'bob',
                                         'what': 'edited its name and script'}
    copy, = m.repeat(job_id, 1, 3.0, 'alice', version=2).result
    assert (copy.version, copy.last_change) == (1, None)


@pytest.mark.parametrize('version', [0, -1, True, 1.0, '1'])
def test_a_version_is_a_whole_number(m, version):
    job_id = submit(m)[0]
    with pytest.raises((InvalidValue, Conflict)):
        m.move(job_id, 'bottom', 'bob', version=version)


# -- property: two clients, each acting on the versions it last saw --------

ACTIONS = ('edit', 'move', 'skip', 'unskip', 'repeat', 'remove')


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.sampled_from((ALICE, BOB)),
                          st.sampled_from(ACTIONS), st.integers(0, 3),
                          st.booleans()), max_size=30))
def test_only_a_change_to_the_version_seen_applies(steps):
    """A client that refreshes its view before acting never conflicts; a
    client acting on an older view conflicts exactly when the job changed
    since, and then nothing changes."""
    m = QueueMachine()
    submit(m, 4)
    seen = {ALICE.name: {}, BOB.name: {}}
    for step, (client, action, index, refresh) in enumerate(steps):
        order = [job.id for job in m.waiting()]
        if not order:
            break
        job_id = order[index % len(order)]
        view = seen[client.name]
        if refresh or job_id not in view:
            view[job_id] = m.get(job_id).version
        version = view[job_id]
        before = m.data()
        current = m.get(job_id).version
        try:
            if action == 'edit':
                m.edit(job_id, by=client, name=f'n{step}', version=version)
            elif action == 'move':
                m.move(job_id, 'bottom', client.name, version=version)
            elif action == 'skip':
                m.skip(job_id, client.name, version=version)
            elif action == 'unskip':
                m.unskip(job_id, client.name, version=version)
            elif action == 'repeat':
                m.repeat(job_id, 1, 2.0, client.name, version=version)
            else:
                m.remove(job_id, version=version)
        except Conflict:
            assert version != current and m.data() == before
            continue
        except Exception:
            assert m.data() == before
            continue
        assert version == current
        if job_id in m.jobs:
            after = m.get(job_id).version
            assert after in (current, current + 1)
            view[job_id] = after
        assert m.data().problems() == []
