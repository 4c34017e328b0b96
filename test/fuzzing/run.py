"""Runs an atheris target in a subprocess and reads libFuzzer's figures.

Shared by the bounded CI run (test/unit/test_fuzz_atheris.py) and the long
one (bench/bench_atheris.py). Everything libFuzzer writes (the corpus it
grows, crash-/timeout-/oom- artifacts) goes into the given work directory,
never into the repo.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
TARGETS_SCRIPT = HERE / 'atheris_targets.py'
#: Target names, in the order runs report them.
TARGET_NAMES = ('proxy', 'zmtp', 'catalog', 'jobs', 'commands')
# Seed corpora and dictionaries: real command files for the catalog,
# JSON tokens for the proxy (random bytes rarely make JSON), ZMTP's
# commands and flags for its stream.
SEEDS = {'catalog': [REPO / 'commands']}
DICTS = {'proxy': HERE / 'json.dict', 'zmtp': HERE / 'zmtp.dict'}
# One input running longer than this is a finding (a hang), seconds.
INPUT_TIMEOUT = 10
# What libFuzzer names the inputs it keeps as findings.
ARTIFACT_PREFIXES = ('crash-', 'timeout-', 'oom-', 'leak-', 'slow-unit-')

_STATS = re.compile(r'^#(\d+)\s+\w+\s+cov: (\d+) ft: (\d+).*?exec/s: (\d+)',
                    re.M)
_DONE = re.compile(r'^Done (\d+) runs in (\d+) second', re.M)


@dataclass
class FuzzRun:
    """What one target's run did."""

    target: str
    returncode: int
    executions: int = 0
    exec_per_s: int = 0
    cov: int = 0
    ft: int = 0
    seconds: Optional[int] = None
    findings: List[Path] = field(default_factory=list)
    output: str = ''

    @property
    def ok(self) -> bool:
        """Exited cleanly and left no finding."""
        return self.returncode == 0 and not self.findings


def run_target(target: str, workdir: Path, seconds: int,
               runs: Optional[int] = None, seed: Optional[int] = None,
               wall_timeout: Optional[float] = None) -> FuzzRun:
    """Fuzz *target* for at most *seconds* (and *runs* inputs) in *workdir*.

    The corpus grows in ``workdir/corpus`` (a second run with the same
    workdir continues from it); findings land in *workdir* itself.
    """
    corpus = workdir / 'corpus'
    corpus.mkdir(parents=True, exist_ok=True)
    args = [sys.executable, str(TARGETS_SCRIPT), target,
            f'-max_total_time={seconds}', f'-timeout={INPUT_TIMEOUT}',
            f'-artifact_prefix={workdir}/', '-print_final_stats=1']
    if runs is not None:
        args.append(f'-runs={runs}')
    if seed is not None:
        args.append(f'-seed={seed}')
    if target in DICTS:
        args.append(f'-dict={DICTS[target]}')
    args += [str(corpus)] + [str(path) for path in SEEDS.get(target, [])]
    # The package of this checkout, not one installed elsewhere: the run
    # happens in *workdir*, where the checkout is not on the path.
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        filter(None, [str(REPO), os.environ.get('PYTHONPATH')])))
    out = subprocess.run(args, cwd=workdir, env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True,
                         errors='replace', timeout=wall_timeout)
    result = FuzzRun(target, out.returncode, output=out.stdout)
    stats = _STATS.findall(out.stdout)
    if stats:
        executions, cov, ft, rate = map(int, stats[-1])
        result.executions, result.cov, result.ft = executions, cov, ft
        result.exec_per_s = rate
    done = _DONE.search(out.stdout)
    if done:
        result.executions, result.seconds = int(done[1]), int(done[2])
    result.findings = sorted(path for path in workdir.iterdir()
                             if path.name.startswith(ARTIFACT_PREFIXES))
    return result
