"""Coverage-guided fuzzing (atheris/libFuzzer), bounded for CI.

Each target of test/fuzzing/atheris_targets.py runs a few seconds in a
subprocess (in a temporary directory: corpus and artifacts never land in
the repo) and must exit cleanly without a finding. Every input a run ever
found is kept in test/fuzzing/regressions/<target>/ and replayed here
in-process; test_fuzz_regressions.py checks the same bugs without atheris.
bench/bench_atheris.py runs the targets for minutes.
"""

import os
from pathlib import Path

import pytest

pytest.importorskip('atheris', reason='atheris is not installed (its wheel '
                    'exists for Linux x86_64 only; see requirements.txt)')

from fuzzing.atheris_targets import replay  # noqa: E402 (after the skip)
from fuzzing.run import HERE, TARGET_NAMES, run_target  # noqa: E402

#: Seconds of fuzzing per target (five targets, plus ~2-3 s start-up each,
#: stay under 50 s on a slow two-core machine); ATHERIS_SECONDS changes it.
SECONDS = int(os.environ.get('ATHERIS_SECONDS', 4))
# A fixed seed: a CI failure reproduces with the same command.
SEED = int(os.environ.get('ATHERIS_SEED', 1))

REGRESSIONS = sorted(HERE.glob('regressions/*/*'))


@pytest.mark.timeout(120)
@pytest.mark.parametrize('target', TARGET_NAMES)
def test_target_finds_nothing_in_a_bounded_run(target, tmp_path):
    run = run_target(target, tmp_path, SECONDS, seed=SEED,
                     wall_timeout=SECONDS + 90)
    assert run.executions > 0, run.output[-3000:]
    assert run.ok, (f'{target}: exit {run.returncode}, findings '
                    f'{[p.name for p in run.findings]}\n{run.output[-3000:]}')


def test_every_target_has_a_place_for_its_regressions():
    assert {path.parent.name for path in REGRESSIONS} <= set(TARGET_NAMES)


@pytest.mark.parametrize('path', REGRESSIONS,
                         ids=[f'{p.parent.name}/{p.name}' for p in REGRESSIONS])
def test_found_inputs_replay_cleanly(path: Path):
    replay(path.parent.name, path.read_bytes())
