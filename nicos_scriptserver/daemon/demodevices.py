"""Devices of the demo instrument: NICOS's virtual devices, polled finely.

NICOS's virtual devices poll their state every 0.1 s, and NICOS waits
0.3 s between checks of a device that is still busy. Real hardware takes
as long as it takes, but on the demo, with counts and moves of a second or
two, those waits would add 10-20 % that no dry run can predict. These
subclasses only poll more often (every 10 ms).
"""

from nicos.devices.generic import (Detector, VirtualCounter, VirtualMotor,
                                   VirtualTimer)

_POLL_SECONDS = 0.01


class DemoMotor(VirtualMotor):
    """A virtual motor (moves at `speed` units/s), polled every 10 ms."""

    _base_loop_delay = _POLL_SECONDS


class DemoTimer(VirtualTimer):
    """A virtual counting timer, polled every 10 ms."""

    _base_loop_delay = _POLL_SECONDS


class DemoCounter(VirtualCounter):
    """A virtual counter (monitor or detector events), polled every 10 ms."""

    _base_loop_delay = _POLL_SECONDS


class DemoDetector(Detector):
    """The demo's detector (timer, monitor, events), polled every 10 ms."""

    _base_loop_delay = _POLL_SECONDS
