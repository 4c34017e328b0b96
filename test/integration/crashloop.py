"""Kill the daemon at random moments of a running queue; check what survives.

One round: a long job runs, a client edits the waiting jobs as fast as it
can (submit, edit, skip, unskip, move, repeat, remove), and at a random
moment the daemon is SIGKILLed. After the restart, the waiting list must be
exactly what the client was told (every acknowledged change kept, nothing
duplicated), give or take the one request that was in flight; the job
that ran is `interrupted`; no job id appears twice anywhere.

Used by test_crash_restart.py (a few rounds, in CI) and
bench/bench_crash_restart.py (many rounds, figures).
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

from nicos_scriptserver.client import ScriptServerClient, ServerError

LONG_JOB = ('for i in range(100000):\n'
            '    pause_point()\n'
            '    sleep(0.01)\n')

#: (id, state, source) of each waiting job, in order.
Listing = List[Tuple[int, str, str]]


@dataclass
class RoundResult:
    ops_acknowledged: int = 0
    in_flight: Optional[str] = None
    lost: List[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.lost


def listing(client: ScriptServerClient) -> Listing:
    return [(job['id'], job['state'], client.call('ss_job', job['id'])['source'])
            for job in client.queue()['waiting']]


class Model:
    """What the client has been told the waiting list is."""

    def __init__(self, waiting: Listing):
        self.jobs = [list(job) for job in waiting]

    def ids(self) -> List[int]:
        return [job[0] for job in self.jobs]

    def find(self, job_id: int) -> List:
        return next(job for job in self.jobs if job[0] == job_id)

    def listing(self) -> Listing:
        return [tuple(job) for job in self.jobs]


def _operation(rng: random.Random, model: Model, serial: List[int]):
    """(name, request args, how to apply the reply to the model)."""
    ids = model.ids()
    serial[0] += 1
    text = f'sleep(0.01)  # {serial[0]}'
    choices = ['submit'] * 3 + (['edit', 'skip', 'unskip', 'move', 'repeat',
                                 'remove'] if ids else [])
    name = rng.choice(choices)
    if name == 'submit':
        def apply(reply):
            model.jobs.append([reply[0]['id'], reply[0]['state'], text])
        return name, ('ss_submit', {'source': text}), apply
    job_id = rng.choice(ids)
    if name == 'edit':
        return name, ('ss_edit', job_id, {'source': text}), \
            lambda _: model.find(job_id).__setitem__(2, text)
    if name in ('skip', 'unskip'):
        state = 'skipped' if name == 'skip' else 'queued'
        return name, (f'ss_{name}', job_id), \
            lambda _: model.find(job_id).__setitem__(1, state)
    if name == 'move':
        where = rng.choice(['top', 'bottom', 'up', 'down'])

        def apply(_):
            job = model.find(job_id)
            index = model.jobs.index(job)
            model.jobs.remove(job)
            target = {'top': 0, 'bottom': len(model.jobs),
                      'up': max(index - 1, 0),
                      'down': min(index + 1, len(model.jobs))}[where]
            model.jobs.insert(target, job)
        return name, ('ss_move', job_id, where), apply
    if name == 'repeat':
        def apply(reply):
            job = model.find(job_id)
            index = model.jobs.index(job)
            copy = [reply[0]['id'], reply[0]['state'], reply[0]['source']]
            model.jobs.insert(index + 1, copy)
        return name, ('ss_repeat', job_id, 1), apply
    return name, ('ss_remove', job_id), lambda _: model.jobs.remove(model.find(job_id))


def _broken(err: ServerError) -> bool:
    """A broken connection, not a refusal (refusals name their command)."""
    return not str(err).startswith('ss_')


def _one_change_away(before: Listing, after: Listing, op: str,
                     known: set) -> bool:
    """Whether *after* is *before* with the unacknowledged request *op*
    stored: the request may or may not have reached the disk, but it
    changes exactly what that one request changes."""
    if op in ('submit', 'repeat'):
        new = [job for job in after if job[0] not in known]
        return len(new) == 1 and [job for job in after if job[0] in known] == before
    if op == 'remove':
        return any(before[:i] + before[i + 1:] == after for i in range(len(before)))
    if op == 'move':
        return any(_moved(before, i, k) == after
                   for i in range(len(before)) for k in range(len(before)))
    # edit, skip, unskip: the same jobs in the same order, one of them changed
    return [job[0] for job in before] == [job[0] for job in after] and \
        sum(b != a for b, a in zip(before, after)) == 1


def _moved(jobs: Listing, source: int, target: int) -> Listing:
    rest = jobs[:source] + jobs[source + 1:]
    return rest[:target] + [jobs[source]] + rest[target:]


def crash_round(client: ScriptServerClient, kill: Callable[[], None],
                restart: Callable[[], ScriptServerClient], rng: random.Random,
                max_delay: float = 0.4) -> Tuple[RoundResult, ScriptServerClient]:
    """One round (see the module docstring); returns the result and the
    client connected to the restarted daemon."""
    result = RoundResult()
    # A long job first in line, then let it run (after a restart the queue
    # is held): it is what the kill interrupts, and the short jobs behind
    # it stay waiting.
    current, = client.call('ss_submit', {'source': LONG_JOB, 'name': 'long'},
                           'top')
    client.call('ss_release')
    deadline = time.monotonic() + 30
    while (client.queue()['current'] or {}).get('id') != current['id']:
        assert time.monotonic() < deadline, 'the long job did not start'
        time.sleep(0.02)
    model = Model(listing(client))
    known = set(model.ids()) | {current['id']}
    serial = [0]
    killer = threading.Timer(rng.uniform(0.0, max_delay), kill)
    killer.start()
    while True:
        name, request, apply = _operation(rng, model, serial)
        try:
            reply = client.call(*request)
        except ServerError as err:
            if _broken(err):
                result.in_flight = name
                break
            continue  # refused: nothing changed
        apply(reply)
        known.update(model.ids())
        result.ops_acknowledged += 1
    killer.join()
    client = restart()
    after = listing(client)
    expected = model.listing()
    if after != expected and not (
            result.in_flight and _one_change_away(expected, after,
                                                  result.in_flight, known)):
        result.lost.append(f'waiting list differs after {result.in_flight!r} in '
                           f'flight:\n  told  {expected}\n  found {after}')
    was_running = client.call('ss_job', current['id'])
    if was_running['state'] != 'interrupted':
        result.lost.append(f"job {current['id']} is {was_running['state']}, "
                           'not interrupted')
    queue = client.queue()
    history = client.call('ss_history', 1000)
    every = [job[0] for job in after] + [job['id'] for job in history] + \
        ([queue['current']['id']] if queue['current'] else [])
    if len(every) != len(set(every)):
        result.lost.append(f'a job id appears twice: {sorted(every)}')
    if not queue['held']:
        result.lost.append('the queue was not held after the restart')
    return result, client
