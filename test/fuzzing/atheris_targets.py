"""Coverage-guided fuzz targets (atheris/libFuzzer) for what outsiders hand
the server.

Run one target::

    .venv/bin/python test/fuzzing/atheris_targets.py TARGET [libFuzzer args]

(or ``PYTHONPATH=test .venv/bin/python -m fuzzing.atheris_targets ...``).
Targets (`TARGETS`):

- ``proxy``: request frames and their JSON arguments (`parse_request`)
- ``zmtp``: the byte stream of a client connection, in random pieces,
  through the proxy's ZMTP server (`proxy.zmtp`)
- ``catalog``: arbitrary command-file bytes (`parse_file`); the repo's
  commands/ make a good seed corpus
- ``jobs``: job specs, edits and job ids (`app.spec`, `catalog.validate`
  against the repo's catalog)
- ``commands``: sequences of the daemon's new commands with arbitrary
  arguments, in-process through the application over an in-memory queue
  (`fuzzing.queuehandler`; no daemon is started)

Each input goes through an oracle of `fuzzing.oracles`: a refusal of the
documented type is fine; any other exception, or a broken invariant
(``AssertionError``), is a finding: libFuzzer writes the input to
``<artifact_prefix>crash-<sha1>`` and exits non-zero. Replay one with
``atheris_targets.py TARGET crash-file`` or in-process with `replay`.
"""

from __future__ import annotations

import os
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any, Callable, Dict, List

import atheris

if __name__ == '__main__':
    # Run as a script or with -m: make `fuzzing` importable, and instrument
    # our package (only ours: NICOS and the stdlib would swamp the coverage
    # map) before anything imports it.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    with atheris.instrument_imports(include=['nicos_scriptserver']):
        import nicos_scriptserver.app.server  # noqa: F401
        import nicos_scriptserver.catalog  # noqa: F401
        import nicos_scriptserver.daemon.sscommands  # noqa: F401
        import nicos_scriptserver.proxy.protocol  # noqa: F401
        import nicos_scriptserver.proxy.zmtp  # noqa: F401
        import nicos_scriptserver.queue  # noqa: F401

from fuzzing import oracles  # noqa: E402 (after the instrumentation)
from fuzzing.queuehandler import COMMANDS, QueueHandler  # noqa: E402
from nicos_scriptserver.proxy.protocol import WRITER_COMMANDS  # noqa: E402
from nicos_scriptserver.proxy.zmtp import encode_command, encode_metadata, \
    greeting  # noqa: E402

# Words the structured inputs pick from, so that the fuzzer reaches past
# the first "unknown field/command/kind" refusal quickly.
_KEYS = ['kind', 'name', 'source', 'calls', 'command', 'args', 'posargs',
         'held', 'hold_reason', 'energy', 'frames', 'seconds', 'x', '__pickle__']
_WORDS = ['aware', 'generated', 'blackbox', 'set_ei', 'measure', 'top',
          'bottom', 'up', 'down', '*', 'x = 1', 'set_ei(5)', 'pause_point()',
          'return', '', ' ', '\x00', '1', 'done', 'def f(:\n']
_COMMAND_NAMES = sorted(WRITER_COMMANDS) + ['exec', 'eval', 'getbanner']
# Most operations one `commands` input runs (the queue is new each time).
_MAX_OPS = 8
# Values nest at most this deep (deeper is refused by the proxy anyway).
_MAX_DEPTH = 4


def value(fdp: atheris.FuzzedDataProvider, depth: int = 0) -> Any:
    """A JSON-like value (plus what pickle clients could send: inf, NaN,
    tuples) drawn from the fuzzer's bytes."""
    choice = fdp.ConsumeIntInRange(0, 10 if depth < _MAX_DEPTH else 7)
    if choice == 0:
        return None
    if choice == 1:
        return fdp.ConsumeBool()
    if choice == 2:
        return fdp.ConsumeIntInRange(-3, 12)
    if choice == 3:
        return fdp.ConsumeInt(fdp.ConsumeIntInRange(1, 9))
    if choice == 4:
        return fdp.ConsumeFloat()   # also inf, -inf and NaN
    if choice == 5:
        return fdp.ConsumeUnicode(fdp.ConsumeIntInRange(0, 24))
    if choice in (6, 7):
        return fdp.PickValueInList(_WORDS)
    size = fdp.ConsumeIntInRange(0, 4)
    if choice == 8:
        return [value(fdp, depth + 1) for _ in range(size)]
    if choice == 9:
        return tuple(value(fdp, depth + 1) for _ in range(size))
    return {fdp.PickValueInList(_KEYS) if fdp.ConsumeBool() else
            fdp.ConsumeUnicode(6): value(fdp, depth + 1) for _ in range(size)}


def proxy(data: bytes) -> None:
    """Request frames: mostly three (a command, the empty delimiter, JSON
    arguments), sometimes any number of arbitrary ones."""
    fdp = atheris.FuzzedDataProvider(data)
    shape = fdp.ConsumeIntInRange(0, 15)
    if shape == 15:
        # Deep nesting, a classic of JSON parsers, is far beyond what
        # mutating a few hundred bytes reaches: build it.
        opener = fdp.PickValueInList([b'[', b'{"a":', b'[{"b":'])
        payload = opener * fdp.ConsumeIntInRange(0, 3000)
        frames = [b'ss_submit', b'', payload + fdp.ConsumeBytes(64)]
    elif shape == 0:
        frames = [fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 64))
                  for _ in range(fdp.ConsumeIntInRange(0, 5))]
    else:
        command = (fdp.PickValueInList(_COMMAND_NAMES).encode() if shape > 4
                   else fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 24)))
        empty = b'' if shape > 1 else fdp.ConsumeBytes(2)
        frames = [command, empty, fdp.ConsumeBytes(fdp.remaining_bytes())]
    oracles.check_request(frames)


# A client's greeting and READY, so that most inputs reach the framing.
_HELLO = greeting() + encode_command(
    b'READY', encode_metadata({b'Socket-Type': b'REQ'}))
# A small message limit, so that inputs of a few hundred bytes reach it.
_ZMTP_LIMIT = 512


def zmtp(data: bytes) -> None:
    """A client's bytes (mostly after a valid handshake), cut into the
    pieces that reads could return."""
    fdp = atheris.FuzzedDataProvider(data)
    stream = (_HELLO if fdp.ConsumeIntInRange(0, 3) else b'') + \
        fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 4096))
    chunks, start = [], 0
    while start < len(stream):
        end = start + fdp.ConsumeIntInRange(1, 300)
        chunks.append(stream[start:end])
        start = end
    oracles.check_zmtp_stream(chunks, _ZMTP_LIMIT)


_command_fd = None


def catalog(data: bytes) -> None:
    """The fuzzer's bytes as a command file, read like one on disk."""
    global _command_fd
    if _command_fd is None:
        # One scratch file per process, unlinked at once so that nothing is
        # left behind however libFuzzer exits; read back via /proc.
        folder = '/dev/shm' if os.path.isdir('/dev/shm') else None
        _command_fd, path = tempfile.mkstemp(suffix='.py', dir=folder)
        os.unlink(path)
    os.ftruncate(_command_fd, 0)
    os.pwrite(_command_fd, data, 0)
    oracles.check_command_file(f'/proc/self/fd/{_command_fd}', 'fuzz.py')


def jobs(data: bytes) -> None:
    """One value as a job spec, as edits, as queue fields and as a job id,
    checked against the repo's command catalog."""
    fdp = atheris.FuzzedDataProvider(data)
    spec = value(fdp) if fdp.ConsumeIntInRange(0, 7) == 0 else {
        fdp.PickValueInList(_KEYS): value(fdp)
        for _ in range(fdp.ConsumeIntInRange(0, 5))}
    catalog = oracles.repo_catalog()
    oracles.check_job_spec(spec, catalog)
    if isinstance(spec, dict):
        oracles.check_job_edits(spec, catalog)
    oracles.check_queue_fields(spec)
    oracles.check_job_id(spec.get('name') if isinstance(spec, dict) else spec)


def commands(data: bytes) -> None:
    """A sequence of daemon commands with arbitrary arguments, mixed with
    the script thread starting and ending jobs, on a new queue."""
    fdp = atheris.FuzzedDataProvider(data)
    handler = QueueHandler(oracles.repo_catalog())
    try:
        for _ in range(fdp.ConsumeIntInRange(1, _MAX_OPS)):
            op = fdp.ConsumeIntInRange(0, len(COMMANDS) + 1)
            if op == len(COMMANDS):
                handler.run_next()
            elif op == len(COMMANDS) + 1:
                handler.end_current(fdp.PickValueInList(
                    ['done', 'failed', 'aborted']))
            else:
                command = COMMANDS[op]
                args = [value(fdp) for _ in range(fdp.ConsumeIntInRange(0, 3))]
                kind, payload = handler.call(command, args)
                oracles.check_command_reply(command, kind, payload)
    finally:
        handler.close()


#: Target name -> function of one input.
TARGETS: Dict[str, Callable[[bytes], None]] = {
    'proxy': proxy, 'zmtp': zmtp, 'catalog': catalog, 'jobs': jobs,
    'commands': commands}


def replay(target: str, data: bytes) -> None:
    """Run one input through *target* in-process (regression tests)."""
    TARGETS[target](data)


def main(argv: List[str]) -> None:
    """``atheris_targets.py TARGET [libFuzzer args]``: fuzz one target."""
    if len(argv) < 2 or argv[1] not in TARGETS:
        sys.exit(f'usage: {argv[0]} {{{",".join(TARGETS)}}} [libFuzzer args]')
    # compile() warns about odd literals in fuzzed command files; the
    # catalog does not report warnings, and they would flood the output.
    warnings.simplefilter('ignore', SyntaxWarning)
    atheris.Setup([argv[0]] + argv[2:], TARGETS[argv[1]])
    atheris.Fuzz()


if __name__ == '__main__':
    main(sys.argv)
