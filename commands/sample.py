"""Sample environment: temperature and sample position."""

from nicos.commands.device import maw, move, wait


def set_temperature(kelvin: float, wait_for_temperature: bool = True):
    """Sets the sample temperature, ramping at the controller's rate.

    Args:
        kelvin [K] (1.5..350): the new temperature setpoint.
        wait_for_temperature: wait until the sample has reached it.
    """
    if wait_for_temperature:
        maw('T_sample', kelvin)
    else:
        move('T_sample', kelvin)


def move_sample(x: float, theta: float):
    """Moves the sample stage to a position and rotation, both at once.

    Args:
        x [mm] (-50..50): translation across the beam.
        theta [deg] (-180..180): rotation about the vertical axis.
    """
    move('sample_x', x, 'sample_theta', theta)
    wait('sample_x', 'sample_theta')
