"""When the current job ends and when each waiting job starts and ends.

The prediction is made from the jobs' dry-run estimates, the current
job's active time (time spent paused does not count as progress) and
the progress it reports. Pure: computed from `Job` values and a clock
reading, so clients can recompute it locally between events.

For the current job, with estimate ``E``, active time ``a`` and reported
progress ``f`` (0..1), the remaining time is

- from the estimate alone: ``max(E - a, 0)``,
- from progress alone: ``a * (1 - f) / f`` (the rate so far),
- with both, the two blended by ``f``: early on the estimate counts most,
  near the end the observed rate does.

While a job is paused its remaining time stands still, so its expected
end (and every later start) moves on with the clock. Skipped and held-back
jobs will not run and get no times; neither does anything while the queue
is held. A job without an estimate gets a start but no end, and the jobs
after it get no times at all (``complete`` is then false, and
``unknown_from`` is that job's id, so clients can say which job it is).
With nothing to run (no current job, no waiting job that may run) the
queue has no end: ``queue_end`` is None and ``complete`` true.
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, Optional

from nicos_scriptserver.queue.model import Job, JobKind


def job_seconds(job: Job) -> Optional[float]:
    """The job's estimated duration in seconds, if it has one."""
    estimate = job.estimate or {}
    seconds = estimate.get('seconds')
    return float(seconds) if isinstance(seconds, (int, float)) else None


def remaining_seconds(job: Job, now: float) -> Optional[float]:
    """Expected time until the current *job* ends (see module docstring)."""
    active = job.active_time(now)
    estimate = job_seconds(job)
    by_estimate = None if estimate is None else max(estimate - active, 0.0)
    fraction = job.progress
    by_rate = None
    if fraction is not None and 0.0 < fraction and active > 0.0:
        by_rate = active * (1.0 - min(fraction, 1.0)) / fraction
    if by_estimate is None:
        return by_rate
    if by_rate is None:
        return by_estimate
    return (1.0 - fraction) * by_estimate + fraction * by_rate


def paused_for(job: Job, now: float) -> Optional[float]:
    """How long *job* has been paused, in seconds; None if it is not."""
    if job.paused_since is None:
        return None
    return max(0.0, now - job.paused_since)


def progress_by_time(job: Job, now: float) -> Optional[float]:
    """How far a black-box *job* is by the clock: its running time over
    its estimate, 0..1 (it cannot report progress itself). None for other
    kinds, which report their own, and without an estimate."""
    seconds = job_seconds(job)
    if job.kind is not JobKind.BLACKBOX or not seconds or seconds <= 0:
        return None
    return min(job.active_time(now) / seconds, 1.0)


def current_times(job: Job, now: float) -> Dict[str, Any]:
    """Elapsed (pauses included), active and remaining time of *job*, how
    long it has been paused (`paused_for`) and its `progress_by_time`."""
    remaining = remaining_seconds(job, now)
    return {
        'id': job.id,
        'state': job.state.value,
        'estimate': job_seconds(job),
        'elapsed': job.elapsed(now),
        'active': job.active_time(now),
        'progress': job.progress,
        'remaining': remaining,
        'expected_end': None if remaining is None else now + remaining,
        'paused_for': paused_for(job, now),
        'progress_by_time': progress_by_time(job, now),
    }


def timeline(current: Optional[Job], waiting: Iterable[Job], now: float,
             queue_held: bool = False) -> Dict[str, Any]:
    """Predicted times of the current job and every waiting job."""
    result: Dict[str, Any] = {'now': now, 'held': queue_held,
                              'current': None, 'jobs': [], 'queue_end': None,
                              'unknown_from': None}
    clock: Optional[float] = now
    anything = current is not None
    if current is not None:
        result['current'] = current_times(current, now)
        clock = result['current']['expected_end']
        if clock is None:
            result['unknown_from'] = current.id
    if queue_held:
        clock = None
    complete = clock is not None
    for job in waiting:
        runs = job.runnable
        anything = anything or runs
        start = clock if runs else None
        seconds = job_seconds(job)
        end = None if start is None or seconds is None else start + seconds
        result['jobs'].append({'id': job.id, 'estimate': seconds,
                               'expected_start': start, 'expected_end': end})
        if runs:
            if start is not None and end is None:
                result['unknown_from'] = job.id
            clock = end
            complete = complete and end is not None
    result['queue_end'] = clock if anything else None
    result['complete'] = complete or not anything
    return result


def moves_with_clock(result: Dict[str, Any]) -> bool:
    """Whether the times of a `timeline` *result* move on with the clock
    alone: while the current job is paused (its remaining time stands
    still) or has overrun its estimate (it is expected to end now), every
    later time is now plus a constant, so a client shown them once must
    be sent them again."""
    current = result.get('current')
    return current is not None and (current['state'] == 'paused' or
                                    current['remaining'] == 0.0)
