"""Longer coverage-guided fuzzing runs of the atheris targets (prints
figures; not a test).

Run: .venv/bin/python bench/bench_atheris.py [SECONDS-PER-TARGET]   (default
120, so about eleven minutes for the five targets)

Runs each target of test/fuzzing/atheris_targets.py (proxy frames/JSON,
ZMTP streams, command files, job specs, the daemon's new commands
in-process) in a temporary directory and prints per target: executions,
exec/s, libFuzzer's coverage (``cov:`` edges and ``ft:`` features of its
last stats line) and findings. A finding is copied to
bench/results/atheris/ (git-ignored) and makes the exit status non-zero:
add it to test/fuzzing/regressions/<target>/ and fix the bug. CI runs the
same targets for seconds (test/unit/test_fuzz_atheris.py).
"""

import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / 'test'))

from fuzzing.run import TARGET_NAMES, run_target  # noqa: E402

RESULTS = REPO / 'bench' / 'results' / 'atheris'


def main(seconds: int) -> int:
    """Fuzz every target for *seconds*; 1 if anything was found."""
    found = 0
    print(f'{"target":10} {"seconds":>7} {"executions":>11} {"exec/s":>7} '
          f'{"cov":>5} {"ft":>6}  findings')
    with tempfile.TemporaryDirectory(prefix='bench-atheris-') as tmp:
        for target in TARGET_NAMES:
            workdir = Path(tmp) / target
            start = time.monotonic()
            run = run_target(target, workdir, seconds,
                             wall_timeout=seconds * 2 + 120)
            took = time.monotonic() - start
            names = ', '.join(path.name for path in run.findings) or 'none'
            if run.returncode and not run.findings:
                names = f'exit status {run.returncode} (see output below)'
            print(f'{target:10} {run.seconds or round(took):>7} '
                  f'{run.executions:>11} {run.exec_per_s:>7} {run.cov:>5} '
                  f'{run.ft:>6}  {names}', flush=True)
            if not run.ok:
                found += 1
                print(run.output[-4000:])
                RESULTS.mkdir(parents=True, exist_ok=True)
                for path in run.findings:
                    shutil.copy(path, RESULTS / f'{target}-{path.name}')
    print('result:', 'no findings' if not found else
          f'FINDINGS in {found} target(s), inputs in {RESULTS}')
    return 1 if found else 0


if __name__ == '__main__':
    sys.exit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 120))
