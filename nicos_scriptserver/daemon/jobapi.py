"""NICOS user commands that instrument commands and job scripts call.

`pause_point` marks where a job may pause; `progress` and `step` report
how far it got, nested by `in_progress_scope` around each instrument
command call. All are cheap no-ops in a dry run, so commands can call
them freely.
"""

import functools

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
    app = _job_app()
    if app is not None:
        app.report_progress(fraction, str(message))


@usercommand
@helparglist('number, total, [message]')
@parallel_safe
def step(number, total, message=''):
    """Report that step *number* of *total* begins, e.g. ``step(3, 10)``.

    The job is then (number - 1) / total done, and the message (default
    "step 3 of 10") says what it does. Progress that the commands called
    in this step report counts within it: ``step(2, 5)`` and then a
    measure() at block 10 of 20 is 30%, "step 2 of 5 · block 10 of 20".
    """
    try:
        number, total = int(number), int(total)
    except (TypeError, ValueError):
        raise UsageError('step needs whole numbers: step(number, total)') from None
    if total < 1 or not 1 <= number <= total:
        raise UsageError(f'step {number} of {total} is not possible: steps '
                         f'are numbered from 1 to the total')
    app = _job_app()
    if app is not None:
        app.report_step(number, total, str(message))


def in_progress_scope(function):
    """*function*, an instrument command, with the progress it reports
    nested in the running job's current step (see `step`)."""
    @functools.wraps(function)
    def scoped(*args, **kwargs):
        app = _job_app()
        if app is None:
            return function(*args, **kwargs)
        app.enter_command()
        try:
            return function(*args, **kwargs)
        finally:
            app.leave_command()
    return scoped


def _job_app():
    """The script server's application, where a job runs for real (None
    in a dry run, or without the daemon device)."""
    if session.mode == SIMULATION:
        return None
    return getattr(getattr(session, 'daemon_device', None), 'app', None)


def _command_catalog():
    from nicos_scriptserver.daemon.catalogdev import find_command_catalog
    device = find_command_catalog()
    if device is None:
        raise UsageError('no command catalog: the instrument setup is not loaded')
    return device.catalog


def _describe_param(param):
    text = f"{param['name']}: {param['type']}"
    details = [param['unit']] if param['unit'] else []
    if param['choices']:
        details.append('one of ' + ', '.join(map(repr, param['choices'])))
    if param['min'] is not None or param['max'] is not None:
        low = '' if param['min'] is None else param['min']
        high = '' if param['max'] is None else param['max']
        details.append(f'{low}..{high}')
    if details:
        text += f" [{', '.join(map(str, details))}]"
    if param['has_default']:
        text += f" = {param['default']!r}"
    return text


@usercommand
@helparglist('[text]')
@parallel_safe
def ListInstrumentCommands(text=''):
    """Lists the instrument's commands: parameters (type, unit, limits,
    default) and what each command does.

    With *text*, only commands whose name or summary contains it, e.g.
    ``ListInstrumentCommands('temperature')``. Problems with command files
    are listed at the end.
    """
    catalog = _command_catalog()
    text = text.lower()
    for entry in catalog.commands:
        if text in entry['name'].lower() or text in entry['summary'].lower():
            params = ', '.join(_describe_param(p) for p in entry['params'])
            session.log.info('%s(%s)\n    %s', entry['name'], params,
                             entry['summary'] or '(no description)')
            for warning in entry['warnings']:
                session.log.warning('    %s', warning)
    for error in catalog.errors:
        where = f"{error['file']}, line {error['line']}" if error.get('line') \
            else error['file']
        session.log.warning('%s: %s', where, error['message'])


@usercommand
@parallel_safe
def InstrumentCommands():
    """Returns the instrument's command catalog as data.

    A dict ``{generation, commands, errors}``; each command has its name,
    summary, description, parameters (type, unit, limits, default, ...),
    source file and flags. See docs/COMMANDS.md in nicos-scriptserver.
    """
    return _command_catalog().to_dict()
