"""What the subcommands print, made from the server's replies.

Pure functions of reply data (and the clock), so they are unit-tested
without a server. ``queue`` here is an `ss_queue` reply whose rows were
turned into dicts (`waiting_jobs`), ``timeline`` an `ss_timeline` reply.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from nicos_scriptserver.clients.cli.formatting import NONE, clock, duration, \
    estimate_text, first_line, key_values, percent, progress_bar, table
from nicos_scriptserver.clients.queueview import jobs_of_rows
from nicos_scriptserver.queue import JobState
from nicos_scriptserver.queue.lifecycle import describe


def waiting_jobs(queue: Dict[str, Any]) -> List[Dict[str, Any]]:
    """The waiting rows of an `ss_queue` reply as dicts."""
    return jobs_of_rows(queue['columns'], queue['waiting'])


#: How many of the jobs a safety hold protects `hold_text` names.
SHOWN_PROTECTED = 5


def hold_text(queue: Dict[str, Any]) -> str:
    """``no`` or ``yes (reason)``; a safety hold also names the jobs it
    protects (it ends once none of them is queued)."""
    if not queue.get('held'):
        return 'no'
    reason = queue.get('hold_reason')
    text = f'yes ({reason})' if reason else 'yes'
    protected = queue.get('protected') or []
    if queue.get('hold_kind') == 'safety' and protected:
        shown = ', '.join(map(str, protected[:SHOWN_PROTECTED]))
        more = len(protected) - SHOWN_PROTECTED
        text += (f', protects job{"s" if len(protected) > 1 else ""} {shown}'
                 + (f' and {more} more' if more > 0 else ''))
    return text


def job_label(queue: Dict[str, Any], job_id: int) -> str:
    """``job 5 (T scan)``: the id and, if the job is in *queue*, its name."""
    jobs = waiting_jobs(queue) + [queue.get('current') or {}]
    name = next((job.get('name') for job in jobs if job.get('id') == job_id),
                None)
    return f'job {job_id} ({name})' if name else f'job {job_id}'


def queue_end_text(queue: Dict[str, Any], timeline: Dict[str, Any],
                   now: float) -> str:
    """When the queue should be empty, or why that is not known."""
    if not queue.get('current') and not any(
            runs_in_turn(job) for job in waiting_jobs(queue)):
        return 'nothing to run'
    if timeline.get('held'):
        return 'not while the queue is held'
    if not timeline.get('complete', True) or timeline.get('queue_end') is None:
        unknown = timeline.get('unknown_from')
        if unknown is None:
            return 'unknown (a job has no estimate)'
        return f'unknown: {job_label(queue, unknown)} has no estimate'
    return clock(timeline['queue_end'], now)


def runs_in_turn(job: Dict[str, Any]) -> bool:
    """Whether a waiting job (a row of `waiting_jobs`) will run in its
    turn: queued, and not held back."""
    return JobState(job['state']) is JobState.QUEUED and not job.get('held')


def waiting_text(queue: Dict[str, Any]) -> str:
    """``6 (4 to run, 1 held back, 1 skipped)``: how many jobs wait, and
    how many of them will run in their turn."""
    jobs = waiting_jobs(queue)
    if not jobs:
        return '0'
    runnable = sum(map(runs_in_turn, jobs))
    skipped = sum(JobState(job['state']) is JobState.SKIPPED for job in jobs)
    held = len(jobs) - runnable - skipped
    parts = [f'{runnable} to run']
    if held:
        parts.append(f'{held} held back')
    if skipped:
        parts.append(f'{skipped} skipped')
    return f'{len(jobs)} ({", ".join(parts)})'


def state_text(job: Dict[str, Any]) -> str:
    """The current job's stage, with how long it has been paused."""
    paused = job.get('paused_for')
    if paused is None:
        return describe(job)
    return f'{describe(job)} for {duration(paused)}'


def progress_text(job: Dict[str, Any]) -> str:
    """The progress the job reports or, for a black-box job, the share of
    its estimate that has passed."""
    by_time = job.get('progress_by_time')
    if job.get('progress') is None and by_time is not None:
        return f'{percent(by_time)} of its estimated time'
    return percent(job.get('progress'))


def held_back_text(job: Dict[str, Any]) -> str:
    """``held back because dry run: ...`` for a held-back waiting job."""
    reason = job.get('hold_reason')
    return f'held back because {reason}' if reason else 'held back'


def current_pairs(job: Optional[Dict[str, Any]],
                  times: Optional[Dict[str, Any]], now: float) -> list:
    """The current job as (key, value) pairs."""
    if not job:
        return [('job', 'none running')]
    times = times or {}
    return [
        ('job', f'{job["id"]} {job.get("name") or ""}'.rstrip()),
        ('state', state_text(job)),
        ('progress', progress_text(job)),
        ('message', job.get('progress_message')),
        ('line', job.get('current_line')),
        ('elapsed', duration(times.get('elapsed'))),
        ('expected end', clock(times.get('expected_end'), now)),
    ]


def status_text(queue: Dict[str, Any], timeline: Dict[str, Any],
                now: float) -> str:
    """The `status` subcommand: current job, then the queue's state."""
    held_back = [(f'job {job["id"]}', held_back_text(job))
                 for job in waiting_jobs(queue)
                 if JobState(job['state']) is JobState.QUEUED and job['held']]
    return key_values(
        current_pairs(queue.get('current'), timeline.get('current'), now) + [
            ('queue held', hold_text(queue)),
            ('waiting', waiting_text(queue)),
            *held_back,
            ('queue ends', queue_end_text(queue, timeline, now)),
        ])


def queue_table(queue: Dict[str, Any], timeline: Dict[str, Any],
                now: float) -> str:
    """The `queue` subcommand: one row per waiting job, in running order."""
    jobs = waiting_jobs(queue)
    if not jobs:
        return 'the queue is empty'
    starts = {entry['id']: entry.get('expected_start')
              for entry in timeline.get('jobs', [])}
    rows, notes = [], []
    for index, job in enumerate(jobs):
        state = job['state'] + (' (held back)' if job.get('held') else '')
        rows.append([index, job['id'], job['kind'], job['name'], job['owner'],
                     state, estimate_text(job.get('estimate')),
                     clock(starts.get(job['id']), now)])
        if job.get('held'):
            notes.append(f'job {job["id"]} is {held_back_text(job)}; '
                         f'"confirm {job["id"]}" runs it anyway')
    return '\n'.join([table(['pos', 'id', 'kind', 'name', 'owner', 'state',
                             'estimate', 'expected start'], rows), *notes])


def error_text(error: Optional[Dict[str, Any]]) -> str:
    """A job's error report on one line: ``line 3: ZeroDivisionError: ...``."""
    if not error:
        return ''
    message = first_line(error.get('message'))
    what = f'{error["type"]}: {message}' if error.get('type') else message
    line = error.get('line')
    return f'line {line}: {what}' if line is not None else what


def owner_text(job: Dict[str, Any]) -> str:
    """``alice``, or ``alice (changed by root)`` when someone else last
    changed the job: it runs (or ran) as them."""
    changed_by = job.get('changed_by')
    if changed_by and changed_by != job['owner']:
        return f'{job["owner"]} (changed by {changed_by})'
    return job['owner']


def took_text(job: Dict[str, Any]) -> str:
    """How long a finished job took from start to end, and how much of
    that it was paused: ``12m05s (paused 2m00s)``; NONE if it never ran."""
    started, finished = job.get('started_at'), job.get('finished_at')
    if started is None or finished is None:
        return NONE
    took = duration(max(0.0, finished - started))
    paused = job.get('paused_total') or 0.0
    return f'{took} (paused {duration(paused)})' if paused >= 1 else took


def history_table(jobs: List[Dict[str, Any]], now: float) -> str:
    """The `history` subcommand: finished jobs, last finished first."""
    if not jobs:
        return 'no finished jobs'
    rows = [[job['id'], job['name'], owner_text(job), job['state'],
             clock(job.get('finished_at'), now), took_text(job),
             error_text(job.get('error'))]
            for job in jobs]
    return table(['id', 'name', 'owner', 'outcome', 'finished', 'took',
                  'error'], rows)


def report_lines(report: Optional[Dict[str, Any]]) -> List[str]:
    """A dry-run report (see docs/ESTIMATES.md) as indented lines."""
    if not report:
        return ['  none']
    out = [f'  {report.get("state") or NONE}, estimate '
           f'{duration(report.get("seconds"))}']
    sources = report.get('sources') or {}
    if sources:
        out.append('  from ' + ', '.join(f'{source} {duration(seconds)}'
                                         for source, seconds in
                                         sources.items()))
    for name, moves in (report.get('devices') or {}).items():
        out.append(f'  moves {name} over {moves.get("min")}..'
                   f'{moves.get("max")}, ends at {moves.get("last")}')
    for problem in report.get('problems') or []:
        line = problem.get('line')
        where = f'line {line}: ' if line is not None else ''
        out.append(f'  {problem.get("kind")}: {where}'
                   f'{first_line(problem.get("message"))}')
    return out


def job_text(job: Dict[str, Any], now: float) -> str:
    """The `show` subcommand: one job with its hold reason, times, error
    and dry-run report, then its script."""
    pairs = [
        ('job', f'{job["id"]} {job.get("name") or ""}'.rstrip()),
        ('kind', job['kind']),
        ('owner', owner_text(job)),
        ('state', state_text(job)),
    ]
    if job.get('held'):
        pairs.append(('held back', job.get('hold_reason') or 'yes'))
    if job.get('requeued_from') is not None:
        pairs.append(('re-queued from', f'job {job["requeued_from"]}'))
    pairs += [
        ('queued', clock(job.get('queued_at'), now)),
        ('started', clock(job.get('started_at'), now)),
        ('finished', clock(job.get('finished_at'), now)),
        ('took', took_text(job)),
        ('progress', progress_text(job)),
        ('error', error_text(job.get('error'))),
    ]
    out = [key_values(pairs), 'dry run:', *report_lines(job.get('estimate'))]
    traceback = (job.get('error') or {}).get('traceback')
    if traceback:
        out += ['traceback:', traceback.rstrip('\n')]
    out += ['script:', job.get('source', '').rstrip('\n')]
    return '\n'.join(out)


def audit_table(entries: List[Dict[str, Any]], now: float) -> str:
    """The `audit` subcommand: queue changes, newest first."""
    if not entries:
        return 'no queue changes recorded'
    rows = [[clock(entry['at'], now), entry['who'], entry['client'] or NONE,
             entry['action'], ', '.join(map(str, entry['jobs'])) or NONE,
             entry['why'] or NONE] for entry in entries]
    return table(['when', 'who', 'client', 'action', 'jobs', 'why'], rows)


def limits_text(param: Dict[str, Any]) -> str:
    """``0.5..100``, ``>= 1``, ``< 10`` or '' for an unbounded parameter."""
    low, high = param.get('min'), param.get('max')
    low_in = param.get('min_inclusive', True)
    high_in = param.get('max_inclusive', True)
    if low is not None and high is not None and low_in and high_in:
        return f'{low}..{high}'
    parts = []
    if low is not None:
        parts.append(f'{">=" if low_in else ">"} {low}')
    if high is not None:
        parts.append(f'{"<=" if high_in else "<"} {high}')
    return ', '.join(parts)


def param_text(param: Dict[str, Any]) -> str:
    """``energy: float [meV] (0.5..100)``, ``wait: bool = True``."""
    kind = param.get('type') or 'any'
    if kind == 'list' and param.get('item_type'):
        kind = f'list[{param["item_type"]}]'
    if param.get('nullable'):
        kind += ' | None'
    out = f'{param["name"]}: {kind}'
    if param.get('unit'):
        out += f' [{param["unit"]}]'
    limits = limits_text(param)
    if limits:
        out += f' ({limits})'
    if param.get('choices'):
        out += ' {' + ', '.join(map(repr, param['choices'])) + '}'
    if param.get('has_default'):
        default = param.get('default_source') or repr(param.get('default'))
        out += f' = {default}'
    return out


def catalog_text(catalog: Dict[str, Any]) -> str:
    """The `commands` subcommand: each command, its parameters, its summary."""
    blocks = []
    for entry in catalog.get('commands', []):
        params = ', '.join(param_text(p) for p in entry.get('params', []))
        summary = first_line(entry.get('summary')) or '(no description)'
        blocks.append(f'{entry["name"]}({params})\n    {summary}')
    if not blocks:
        blocks.append('no commands')
    for error in catalog.get('errors', []):
        where = error.get('file') or error.get('path') or NONE
        if error.get('line'):
            where += f':{error["line"]}'
        blocks.append(f'error in {where}: {error.get("message")}')
    return '\n'.join(blocks)


def watch_frame(queue: Dict[str, Any], timeline: Dict[str, Any],
                now: float) -> str:
    """One frame of `watch`: the current job with a bar, then the queue."""
    job = queue.get('current')
    times = timeline.get('current') or {}
    if job:
        head = f'job {job["id"]} {job.get("name") or ""}  [{state_text(job)}]'
        by_time = job.get('progress_by_time')
        if job.get('progress') is None and by_time is not None:
            bar = progress_bar(by_time) + ' of its estimated time'
        else:
            bar = progress_bar(job.get('progress'))
        lines = [head, bar]
        if job.get('progress_message'):
            lines.append(job['progress_message'])
        lines.append(f'elapsed {duration(times.get("elapsed"))}, expected end '
                     f'{clock(times.get("expected_end"), now)}')
    else:
        lines = ['no job running']
    lines.append(f'waiting {len(queue["waiting"])}, held {hold_text(queue)}, '
                 f'queue ends {queue_end_text(queue, timeline, now)}')
    return '\n'.join(lines)
