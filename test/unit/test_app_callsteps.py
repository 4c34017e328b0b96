"""What a generated job reports as it reaches each of its calls."""

from nicos_scriptserver.app.callsteps import step_messages
from nicos_scriptserver.app.spec import parse_spec
from nicos_scriptserver.catalog import parse_source
from nicos_scriptserver.queue import QueueMachine

CATALOG = {e['name']: e for e in parse_source('''
def set_ei(energy: float):
    """Sets the energy.

    Args:
        energy [meV] (0.5..100): incident energy.
    """

def measure(frames: int):
    """Counts."""
''', '/cmds/demo.py', 'demo.py').commands}


def jobs(*batch):
    specs = [parse_spec(spec, CATALOG) for spec in batch]
    return QueueMachine().submit(specs, 'alice', 1.0).result


GENERATED = {'kind': 'generated', 'calls': [
    {'command': 'set_ei', 'args': {'energy': 25}},
    {'command': 'measure', 'args': {'frames': 10}}]}


def test_each_call_is_a_step_with_the_call_and_its_units():
    job, = jobs(GENERATED)
    assert step_messages(job, CATALOG) == [
        'step 1 of 2: set_ei(energy=25 meV)', 'step 2 of 2: measure(frames=10)']


def test_a_batch_says_which_job_of_it_runs():
    first, second = jobs(GENERATED, dict(GENERATED, calls=GENERATED['calls'][1:]))
    assert step_messages(first, CATALOG)[0].startswith('job 1 of 2: step 1 of 2: ')
    assert step_messages(second) == ['job 2 of 2: step 1 of 1: measure(frames=10)']


def test_other_jobs_report_only_what_they_say():
    job, = jobs({'kind': 'aware', 'source': 'set_ei(25)'})
    assert step_messages(job, CATALOG) == []
