"""NICOS user commands that instrument commands and job scripts call.

`pause_point` marks where a job may pause; `progress` reports how far it
got. Both are cheap no-ops in a dry run, so commands can call them freely.
"""

from nicos import session
from nicos.core import SIMULATION, UsageError
from nicos.commands import helparglist, parallel_safe, usercommand
from nicos.protocols.daemon import BREAK_AFTER_STEP


@usercommand
@helparglist('')
def pause_point():
    """Mark a point where the running job may pause.

    If a user asked the server to pause the job, it stops here and waits
    until it is resumed or aborted. Devices moved by hand while paused stay
    where they were put. Put one between the steps of a measurement, e.g.
    between frames or scan points.
    """
    session.breakpoint(BREAK_AFTER_STEP)


@usercommand
@helparglist('fraction, [message]')
@parallel_safe
def progress(fraction, message=''):
    """Report how far the running job is, as a fraction from 0 to 1.

    The optional message says what is being done, e.g. "frame 3 of 10".
    Clients show both next to the job; outside a job this does nothing.
    """
    try:
        fraction = float(fraction)
    except (TypeError, ValueError):
        raise UsageError(f'progress fraction must be a number, not {fraction!r}') from None
    if not 0.0 <= fraction <= 1.0:
        raise UsageError(f'progress fraction must be between 0 and 1, not {fraction}')
    if session.mode == SIMULATION:
        return
    daemon = getattr(session, 'daemon_device', None)
    if daemon is not None:
        daemon.report_progress(fraction, str(message))


@usercommand
@helparglist('number, total, [message]')
@parallel_safe
def step(number, total, message=''):
    """Report that step *number* of *total* is done, e.g. ``step(3, 10)``.

    Shorthand for ``progress(number / total, "step 3 of 10")`` for jobs made
    of numbered steps, such as those from a script generator.
    """
    try:
        number, total = int(number), int(total)
    except (TypeError, ValueError):
        raise UsageError('step needs whole numbers: step(number, total)') from None
    if total < 1 or not 0 <= number <= total:
        raise UsageError(f'step {number} of {total} is not possible')
    progress(number / total, message or f'step {number} of {total}')
