"""Longer fuzzing runs of the CI properties (prints figures; not a test).

Run: .venv/bin/python bench/bench_fuzz.py [EXAMPLES]   (default 20000 per
pure property and a tenth of that against the daemon; minutes)

Runs test/unit/test_fuzz_inputs.py (proxy frames and arguments, command
files, job specs) and test/integration/test_fuzz_daemon.py (the daemon's
new commands with random arguments) with many more examples than CI, and
prints how many ran, how long it took and what failed. A failure prints
hypothesis's minimal example: make it a regression test.
"""

import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def main(examples: int) -> int:
    env = dict(os.environ, FUZZ_EXAMPLES=str(examples),
               FUZZ_DAEMON_EXAMPLES=str(max(examples // 10, 100)))
    start = time.monotonic()
    out = subprocess.run(
        [sys.executable, '-m', 'pytest', '-q', '-p', 'no:randomly',
         '--hypothesis-show-statistics', '-o', 'timeout=0',
         'test/unit/test_fuzz_inputs.py', 'test/integration/test_fuzz_daemon.py'],
        cwd=REPO, env=env, capture_output=True, text=True)
    took = time.monotonic() - start
    print(out.stdout[-4000:])
    print(f'examples asked per property: {examples} (daemon: {env["FUZZ_DAEMON_EXAMPLES"]})')
    print(f'wall time: {took:.0f} s; result: '
          f'{"no failures" if out.returncode == 0 else "FAILURES (see above)"}')
    return out.returncode


if __name__ == '__main__':
    sys.exit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 20000))
