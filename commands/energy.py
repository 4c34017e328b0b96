"""Incident-energy selection with the disk choppers."""

import math

from nicos import session
from nicos.commands.device import move, wait

# Neutron speed in m/s for an energy in meV: v = sqrt(2 E / m_n).
_SPEED_PER_SQRT_MEV = 437.393
# name of the chopper device prefix: distance from the moderator in metres
_CHOPPERS = {'chopper1': 7.0, 'chopper2': 8.5, 'chopper3': 10.0}


def _chopper_settings(energy):
    """Return {device name: target} for an incident energy in meV."""
    velocity = _SPEED_PER_SQRT_MEV * math.sqrt(energy)
    frequency = min(600.0, max(50.0, round(40 * math.sqrt(energy))))
    targets = {}
    for chopper, distance in _CHOPPERS.items():
        flight_time = distance / velocity
        targets[chopper + '_speed'] = frequency
        targets[chopper + '_phase'] = round((360.0 * frequency * flight_time) % 360.0, 2)
    return targets


def set_ei(energy: float, wait_for_choppers: bool = True):
    """Positions the choppers to allow the specified incident energy through.

    Sets the speed of every disk chopper and phases them to the flight time
    of neutrons of that energy from the moderator.

    Args:
        energy [meV] (0.5..100): incident energy to let through.
        wait_for_choppers: wait until all choppers are at speed and in phase.
    """
    targets = _chopper_settings(energy)
    for name, target in targets.items():
        move(name, target)
    if wait_for_choppers:
        wait(*targets)
    session.log.info('choppers set for Ei = %.3f meV', energy)


def get_ei() -> float:
    """Returns the incident energy the choppers are currently set for, in meV.

    Derived from the speed of the first chopper, as set by `set_ei`.
    """
    frequency = session.getDevice('chopper1_speed').read(0)
    return (frequency / 40.0) ** 2
