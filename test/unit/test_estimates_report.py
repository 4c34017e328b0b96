"""Dry-run reports built from what a simulation process produced."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nicos_scriptserver.estimates import (DryRunFacts, build_report,
                                          declared_estimate, summary_values,
                                          with_declared)
from nicos_scriptserver.estimates.report import block_lines

SCRIPT = 'set_temperature(305)\nmeasure(frames=400)\nprint("done")\n'
DEVINFO = {'T_sample': ('305.00', '295.00', '305.00', [])}
LIMIT_TRACEBACK = '''Traceback (most recent call last):
  File "<script>", line 2, in <module>
  File "/commands/sample.py", line 14, in set_temperature
nicos.core.errors.LimitError: [T_sample] moving to 1000.00 K is not allowed
'''


def test_successful_dry_run_gives_total_per_line_and_devices():
    facts = DryRunFacts(block_seconds={0: 5.0, 1: 2.0, 2: 0.0},
                        end=(7.0, DEVINFO), wall_seconds=0.9)
    report = build_report(SCRIPT, facts, 60)
    assert report['state'] == 'ok'
    assert report['seconds'] == 7.0
    assert report['sources'] == {'dry run': 7.0}
    assert [(e['line'], e['seconds']) for e in report['lines']] == \
        [(1, 5.0), (2, 2.0), (3, 0.0)]
    assert report['devices'] == {'T_sample': {'min': '295.00', 'max': '305.00',
                                              'last': '305.00'}}
    assert report['problems'] == []


def test_figures_from_estimate_functions_are_attributed_to_their_line():
    facts = DryRunFacts(block_seconds={0: 5.0, 1: 2.0},
                        function_estimates={1: [{'command': 'measure',
                                                 'seconds': 2.0}]},
                        end=(7.0, {}))
    report = build_report(SCRIPT, facts, 60)
    assert report['sources'] == {'dry run': 5.0, 'estimate function': 2.0}
    second = report['lines'][1]
    assert second['source'] == 'estimate function'
    assert second['functions'] == ['estimate_measure']
    assert report['lines'][0]['source'] == 'dry run'


def test_limit_violation_fails_with_its_line():
    facts = DryRunFacts(block_seconds={0: 5.0},
                        records=[(40, 'Exception in dry run', LIMIT_TRACEBACK)],
                        end=(-1, {}))
    report = build_report(SCRIPT, facts, 60)
    assert report['state'] == 'failed' and report['seconds'] is None
    problem, = report['problems']
    assert problem == {'kind': 'limit', 'line': 2, 'message':
                       'LimitError: [T_sample] moving to 1000.00 K is not allowed'}


def test_warnings_are_reported_but_do_not_fail():
    facts = DryRunFacts(block_seconds={0: 1.0},
                        records=[(30, 'T_sample: close to its limit', ''),
                                 (20, 'just info', '')],
                        end=(1.0, {}))
    report = build_report(SCRIPT, facts, 60)
    assert report['state'] == 'ok'
    assert report['problems'] == [{'kind': 'warning', 'line': None,
                                   'message': 'T_sample: close to its limit'}]


def test_timeout_names_the_limit():
    report = build_report(SCRIPT, DryRunFacts(timed_out=True), 12)
    assert report['state'] == 'failed'
    assert report['problems'][0]['kind'] == 'timeout'
    assert '12 s' in report['problems'][0]['message']


def test_crashed_process_is_a_failure_with_its_exit_status():
    facts = DryRunFacts(exit_code=-9,
                        records=[(40, 'dry-run process error output',
                                  'Segmentation fault')])
    report = build_report(SCRIPT, facts, 60)
    assert report['state'] == 'failed'
    kinds = [p['kind'] for p in report['problems']]
    assert kinds == ['error', 'crash']
    assert 'exit status -9' in report['problems'][1]['message']


@pytest.mark.parametrize('line, seconds', [
    ('# estimate: 90', 90), ('# estimate: 90 s', 90),
    ('#estimate:2.5 min', 150), ('  # Estimate: 1 h', 3600),
    ('# estimate: 3 hours', 10800),
])
def test_declared_estimates(line, seconds):
    assert declared_estimate(f'import os\n{line}\nprint(1)\n') == seconds


@pytest.mark.parametrize('script', [
    'print(1)\n', '# estimate: soon\n', '# estimate: -5 s\n',
    'x = 1  # estimate: 5\n', '\n' * 40 + '# estimate: 5\n',
])
def test_no_declared_estimate(script):
    assert declared_estimate(script) is None


def test_a_declared_estimate_overrides_a_passed_dry_run_only():
    facts = DryRunFacts(block_seconds={0: 4.0}, end=(4.0, {}))
    script = '# estimate: 2 min\nprint(1)\n'
    declared = with_declared(build_report(script, facts, 60), script)
    assert declared['seconds'] == 120 and declared['sources'] == {'declared': 120}
    plain = with_declared(build_report('print(1)\n', facts, 60), 'print(1)\n')
    assert plain['seconds'] == 4.0
    failed = build_report(script, DryRunFacts(end=(-1, {})), 60)
    assert with_declared(failed, script)['seconds'] is None


def test_a_bridged_dry_run_over_its_limit_is_not_possible():
    facts = DryRunFacts(over_limit=30.0, wall_seconds=30.4)
    without = build_report('print(1)\n', facts, 60)
    assert without['state'] == 'not possible' and without['seconds'] is None
    assert without['reason'].startswith('the dry run took longer than 30 s;')
    assert '# estimate:' in without['reason']
    declared = build_report('# estimate: 2 min\nprint(1)\n', facts, 60)
    assert declared['reason'] == 'the dry run took longer than 30 s'
    assert declared['seconds'] == 120 and declared['sources'] == {'declared': 120}


def test_block_lines_follow_nicos_splitting():
    assert block_lines('move(x, 1)') == [1]
    assert block_lines('a = 1\n\nfor i in range(3):\n    b = i\nc = 2\n') == [1, 3, 5]
    assert block_lines('def f(:\n    pass\n') == []


def test_summary_keeps_the_first_real_problem():
    report = {'state': 'failed', 'seconds': None, 'problems': [
        {'kind': 'warning', 'line': None, 'message': 'w'},
        {'kind': 'limit', 'line': 3, 'message': 'too far'}]}
    assert summary_values(report) == ('failed', None, 2, 'too far')
    assert summary_values(None) == (None, None, None, None)


@given(st.dictionaries(st.integers(0, 30), st.floats(0, 1e5), max_size=30),
       st.dictionaries(st.integers(0, 30), st.floats(0, 1e3), max_size=10))
def test_sources_add_up_to_the_total(blocks, replaced):
    functions = {index: [{'command': 'c', 'seconds': min(seconds, blocks[index])}]
                 for index, seconds in replaced.items() if index in blocks}
    facts = DryRunFacts(block_seconds=blocks, function_estimates=functions,
                        end=(sum(blocks.values()), {}))
    report = build_report('\n'.join(f'x{i} = 1' for i in range(31)), facts, 60)
    assert report['state'] == 'ok'
    assert report['seconds'] == pytest.approx(sum(report['sources'].values()),
                                              abs=0.01)
    assert report['seconds'] == pytest.approx(sum(blocks.values()), abs=0.01)
