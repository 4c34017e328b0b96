"""Counting on the main detector, and scans built on it."""

from typing import Optional

from nicos import session
from nicos.commands.measure import count
from nicos.core import UsageError

from nicos_scriptserver.daemon import jobapi
from nicos_scriptserver.daemon.jobapi import pause_point, progress
from scriptserver_commands.sample import set_temperature

# Counting is split into blocks so a job can pause between them.
_MAX_BLOCKS = 20
_MIN_BLOCK_SECONDS = 1.0


def _counting_time(frames, seconds):
    if (frames is None) == (seconds is None):
        raise UsageError('measure needs either frames or seconds (exactly one)')
    if seconds is not None:
        return float(seconds)
    return frames / session.getDevice('frame_rate').read(0)


def measure(frames: Optional[int] = None, seconds: Optional[float] = None):
    """Counts neutrons on the detector for a number of frames or a time.

    The count is split into up to 20 blocks; the job may pause between
    blocks and reports its progress after each.

    Args:
        frames (>= 1): number of source pulses to count.
        seconds [s] (> 0): counting time, used when frames is not given.
    """
    total = _counting_time(frames, seconds)
    nblocks = max(1, min(_MAX_BLOCKS, int(total // _MIN_BLOCK_SECONDS)))
    for block in range(nblocks):
        count(t=total / nblocks)
        progress((block + 1) / nblocks, f'block {block + 1} of {nblocks}')
        if block + 1 < nblocks:
            pause_point()


def estimate_measure(frames=None, seconds=None):
    """Counting time in seconds (the frame rate is read from the instrument)."""
    return _counting_time(frames, seconds)


def scan_temperature(start: float, stop: float, step: float, frames: int):
    """Measures at a series of temperatures from start to stop.

    At each temperature the sample is brought to temperature and then
    counted for the given number of frames. The job may pause between
    temperatures, and reports each point as a step, within which the
    measurement's own progress counts.

    Args:
        start [K] (1.5..350): first temperature.
        stop [K] (1.5..350): last temperature (included if on the grid).
        step [K] (> 0): temperature step.
        frames (>= 1): frames to count at each temperature.
    """
    if step <= 0:
        raise UsageError('step must be positive')
    direction = 1 if stop >= start else -1
    npoints = int(abs(stop - start) / step + 1e-9) + 1
    for i in range(npoints):
        # Through the module: this command's parameter is called step.
        jobapi.step(i + 1, npoints, f'point {i + 1} of {npoints}')
        set_temperature(start + direction * i * step)
        measure(frames=frames)
        if i + 1 < npoints:
            pause_point()
