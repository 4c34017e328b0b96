"""Texts for durations, clock times, estimates and command calls."""

from logging import WARNING, getLevelName
from typing import Any, Optional, Sequence

from nicos_scriptserver.clients import timefmt
from nicos_scriptserver.queue.lifecycle import DryRunState


clock = timefmt.clock
duration = timefmt.duration


def estimate(summary: Optional[dict]) -> str:
    """An estimate report (or its summary) in a table cell."""
    if not summary:
        return ''
    state = DryRunState.of(summary)
    if summary.get('seconds') is not None and state in (
            DryRunState.OK, DryRunState.NOT_POSSIBLE):
        return duration(summary['seconds'])
    if state is None:
        return summary.get('state') or ''
    return _DRY_RUN_TEXTS.get(state, state.value)


_DRY_RUN_TEXTS = {DryRunState.PENDING: 'dry run waiting',
                  DryRunState.RUNNING: 'dry run…',
                  DryRunState.FAILED: 'dry run failed',
                  DryRunState.NOT_POSSIBLE: 'unknown'}


def people(job: dict) -> str:
    """``by alice``, or ``by alice, changed by root`` when someone else
    last changed the job: it runs (or ran) as them."""
    text = f"by {job.get('owner')}"
    changed_by = job.get('changed_by')
    if changed_by and changed_by != job.get('owner'):
        text += f', changed by {changed_by}'
    return text


def number(val: float) -> str:
    """``25`` for 25.0, ``1.5``, ``1e-07``: a float as short as exact."""
    short = f'{val:g}'
    return short if float(short) == val else repr(val)


def value(val: Any, unit: Optional[str] = None) -> str:
    """An argument value as a user would type it, with its unit."""
    if isinstance(val, float):
        text = number(val)
    else:
        text = repr(val) if isinstance(val, str) else str(val)
    return f'{text} {unit}' if unit and val is not None else text


def call(command: str, args: dict, units: Optional[dict] = None) -> str:
    """``set_ei(energy=25 meV, wait=True)``: a call as a readable line."""
    units = units or {}
    inner = ', '.join(f'{name}={value(val, units.get(name))}'
                      for name, val in args.items())
    return f'{command}({inner})'


def reflow(text: str) -> str:
    """Docstring text with its paragraphs' hard line breaks removed."""
    paragraphs = [' '.join(line.strip() for line in part.splitlines())
                  for part in text.strip().split('\n\n')]
    return '\n\n'.join(part for part in paragraphs if part)


def log_line(message: Sequence) -> str:
    """A NICOS log message ``[logger, time, level, text, exc_text, reqid]``
    as NICOS's console writes it: ``T_sample  : moving to 10.00 K``, with
    the level before warnings and errors."""
    logger, level, text = message[0], message[2], message[3]
    # NICOS's own logger is not named; a device's is the device
    name = '' if logger == 'nicos' else f'{logger:<10}: '
    if level >= WARNING:
        return f'{getLevelName(level)}: {name}{text}'
    return name + text
