"""Kill the daemon or the proxy at random moments of a running queue; check
what survives.

One round: a long job runs, a client edits the waiting jobs as fast as it
can (submit, edit, skip, unskip, move, repeat, remove), and at a random
moment the daemon (or the proxy the client goes through) is SIGKILLed.
After the restart, the waiting list must be exactly what the client was
told (every acknowledged change kept, nothing duplicated), give or take
the one request that was in flight; no job id appears twice anywhere. A
killed daemon leaves the job that ran `interrupted` and the queued jobs
held; a killed proxy leaves both alone.

Used by test_crash_restart.py (a few rounds, in CI) and
bench/bench_crash_restart.py (many rounds, figures).
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field
from typing import Callable, List, Optional, Tuple, Union

from nicos_scriptserver.clients.daemonclient import (ScriptServerClient, ServerError,
                                       queue_with_dicts)
from nicos_scriptserver.clients.proxyclient import ProxyClient, ProxyError
from waiting import wait_until  # test/'s helper

#: The daemon's client or the proxy's: both have ``call(command, *args)``.
Client = Union[ScriptServerClient, ProxyClient]

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


def queue(client: Client) -> dict:
    return queue_with_dicts(client.call('ss_queue'))


def listing(client: Client) -> Listing:
    return [(job['id'], job['state'], client.call('ss_job', job['id'])['source'])
            for job in queue(client)['waiting']]


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


def _broken(err: Exception) -> bool:
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
        first = _first_difference(before, after)
        return len(before) == len(after) + 1 and \
            before[:first] + before[first + 1:] == after
    if op == 'move':
        return len(before) == len(after) and _moved_once(before, after)
    # edit, skip, unskip: the same jobs in the same order, one of them changed
    return [job[0] for job in before] == [job[0] for job in after] and \
        sum(b != a for b, a in zip(before, after)) == 1


def _first_difference(before: Listing, after: Listing) -> int:
    return next((i for i, (b, a) in enumerate(zip(before, after)) if b != a),
                min(len(before), len(after)))


def _moved_once(before: Listing, after: Listing) -> bool:
    """Whether *after* (as long as *before*) is *before* with at most one job
    moved. In linear time: over rounds the waiting list grows to thousands
    of jobs, where trying every move took hours."""
    start = _first_difference(before, after)
    end = len(before)
    while end > start and before[end - 1] == after[end - 1]:
        end -= 1
    # Between the two, the moved job is at one end and the rest shifted.
    changed, now = before[start:end], after[start:end]
    return not changed or now == changed[1:] + changed[:1] or \
        now == changed[-1:] + changed[:-1]


def crash_round(client: Client, kill: Callable[[], None],
                restart: Callable[[], Client], rng: random.Random,
                max_delay: float = 0.4, interrupts: bool = True,
                long_job: Optional[dict] = None, ends_as: Optional[str] = None,
                breaks: bool = True) -> Tuple[RoundResult, Client]:
    """One round (see the module docstring); returns the result and the
    client connected again after the restart. *interrupts*: whether the
    kill interrupts the running job (the daemon's does, the proxy's not).
    *long_job* (default: an aware loop) is the job that runs meanwhile,
    *ends_as* the state it must be in after the round (default:
    interrupted or running, after *interrupts*); *breaks*: whether the
    kill breaks the client's connection (the killed process is the one it
    talks to), else the client goes on until the kill is done."""
    result = RoundResult()
    ends_as = ends_as or ('interrupted' if interrupts else 'running')
    # A long job first in line, then let it run (after a restart the queue
    # is held): it is what the kill interrupts, and the short jobs behind
    # it stay waiting.
    current, = client.call('ss_submit', long_job or {'source': LONG_JOB, 'name': 'long'},
                           'top')
    client.call('ss_release')
    wait_until(lambda: (queue(client)['current'] or {}).get('id') == current['id'])
    model = Model(listing(client))
    known = set(model.ids()) | {current['id']}
    serial = [0]
    killer = threading.Timer(rng.uniform(0.0, max_delay), kill)
    killer.start()
    while breaks or killer.is_alive():
        name, request, apply = _operation(rng, model, serial)
        try:
            reply = client.call(*request)
        except (ServerError, ProxyError) as err:
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
    if was_running['state'] != ends_as:
        result.lost.append(f"job {current['id']} is {was_running['state']}, "
                           f'not {ends_as}')
    now = queue(client)
    history = client.call('ss_history', 1000)
    every = [job[0] for job in after] + [job['id'] for job in history] + \
        ([now['current']['id']] if now['current'] else [])
    if len(every) != len(set(every)):
        result.lost.append(f'a job id appears twice: {sorted(every)}')
    # An interrupted job holds the jobs queued then (skipped ones do not
    # run anyway), if there are any.
    held = ends_as != 'running' and any(state == 'queued' for _, state, _ in after)
    if now['held'] != held:
        result.lost.append(f"the queue is {'' if now['held'] else 'not '}held "
                           'after the restart')
    if ends_as == 'running':   # the next round brings its own long job
        client.call('ss_abort')
        wait_until(lambda: client.call('ss_job', current['id'])['state'] == 'aborted')
    return result, client

