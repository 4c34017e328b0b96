"""Timings of the command catalog (prints figures; not a test).

Run: .venv/bin/python bench/bench_catalog.py

Targets: a cold scan of 1,000 command files <= 2 s (it includes making
the JSON text of the catalog); the catalog reply (Catalog.to_json) for
1,000 commands <= 20 ms. For comparison: json.dumps of the whole
to_dict(), which to_json() avoids (each entry is serialised once, when it
changes). Also printed: the reply size, a refresh with nothing changed and
with one file edited (which re-serialises that file's entries only). The files live
in a temporary directory (one command each, like commands/energy.py:
annotated arguments with units and limits, an estimate, pause points).
"""

import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from nicos_scriptserver.catalog import Catalog

FILES = 1000
REPEATS = 50

TEMPLATE = '''"""Commands of group {n}."""

from typing import Literal, Optional

from nicos import session
from nicos.commands.device import maw
from nicos_scriptserver.daemon.jobapi import pause_point, progress

_SCALE = {n}


def _targets(energy):
    return {{'chopper1_speed': energy * _SCALE}}


def set_ei_{n}(energy: float, mode: Literal['fast', 'slow'] = 'fast',
               repeats: int = 1, offset: Optional[float] = None,
               wait: bool = True):
    """Positions the choppers to allow the specified incident energy through.

    Sets the speed of every disk chopper and phases them to the flight
    time of neutrons of that energy from the moderator.

    Args:
        energy [meV] (0.5..100): incident energy to let through.
        mode: how the choppers are phased.
        repeats (>= 1): how often to cycle the choppers.
        offset [deg] (-180..180): extra phase offset,
            added to every chopper.
        wait: wait until all choppers are at speed and in phase.
    """
    for i in range(repeats):
        for name, target in _targets(energy).items():
            maw(name, target)
        progress((i + 1) / repeats)
        pause_point()
    session.log.info('done')


def estimate_set_ei_{n}(energy, mode='fast', repeats=1, offset=None,
                        wait=True):
    """Seconds it takes."""
    return 12.0 * repeats
'''


def ms(seconds):
    return seconds * 1e3


def timed(operation, repeats=REPEATS):
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        operation()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def report(what, value, unit='ms', target=None):
    verdict = ''
    if target is not None:
        verdict = 'target met' if value <= target else 'TARGET MISSED'
        verdict = f'  (target <= {target:g} {unit}: {verdict})'
    print(f'{what:<52} {value:9.2f} {unit}{verdict}')


def main():
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for n in range(FILES):
            (folder / f'group{n:04d}.py').write_text(TEMPLATE.format(n=n))

        cold = []
        for _ in range(3):
            catalog = Catalog([folder])
            start = time.perf_counter()
            changes = catalog.scan()
            cold.append(time.perf_counter() - start)
        assert len(changes.added) == FILES and not catalog.errors
        report(f'cold scan of {FILES} files', min(cold), 's', target=2)

        data = catalog.to_dict()
        text = json.dumps(data)
        report(f'to_dict() of {FILES} commands', ms(timed(catalog.to_dict)))
        report(f'json.dumps(to_dict()) of {FILES} commands (all entries)',
               ms(timed(lambda: json.dumps(catalog.to_dict()))))
        report('to_json(), the reply (made when the catalog changes)',
               ms(timed(catalog.to_json)), target=20)
        report('reply size (json.dumps)', len(text) / 1024, 'KiB')
        report('reply size (to_json, compact)',
               len(catalog.to_json()) / 1024, 'KiB')

        report(f'refresh, nothing changed ({FILES} files)',
               ms(timed(catalog.refresh)))
        edited = folder / 'group0500.py'

        def edit():
            # An edit of the command's body: its entry (hash) changes.
            source = edited.read_text()
            edited.write_text(source.replace("'done'", "'ready'")
                              if "'done'" in source else
                              source.replace("'ready'", "'done'"))
            # A second edit within the clock's resolution keeps the mtime.
            os.utime(edited, ns=(time.time_ns(), time.time_ns()))
            changes = catalog.refresh()
            assert changes.changed == ['set_ei_500'], changes

        report('edit one file + refresh', ms(timed(edit, 20)))

        assert json.loads(catalog.to_json()) == catalog.to_dict()


if __name__ == '__main__':
    main()
