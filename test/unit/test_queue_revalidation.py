"""Waiting jobs checked again after command files changed (hot reload),
on a real queue file, with the catalog as plain dicts."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nicos_scriptserver.app.revalidation import (changed_commands,
                                                 revalidate)
from nicos_scriptserver.app.spec import parse_spec
from nicos_scriptserver.catalog import (CatalogChanges, parse_source,
                                        validate_calls, ValidationError)
from nicos_scriptserver.queue import Caller, JobQueue

ALICE = Caller('alice', 10)

V1 = '''
def set_ei(energy: float):
    """Sets the energy.

    Args:
        energy [meV] (0.5..100): incident energy.
    """

def probe():
    """Probes."""
'''


def catalog(source=V1):
    return {e['name']: e for e in
            parse_source(source, '/cmds/demo.py', 'demo.py').commands}


def removed(name):
    return {k: v for k, v in catalog().items() if k != name}


@pytest.fixture
def queue(tmp_path):
    with JobQueue(tmp_path / 'queue.db') as made:
        yield made


def generated(queue, *calls, **spec):
    job, = queue.submit(parse_spec(dict(spec, kind='generated', calls=[
        {'command': command, 'args': args} for command, args in calls]),
        catalog()), 'alice')
    return job


def estimated(queue, job):
    return queue.set_estimate(job.id, {'state': 'ok', 'seconds': 1})


def test_a_removed_command_holds_its_jobs_back_until_it_is_back(queue):
    uses = estimated(queue, generated(queue, ('probe', {})))
    other = estimated(queue, generated(queue, ('set_ei', {'energy': 5})))
    held, = revalidate(queue, removed('probe'), ['probe'])
    assert held.id == uses.id and held.held and held.held_by_catalog
    assert held.hold_reason == ("commands changed: call 1 (probe): unknown "
                                "command 'probe'")
    assert queue.next_job().id == other.id
    assert queue.get(other.id) == other   # untouched, estimate and all
    assert held.version == uses.version   # the server's change, not a person's

    released, = revalidate(queue, catalog(), ['probe'])
    assert released.id == uses.id
    assert not released.held and not released.held_by_catalog
    assert released.hold_reason == '' and released.estimate is None
    assert queue.next_job().id == uses.id


def test_new_limits_and_renamed_arguments_hold_back_too(queue):
    job = generated(queue, ('set_ei', {'energy': 50}))
    narrower = catalog(V1.replace('(0.5..100)', '(0.5..20)'))
    held, = revalidate(queue, narrower, ['set_ei'])
    assert held.hold_reason == ("commands changed: call 1 (set_ei): argument "
                                "'energy' = 50 is above its maximum 20 meV")
    renamed = catalog(V1.replace('energy', 'ei'))
    held, = revalidate(queue, renamed, ['set_ei'])
    assert held.hold_reason.startswith(
        "commands changed: call 1 (set_ei): unknown argument 'energy'")
    assert held.hold_reason.endswith('(and 1 more)')
    assert job.id == held.id


def test_an_edit_that_fits_releases_a_job_held_back_by_the_catalog(queue):
    job = generated(queue, ('probe', {}))
    revalidate(queue, removed('probe'), ['probe'])
    renamed = queue.edit(job.id, by=ALICE, name='still held')
    assert renamed.held_by_catalog
    fixed = queue.edit(job.id, by=ALICE, calls=[
        {'command': 'set_ei', 'args': {'energy': 5}}], source='set_ei(energy=5)\n')
    assert not fixed.held and not fixed.held_by_catalog


def test_jobs_calling_a_changed_command_get_a_fresh_dry_run(queue):
    calls = estimated(queue, generated(queue, ('set_ei', {'energy': 5})))
    aware, = queue.submit(parse_spec({'source': 'for e in (5, 6):\n'
                                                '    set_ei(e)\n',
                                      'kind': 'aware'}), 'alice')
    aware = estimated(queue, aware)
    not_calling, = queue.submit(parse_spec({'source': 'x.set_ei(5)\nprobe()',
                                            'kind': 'aware'}), 'alice')
    not_calling = estimated(queue, not_calling)
    redone = revalidate(queue, catalog(), ['set_ei'])
    assert sorted(job.id for job in redone) == [calls.id, aware.id]
    assert all(job.estimate is None and not job.held for job in redone)
    assert queue.get(not_calling.id) == not_calling


def test_a_persons_hold_stays(queue):
    job = generated(queue, ('probe', {}), held=True, hold_reason='wait for me')
    assert revalidate(queue, removed('probe'), ['probe']) == []
    assert queue.get(job.id).hold_reason == 'wait for me'


def test_a_job_edited_while_it_was_checked_keeps_its_edit(queue):
    job = generated(queue, ('probe', {}))
    stale = [(job, 'gone', False)]
    queue.edit(job.id, by=ALICE, calls=[{'command': 'set_ei',
                                         'args': {'energy': 5}}],
               source='set_ei(energy=5)\n')
    assert queue.catalog_checked(stale) == []
    assert not queue.get(job.id).held


def test_the_changed_commands_include_those_of_a_changed_file():
    changes = CatalogChanges(2, added=['new'], removed=['old'],
                             changed_files=['/cmds/demo.py'])
    assert changed_commands(changes, catalog()) == ['new', 'old', 'probe',
                                                    'set_ei']


# -- property: after a check, held back by the catalog == does not fit ------

calls = st.lists(st.tuples(st.sampled_from(['set_ei', 'probe']),
                           st.floats(0.5, 100)), min_size=1, max_size=3)


@settings(max_examples=40, deadline=None)
@given(jobs=st.lists(calls, min_size=1, max_size=6),
       versions=st.lists(st.sampled_from(['v1', 'no probe', 'narrow']),
                         min_size=1, max_size=4))
def test_a_job_is_held_back_by_the_catalog_exactly_when_it_does_not_fit(
        tmp_path_factory, jobs, versions):
    catalogs = {'v1': catalog(), 'no probe': removed('probe'),
                'narrow': catalog(V1.replace('(0.5..100)', '(0.5..20)'))}
    with JobQueue(tmp_path_factory.mktemp('q') / 'queue.db') as queue:
        for job_calls in jobs:
            generated(queue, *[(c, {'energy': e} if c == 'set_ei'
                                else {}) for c, e in job_calls])
        for version in versions:
            revalidate(queue, catalogs[version], ['set_ei', 'probe'])
            for job in queue.waiting():
                try:
                    validate_calls(catalogs[version], job.calls)
                    fits = True
                except ValidationError:
                    fits = False
                assert job.held_by_catalog == job.held == (not fits)
                assert job.version == 1
