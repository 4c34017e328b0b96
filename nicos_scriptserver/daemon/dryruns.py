"""Dry-runs every job in the background and keeps the reports on the jobs.

`DryRunScheduler` listens to the job queue. A job that is submitted or
whose script is edited gets the report "pending"; worker threads (a
bounded number) dry-run the pending jobs nearest to the front of the queue
first, and store each report on its job (the queue then sends it to
clients as an ``ss_job`` event). Editing, removing or finishing a job
cancels its dry run. Explicit checks of scripts that are not queued
(``ss_dryrun``) go before queued jobs.

With the policy 'hold' (the default) a job starts only once its dry run
has finished, and a job whose dry run found a problem is held back until
a user confirms it, or edits it and its new dry run passes. With 'mark'
jobs never wait; problems are only reported.
"""

import os
import threading
from concurrent.futures import Future
from typing import Any, Callable, Dict, List, Optional, Set, Tuple

from nicos import session
from nicos.core import Readable
from nicos.core.device import DeviceAlias

from nicos_scriptserver.daemon.catalogdev import find_command_catalog
from nicos_scriptserver.daemon.dryrun import DryRunProcess
from nicos_scriptserver.estimates import (FINAL_STATES, blackbox_report,
                                          build_report, not_possible, pending,
                                          running)
from nicos_scriptserver.instance import ENV_COMMANDS
from nicos_scriptserver.queue import (Job, JobKind, JobNotFound, NotEditable,
                                      UnknownAccount)

Validation = Tuple[str, Any, Future]   # script, NICOS user, its report


class DryRunScheduler:
    """Bounded background dry runs of the queue's jobs."""

    def __init__(self, jobs, user_for: Callable[[Job], Any], workers: int,
                 time_limit: float, policy: str, log):
        self.jobs = jobs
        self.user_for = user_for
        self.time_limit = time_limit
        self.policy = policy
        self.log = log
        self._cond = threading.Condition()
        self._wanted: Dict[int, str] = {}   # job id -> script to check
        self._active: Dict[int, Tuple[str, DryRunProcess]] = {}
        self._validations: List[Validation] = []
        self._unchecked: Set[int] = set()
        self._unmarked = False
        self._stopped = False
        for job in [jobs.current()] + jobs.waiting():
            if job is not None and not _final(job):
                self._wanted[job.id] = job.source
        self._unmarked = bool(self._wanted)
        jobs.add_listener(self._on_events)
        self._threads = [threading.Thread(target=self._work, daemon=True,
                                          name=f'dry runs {number + 1}')
                         for number in range(workers)]

    def start(self) -> None:
        """Start the workers (once the daemon's setups are loaded: a dry
        run loads the same ones)."""
        for thread in self._threads:
            if not thread.is_alive() and thread.ident is None:
                thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            for _, process in self._active.values():
                process.cancel()
            self._cond.notify_all()

    def ready(self, job: Job) -> bool:
        """Whether *job* may start now under the policy."""
        return self.policy != 'hold' or job.kind == JobKind.BLACKBOX or \
            job.id in self._unchecked or _final(job)

    def run_unchecked(self, job_id: int) -> None:
        """Let *job_id* start without waiting for its dry run (which still
        runs, for its estimate)."""
        self._unchecked.add(job_id)

    def validate(self, script: str, user) -> Dict[str, Any]:
        """Dry-run a script that is not queued; blocks until the report."""
        future: Future = Future()
        with self._cond:
            self._validations.append((script, user, future))
            self._cond.notify()
        return future.result(self.time_limit + 30)

    # -- listening to the queue (no queue calls here: it may be delivering) --

    def _on_events(self, events: List[tuple]) -> None:
        # Called for every queue change, also between two jobs: the workers
        # are woken only when there is new work for them.
        with self._cond:
            work = False
            for name, data in events:
                if name == 'job_changed':
                    work |= self._job_changed(data)
                elif name == 'queue_changed':
                    for job_id in data.get('removed', ()):
                        self._forget(job_id)
            if work:
                self._cond.notify_all()

    def _job_changed(self, job: dict) -> bool:
        """Note a changed job; True if it needs a dry run now."""
        job_id = job['id']
        if job['state'] not in ('queued', 'skipped', 'running', 'paused'):
            self._forget(job_id)
            return False
        active = self._active.get(job_id)
        if active is not None and active[0] != job['source']:
            active[1].cancel()
        estimate = job['estimate']
        if estimate is None:
            self._unmarked = True
        elif estimate.get('state') in FINAL_STATES or job_id in self._active \
                or job_id in self._wanted:
            return False
        # No estimate, or one that says a dry run is pending or running when
        # none is: a copy (repeat, re-queue) inherits its original's.
        self._wanted[job_id] = job['source']
        return True

    def _forget(self, job_id: int) -> None:
        self._wanted.pop(job_id, None)
        self._unchecked.discard(job_id)
        active = self._active.get(job_id)
        if active is not None:
            active[1].cancel()

    # -- workers --------------------------------------------------------------

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._stopped and not self._validations and \
                        not (set(self._wanted) - set(self._active)) and \
                        not self._unmarked:
                    self._cond.wait()
                if self._stopped:
                    return
                mark, self._unmarked = self._unmarked, False
                validation = self._validations.pop(0) \
                    if self._validations else None
            try:
                if mark:
                    self.jobs.mark_unestimated(pending())
                if validation is not None:
                    self._validate(*validation)
                else:
                    self._run_next()
            except Exception:
                self.log.exception('dry-run worker failed')

    def _next_job(self) -> Optional[Job]:
        """The wanted job that runs soonest (the current one first)."""
        with self._cond:
            candidates = set(self._wanted) - set(self._active)
        if not candidates:
            return None
        current = self.jobs.current()
        ordered = ([current] if current else []) + self.jobs.waiting()
        for job in ordered:
            if job.id in candidates:
                return job
        with self._cond:   # gone from the queue meanwhile
            for job_id in candidates:
                self._wanted.pop(job_id, None)
        return None

    def _run_next(self) -> None:
        job = self._next_job()
        if job is None:
            return
        script = job.source
        report = blackbox_report(script) \
            if job.kind == JobKind.BLACKBOX else None
        if report is None:
            try:
                user = self.user_for(job)
            except UnknownAccount as err:
                report = not_possible(str(err))   # it fails when it starts
        if report is not None:
            with self._cond:
                self._wanted.pop(job.id, None)
            self._store(job.id, script, report)
            return
        process = self._process(script, user)
        with self._cond:
            if self._wanted.get(job.id) != script:
                return   # edited or gone since it was chosen
            del self._wanted[job.id]
            self._active[job.id] = (script, process)
        # The job stays active until its report is stored, so that a change
        # event in between does not ask for a second dry run.
        try:
            if not self._store(job.id, script, running()):
                return
            facts = process.run()
            if process.cancelled:
                return
            report = build_report(script, facts, self.time_limit)
            hold = None
            if self.policy == 'hold' and report['state'] != 'ok':
                hold = 'dry run: ' + _first_problem(report)
            stored = self._store(job.id, script, report, hold,
                                 passed=report['state'] == 'ok')
        finally:
            with self._cond:
                self._active.pop(job.id, None)
        if report['state'] != 'ok':
            self.log.warning('dry run of job %d: %s', job.id,
                             _first_problem(report))
        elif stored and job.held_by_dry_run:
            self.log.info('dry run of job %d passed: it is no longer held '
                          'back', job.id)

    def _validate(self, script: str, user: str, future: Future) -> None:
        try:
            process = self._process(script, user)
            future.set_result(build_report(script, process.run(),
                                           self.time_limit))
        except Exception as err:
            future.set_exception(err)

    def _process(self, script: str, user) -> DryRunProcess:
        env = {}
        catalog = find_command_catalog()
        if catalog is not None:
            env[ENV_COMMANDS] = os.pathsep.join(catalog.dry_run_folders())
        return DryRunProcess(script, list(session.explicit_setups),
                             f'{user.name},{user.level}', device_values(),
                             self.time_limit, env)

    def _store(self, job_id: int, script: str, report: dict,
               hold: Optional[str] = None, passed: bool = False) -> bool:
        try:
            self.jobs.set_estimate(job_id, report, for_source=script,
                                   hold_reason=hold, passed=passed)
            return True
        except (NotEditable, JobNotFound):
            return False   # edited, finished or removed meanwhile


def device_values() -> Dict[str, Any]:
    """Current values of all devices, as cache keys the dry run applies.

    Read from the devices, not the cache: no poller keeps the cache
    current here, and a dry run must start where the instrument is.
    """
    values = {}
    for name, device in list(session.devices.items()):
        if isinstance(device, Readable) and not isinstance(device, DeviceAlias):
            try:
                values[f'{name.lower()}/value'] = device.read(0)
            except Exception:
                pass   # the dry run then uses the device's own default
    return values


def _final(job: Job) -> bool:
    """Whether the job's dry run (or black-box report) is finished."""
    return (job.estimate or {}).get('state') in FINAL_STATES


def _first_problem(report: Dict[str, Any]) -> str:
    for problem in report.get('problems') or ():
        if problem['kind'] != 'warning':
            line = f' (line {problem["line"]})' if problem.get('line') else ''
            return problem['message'] + line
    return report.get('reason') or 'failed'
