"""Fuzzing (hypothesis, bounded for CI) of what outsiders hand the server:
proxy frames, command files, job specs. Each may be refused, with the
documented error, but nothing may escape as another exception.

bench/bench_fuzz.py runs the same properties with many more examples.
What is a refusal and what a finding is decided by `fuzzing.oracles`,
shared with the coverage-guided targets (test/unit/test_fuzz_atheris.py).
"""

import json
import os

from hypothesis import HealthCheck, given, settings, strategies as st

from fuzzing import oracles

#: Examples per property; FUZZ_EXAMPLES raises it (bench_fuzz.py does).
EXAMPLES = int(os.environ.get('FUZZ_EXAMPLES', 300))
FUZZ = settings(max_examples=EXAMPLES, deadline=None,
                suppress_health_check=[HealthCheck.too_slow,
                                       HealthCheck.filter_too_much])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) |
    st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20)

# Pieces of command files: enough Python to reach the catalog's deeper
# paths (docstrings, annotations, defaults, decorators), in random order.
fragments = st.sampled_from([
    'def f(x: float = 1.0):\n    """Does f.\n\n    :param x: the x [mm] (0..10)\n    """\n',
    'def g(a, b=2, *args, c: int = 3, **kw):\n    pass\n',
    'def estimate_f(x=1):\n    return x\n',
    '@usercommand\ndef h(s: str = "a"):\n    """H."""\n',
    'def k(mode: Literal["a", "b"] = "a"):\n    """K.\n\n    Args:\n        mode: which\n    """\n',
    'import os\n', 'x = 1\n', 'class C:\n    def m(self):\n        pass\n',
    'async def a():\n    pass\n', 'def _hidden():\n    pass\n',
    'def f():\n    return f()\n', '    ', '"""', '(', 'def', ':\n', '\t', '\x00',
    '# -*- coding: latin-1 -*-\n', 'def u(x: "float[K]" = -1e9):\n    pass\n',
])


@FUZZ
@given(st.lists(st.binary(max_size=64), max_size=5))
def test_proxy_frames_parse_or_are_refused(frames):
    oracles.check_request(frames)


@FUZZ
@given(st.lists(json_values, max_size=4))
def test_proxy_arguments_of_any_shape(args):
    payload = json.dumps(args).encode()
    request = oracles.check_request([b'ss_submit', b'', payload])
    if request is not None:
        assert request.args == json.loads(payload)


@FUZZ
@given(st.one_of(st.text(max_size=300),
                 st.lists(fragments, max_size=12).map(''.join)))
def test_command_files_parse_or_report_an_error(source):
    oracles.check_command_source(source, 'fuzz.py')


job_specs = st.one_of(
    json_values,
    st.fixed_dictionaries({}, optional={
        'kind': st.sampled_from(['aware', 'generated', 'blackbox', 'x', 1]),
        'name': json_values, 'source': st.text(max_size=40) | json_values,
        'calls': st.lists(st.fixed_dictionaries({}, optional={
            'command': st.sampled_from(['set_ei', 'measure', 'nope', '']) | json_values,
            'args': st.dictionaries(st.sampled_from(['energy', 'frames', 'seconds', 'x']),
                                    json_values, max_size=3) | json_values}),
            max_size=3) | json_values}))


@FUZZ
@given(job_specs)
def test_job_specs_are_prepared_or_refused(spec):
    oracles.check_job_spec(spec, oracles.repo_catalog())
