"""Jobs submitted without a name are named after what they run."""

from hypothesis import given
from hypothesis import strategies as st

from nicos_scriptserver.queue.naming import MAX_LENGTH, job_name


def test_a_generated_job_is_named_after_its_first_call():
    calls = [{'command': 'set_temperature', 'args': {'kelvin': 10}},
             {'command': 'measure', 'args': {'frames': 100}}]
    assert job_name('', calls) == 'set_temperature(kelvin=10) (+1)'
    assert job_name('', calls[1:]) == 'measure(frames=100)'
    assert job_name('', [{'command': 'get_ei', 'args': {}}]) == 'get_ei()'


def test_a_script_is_named_after_its_first_line_that_does_something():
    source = '#!/usr/bin/env python\n# estimate: 2 min\n\n   set_ei(25)\n' \
             'measure(frames=10)\n'
    assert job_name(source) == 'set_ei(25)'
    assert job_name('# only a comment\n') == ''


def test_long_names_are_cut():
    long = 'x = ' + '1 + ' * 40 + '1'
    assert job_name(long) == long[:MAX_LENGTH - 1] + '…'
    calls = [{'command': 'move', 'args': {'text': 'a' * 100}}] * 3
    name = job_name('', calls)
    assert len(name) == MAX_LENGTH and name.endswith('… (+2)')


# Command and argument names are identifiers (the catalog checks calls).
identifiers = st.from_regex(r'[a-z_][a-z0-9_]{0,30}', fullmatch=True)


@given(st.text(), st.lists(st.fixed_dictionaries({
    'command': identifiers, 'args': st.dictionaries(
        identifiers, st.one_of(st.integers(), st.text()))}), max_size=5))
def test_names_fit_on_one_line(source, calls):
    for name in (job_name(source), job_name(source, calls)):
        assert len(name) <= MAX_LENGTH
        assert '\n' not in name and '\r' not in name
