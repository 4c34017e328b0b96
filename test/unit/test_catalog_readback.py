"""Editing a generated job's script: read back into calls, or the job
becomes an aware one and says so (its description never lies)."""

import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nicos_scriptserver.app.ports import Ports
from nicos_scriptserver.app.server import ScriptServer
from nicos_scriptserver.catalog import (ValidationError, parse_source,
                                        render_script)
from nicos_scriptserver.catalog.readback import NotCalls, read_calls
from nicos_scriptserver.queue import Caller, JobQueue

ALICE = Caller('alice', 10)

CATALOG = {e['name']: e for e in parse_source('''
def set_ei(energy: float, wait_for_choppers: bool = True):
    """Sets the incident energy.

    Args:
        energy [meV] (0.5..100): incident energy.
    """

def point(x: float, /, label: str = ''):
    """A point."""

def many(first: int, *rest: int):
    """Numbers."""
''', '/cmds/demo.py', 'demo.py').commands}


@pytest.mark.parametrize('source, calls', [
    ('set_ei(25)\nset_ei(energy=3.5, wait_for_choppers=False)\n',
     [{'command': 'set_ei', 'args': {'energy': 25}},
      {'command': 'set_ei', 'args': {'energy': 3.5,
                                     'wait_for_choppers': False}}]),
    ('point(-1.5, label="a")', [{'command': 'point', 'args': {'label': 'a'},
                                 'posargs': [-1.5]}]),
    ('many(1, 2, 3)', [{'command': 'many', 'args': {},
                        'posargs': [1, 2, 3]}]),
    ('set_ei(\n    25,\n)\n\n\nset_ei(5)', [
        {'command': 'set_ei', 'args': {'energy': 25}},
        {'command': 'set_ei', 'args': {'energy': 5}}]),
])
def test_a_script_of_command_calls_reads_back_as_its_calls(source, calls):
    assert read_calls(source, CATALOG) == calls


@pytest.mark.parametrize('source, why', [
    ('set_ei(25)\nprint("hi")', 'line 2 calls print, which is not an '
                                'instrument command'),
    ('for e in (5, 10):\n    set_ei(e)', 'line 1 is not a command call'),
    ('set_ei(25)  # low', 'line 1 has a comment, which command calls cannot '
                          'keep'),
    ('set_ei(e)', 'line 1 has an argument that is not a literal value'),
    ('set_ei((1, 2))', 'line 1 has an argument that is not a number, text, '
                       'True/False, None, or a list or dict of them'),
    ('set_ei(*[25])', 'line 1 passes arguments with * or **'),
    ('x = set_ei(25)', 'line 1 is not a command call'),
    ('pass', 'line 1 is not a command call'),
])
def test_anything_else_says_where_it_is_more_than_calls(source, why):
    with pytest.raises(NotCalls, match=f'^{why}'.replace('(', r'\(')
                       .replace(')', r'\)').replace('*', r'\*')):
        read_calls(source, CATALOG)


values = st.one_of(st.integers(-10**6, 10**6), st.booleans(), st.none(),
                   st.floats(allow_nan=False, allow_infinity=False),
                   st.text(max_size=8))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(sorted(CATALOG)),
                          st.lists(values, max_size=3),
                          st.dictionaries(st.sampled_from(['label', 'x1']),
                                          values, max_size=2)),
                min_size=1, max_size=5))
def test_a_read_back_script_reads_back_to_the_same_calls(spec):
    """Whatever calls a script generator sends, their script reads back
    to one call per call, with the same command and the same values in
    the same order; and reading back once more changes nothing."""
    calls = [{'command': name, 'args': args, 'posargs': posargs}
             for name, posargs, args in spec]
    read = read_calls(render_script(calls), CATALOG)
    assert [c['command'] for c in read] == [c['command'] for c in calls]
    for before, after in zip(calls, read):
        assert list(after.get('posargs', [])) + list(after['args'].values()) \
            == before['posargs'] + list(before['args'].values())
    assert read_calls(render_script(read), CATALOG) == read


# -- the use case: ss_edit, stock update, the CLI's edit --------------------

class Catalog:
    def lookup(self):
        return CATALOG

    def between_jobs(self):
        pass


@pytest.fixture
def app(tmp_path):
    queue = JobQueue(tmp_path / 'queue.db')
    yield ScriptServer(queue, Ports(None, Catalog(), {'alice': 10}.get,
                                    lambda: logging.getLogger('test')))
    queue.close()


def generated(app):
    job, = app.submit({'kind': 'generated', 'calls': [
        {'command': 'set_ei', 'args': {'energy': 25}}]}, ALICE)
    return job


def test_an_edited_script_of_calls_becomes_the_jobs_calls(app):
    job = generated(app)
    edited = app.edit(job.id, {'source': 'set_ei(30)\nset_ei(energy=40)\n'},
                      ALICE)
    assert edited.kind.value == 'generated'
    assert edited.calls == [{'command': 'set_ei', 'args': {'energy': 30}},
                            {'command': 'set_ei', 'args': {'energy': 40}}]
    assert edited.source == 'set_ei(energy=30)\nset_ei(energy=40)\n'
    assert app.job_view(edited)['call_lines'] == [
        'set_ei(energy=30 meV)', 'set_ei(energy=40 meV)']


def test_an_edited_script_of_calls_that_do_not_fit_is_refused(app):
    job = generated(app)
    with pytest.raises(ValidationError, match="call 1 .set_ei.: argument "
                                              "'energy' = 150 is above"):
        app.edit(job.id, {'source': 'set_ei(150)'}, ALICE)
    assert app.get(job.id) == job


def test_any_other_script_makes_it_an_aware_job_and_says_so(app, caplog):
    job = generated(app)
    with caplog.at_level(logging.INFO, logger='test'):
        edited = app.edit(job.id, {'source': 'for e in (5, 10):\n'
                                             '    set_ei(e)\n'}, ALICE)
    assert (edited.kind.value, edited.calls) == ('aware', None)
    why = ('its script is no longer only command calls (line 1 is not a '
           'command call)')
    assert edited.last_change == {
        'by': 'alice', 'what': f'edited its script and calls, which made it '
                               f'an aware job: {why}'}
    assert f'Job {job.id} is now an aware job: {why}.' in caplog.messages
    assert 'call_lines' not in app.job_view(edited)
