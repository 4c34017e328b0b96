"""What a dry run found, as the JSON-ready report stored on a job.

A dry run (NICOS's simulation mode, run by the daemon adapter) yields raw
facts: simulated seconds per top-level block of the script, figures that
commands' estimate functions gave, log records, the devices it touched
and how it ended. `build_report` turns them into the report clients see::

    {'state': 'ok' | 'failed' | 'pending' | 'running' | 'not possible',
     'seconds': total estimate or None,
     'sources': {'dry run': s, 'estimate function': s, 'declared': s},
     'lines': [{'line': n, 'seconds': s, 'source': ...}, ...],
     'devices': {name: {'min': ..., 'max': ..., 'last': ...}},
     'problems': [{'kind': 'limit' | 'error' | 'timeout' | 'crash' |
                   'warning', 'line': n or None, 'message': text}],
     'reason': why there is no estimate ('not possible' only),
     'wall_seconds': how long the dry run took}

Pure: no NICOS import, so it is unit-tested on plain data.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from nicos_scriptserver.queue.lifecycle import DryRunState

# Reports carry the states as plain text (they go to clients as data).
PENDING, RUNNING = DryRunState.PENDING.value, DryRunState.RUNNING.value
OK, FAILED = DryRunState.OK.value, DryRunState.FAILED.value
NOT_POSSIBLE = DryRunState.NOT_POSSIBLE.value

SOURCE_DRY_RUN = 'dry run'
SOURCE_FUNCTION = 'estimate function'
SOURCE_DECLARED = 'declared'

# Python logging levels, as NICOS's log records carry them.
WARNING, ERROR = 30, 40

_SCRIPT_LINE = re.compile(r'File "<script>", line (\d+)')
# "# estimate: 90 s", "# estimate: 2.5 min", "# estimate: 1 h"
_DECLARED = re.compile(
    r'^\s*#\s*estimate\s*:\s*([0-9]+(?:\.[0-9]+)?)\s*'
    r'(s|sec|seconds?|min|minutes?|h|hours?)?\s*$', re.IGNORECASE)
_UNIT_SECONDS = {'s': 1, 'sec': 1, 'second': 1, 'seconds': 1, 'min': 60,
                 'minute': 60, 'minutes': 60, 'h': 3600, 'hour': 3600,
                 'hours': 3600}
#: Lines of a black-box script searched for a declared estimate.
DECLARATION_LINES = 30


@dataclass
class DryRunFacts:
    """What one dry run produced, as it came from the simulation process.

    ``block_seconds`` maps a block index to its simulated duration;
    ``function_estimates`` holds, per block index, the figures that estimate
    functions replaced (dicts with ``command``, ``seconds``); ``records``
    are log records ``(levelno, text, exc_text)``; ``end`` is
    ``(stoptime, devinfo)`` from the simulation's final message, with
    ``stoptime == -1`` when the script raised; ``over_limit`` is the
    wall-time limit of a bridged job's dry run that cut it off.
    """

    block_seconds: Dict[int, float] = field(default_factory=dict)
    function_estimates: Dict[int, List[dict]] = field(default_factory=dict)
    records: List[Tuple[int, str, str]] = field(default_factory=list)
    end: Optional[Tuple[float, Dict[str, Any]]] = None
    exit_code: Optional[int] = None
    timed_out: bool = False
    # A bridged dry run cut off at its own limit (seconds): not possible.
    over_limit: Optional[float] = None
    wall_seconds: float = 0.0


def pending() -> Dict[str, Any]:
    """The report of a job whose dry run has not started yet."""
    return {'state': PENDING, 'seconds': None}


def running() -> Dict[str, Any]:
    """The report of a job whose dry run is under way."""
    return {'state': RUNNING, 'seconds': None}


def not_possible(reason: str, seconds: Optional[float] = None,
                 source: Optional[str] = None) -> Dict[str, Any]:
    """A job that gets no dry run, perhaps with a figure from elsewhere."""
    report = {'state': NOT_POSSIBLE, 'seconds': seconds, 'reason': reason}
    if seconds is not None:
        report['sources'] = {source: seconds}
    return report


def declared_estimate(script: str) -> Optional[float]:
    """Seconds declared by a ``# estimate: <n> [s|min|h]`` comment line
    near the top of a script (how a black-box job gives its estimate)."""
    for line in script.splitlines()[:DECLARATION_LINES]:
        match = _DECLARED.match(line)
        if match:
            unit = (match.group(2) or 's').lower()
            return float(match.group(1)) * _UNIT_SECONDS[unit]
    return None


def _declared_not_possible(script: str, reason: str) -> Dict[str, Any]:
    seconds = declared_estimate(script)
    if seconds is None:
        return not_possible(f'{reason}; declare an estimate with a '
                            '"# estimate: 10 min" line')
    return not_possible(reason, seconds, SOURCE_DECLARED)


def with_declared(report: Dict[str, Any], script: str) -> Dict[str, Any]:
    """A black-box job's passed dry run with its ``# estimate:`` line, if
    it has one, as its estimate (the author knows what the dry run cannot
    see: waiting on something outside the instrument)."""
    seconds = declared_estimate(script)
    if report['state'] != OK or seconds is None:
        return report
    return dict(report, seconds=seconds, sources={SOURCE_DECLARED: seconds})


def block_lines(script: str) -> List[int]:
    """First line of each top-level block, as NICOS splits a script.

    NICOS runs a one-line script as one block and otherwise one block per
    top-level statement. A script that does not parse has none.
    """
    if '\n' not in script.strip('\n') and script.strip():
        return [1]
    try:
        return [node.lineno for node in ast.parse(script + '\n').body]
    except SyntaxError:
        return []


def build_report(script: str, facts: DryRunFacts, time_limit: float
                 ) -> Dict[str, Any]:
    """The report of a finished (or cut off) dry run of *script*."""
    if facts.over_limit is not None:
        return dict(_declared_not_possible(
            script, f'the dry run took longer than {facts.over_limit:g} s'),
            wall_seconds=round(facts.wall_seconds, 3))
    lines = block_lines(script)
    problems = _problems(facts, time_limit)
    failed = facts.end is None or facts.end[0] < 0 or \
        any(p['kind'] != 'warning' for p in problems)
    per_line, sources = _timings(facts, lines)
    report: Dict[str, Any] = {
        'state': FAILED if failed else OK,
        'seconds': None if failed else round(sum(sources.values()), 3),
        'sources': sources,
        'lines': per_line,
        'devices': _devices(facts.end[1] if facts.end else {}),
        'problems': problems,
        'wall_seconds': round(facts.wall_seconds, 3),
    }
    return report


def _timings(facts: DryRunFacts, lines: List[int]
             ) -> Tuple[List[dict], Dict[str, float]]:
    per_line, sources = [], {}
    for index, seconds in sorted(facts.block_seconds.items()):
        line = lines[index] if index < len(lines) else None
        replaced = facts.function_estimates.get(index, [])
        by_function = sum(item['seconds'] for item in replaced)
        by_dry_run = max(0.0, seconds - by_function)
        entry = {'line': line, 'seconds': round(seconds, 3),
                 'source': SOURCE_DRY_RUN}
        if replaced:
            names = sorted({item['command'] for item in replaced})
            entry['source'] = (SOURCE_FUNCTION if by_dry_run < 1e-9 else
                               f'{SOURCE_DRY_RUN} + {SOURCE_FUNCTION}')
            entry['functions'] = [f'estimate_{name}' for name in names]
            sources[SOURCE_FUNCTION] = sources.get(SOURCE_FUNCTION, 0.0) \
                + by_function
        sources[SOURCE_DRY_RUN] = sources.get(SOURCE_DRY_RUN, 0.0) + by_dry_run
        per_line.append(entry)
    return per_line, {name: round(value, 3) for name, value in sources.items()}


def _problems(facts: DryRunFacts, time_limit: float) -> List[dict]:
    problems = []
    for levelno, text, exc_text in facts.records:
        if levelno < WARNING:
            continue
        if levelno < ERROR:
            problems.append({'kind': 'warning', 'line': None,
                             'message': text.strip()})
            continue
        message, error_type = _exception_message(exc_text)
        problems.append({
            'kind': 'limit' if error_type == 'LimitError' else 'error',
            'line': _script_line(exc_text),
            'message': message or text.strip(),
        })
    if facts.timed_out:
        problems.append({'kind': 'timeout', 'line': None, 'message':
                         f'the dry run did not finish within the limit of '
                         f'{time_limit:g} s and was cut off (an endless '
                         f'loop, or a script too long to check)'})
    elif facts.end is None:
        problems.append({'kind': 'crash', 'line': None, 'message':
                         f'the dry-run process ended without a result '
                         f'(exit status {facts.exit_code})'})
    return problems


def _exception_message(exc_text: str) -> Tuple[str, str]:
    """The last line of a formatted traceback, and the exception's type."""
    lines = [line for line in (exc_text or '').strip().splitlines() if line]
    if not lines:
        return '', ''
    last = lines[-1].strip()
    name, _, rest = last.partition(':')
    error_type = name.rsplit('.', 1)[-1].strip()
    return (f'{error_type}:{rest}' if rest else last), error_type


def _script_line(exc_text: str) -> Optional[int]:
    found = _SCRIPT_LINE.findall(exc_text or '')
    return int(found[-1]) if found else None


def _devices(devinfo: Dict[str, Any]) -> Dict[str, dict]:
    devices = {}
    for name, info in sorted(devinfo.items()):
        try:
            last, low, high = info[0], info[1], info[2]
        except (TypeError, IndexError, KeyError):
            continue
        devices[name] = {'min': low, 'max': high, 'last': last}
    return devices


def summary_values(report: Optional[Dict[str, Any]]) -> Tuple[Any, ...]:
    """The few fields a queue listing shows (full report: ``ss_job``):
    state, seconds, number of problems and the first one that is not a
    warning; all None without a report. Plain values, not a dict: 5,000
    small dicts were half the time a listing took to pickle and unpickle."""
    if not report:
        return (None, None, None, None)
    problems = report.get('problems') or []
    first = next((p for p in problems if p['kind'] != 'warning'), None)
    return (report.get('state'), report.get('seconds'), len(problems),
            first['message'] if first else None)
