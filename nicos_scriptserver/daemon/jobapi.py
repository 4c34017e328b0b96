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
    app = getattr(getattr(session, 'daemon_device', None), 'app', None)
    if app is not None:
        app.report_progress(fraction, str(message))


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
