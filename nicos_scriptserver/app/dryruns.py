"""Dry-runs every job in the background and keeps the reports on the jobs.

`DryRuns` listens to the job queue. A job without a verdict of its dry
run (`lifecycle.DryRunState`: none yet, or pending, or running with no
dry run under way, as a copy inherits it) is dry-run by one of a bounded
number of worker threads, those nearest to the front of the queue first
(the current job first). A job without a report is marked "pending" at
once; the report goes on the job (the queue then sends it to clients as
an ``ss_job`` event). Editing, removing or finishing a job cancels its
dry run. Explicit checks of scripts that are not queued (``ss_dryrun``)
go before queued jobs. The dry runs themselves are the `DryRunner`'s;
black-box and isolated jobs are dry-run as they run, through the bridge
(`bridged_kind`).

With the policy 'hold' (the default) a job starts only once its dry run
has given its verdict (`ready`), and a job whose dry run found a problem
is held back until a user confirms it, or edits it and its new dry run
passes. A "not possible" report (a bridged dry run over its own limit)
holds nothing back. With 'mark' jobs never wait; problems are only
reported.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Set, Tuple

from nicos_scriptserver.app.ports import (BRIDGED_KINDS, DryRun, DryRunner,
                                          LevelOf)
from nicos_scriptserver.estimates import (DryRunFacts, build_report,
                                          not_possible, pending, running,
                                          with_declared)
from nicos_scriptserver.queue import (Caller, Job, JobKind, JobNotFound,
                                      JobQueue, JobState, NotEditable,
                                      UnknownAccount, runs_as)
from nicos_scriptserver.queue.change import JOB_CHANGED, QUEUE_CHANGED
from nicos_scriptserver.queue.lifecycle import (DryRunState, dry_run_done,
                                                waits_for_dry_run)

# A script, its user, how it is bridged (if it is), its report.
Check = Tuple[str, Caller, Optional[str], Future]


@dataclass(frozen=True)
class DryRunSettings:
    """How jobs are dry-run: the *policy* ('hold': jobs wait for their dry
    run; 'mark': problems are only reported), how many dry runs may run
    at once, and after how many wall seconds one is cut off."""

    policy: str = 'hold'
    workers: int = 1
    time_limit: float = 60.0


class DryRuns:
    """Bounded background dry runs of the queue's jobs, made by *runner*
    as the accounts *level_of* knows; *log* is the daemon's."""

    def __init__(self, queue: JobQueue, runner: DryRunner, level_of: LevelOf,
                 settings: DryRunSettings, log: logging.Logger):
        self.queue = queue
        self.runner = runner
        self.level_of = level_of
        self.settings = settings
        self.log = log
        self._cond = threading.Condition()
        # The dry runs under way: job id -> the script and its dry run.
        self._active: Dict[int, Tuple[str, DryRun]] = {}
        self._checks: List[Check] = []
        # Jobs that start without waiting for their dry run.
        self._unchecked: Set[int] = set()
        # A job may need a dry run (look), or a "pending" mark (mark).
        self._look = self._mark = True
        self._stopped = False
        queue.add_listener(self._on_events)
        self._threads = [threading.Thread(target=self._work, daemon=True,
                                          name=f'dry runs {number + 1}')
                         for number in range(settings.workers)]

    def start(self) -> None:
        """Start the workers (once the daemon's setups are loaded: a dry
        run loads the same ones)."""
        for thread in self._threads:
            if not thread.is_alive() and thread.ident is None:
                thread.start()

    def stop(self) -> None:
        """End every dry run and the workers."""
        with self._cond:
            self._stopped = True
            for _, dry_run in self._active.values():
                dry_run.cancel()
            self._cond.notify_all()

    def ready(self, job: Job) -> bool:
        """Whether *job* may start now under the policy."""
        return self.settings.policy != 'hold' or \
            job.id in self._unchecked or not waits_for_dry_run(job)

    def run_unchecked(self, job_id: int) -> None:
        """Let *job_id* start without waiting for its dry run (which still
        runs, for its estimate)."""
        self._unchecked.add(job_id)

    def check(self, script: str, user: Caller,
              bridged: Optional[str] = None) -> Dict[str, Any]:
        """Dry-run a script that is not queued (*bridged*: as that kind of
        bridged job); blocks until the report."""
        future: Future = Future()
        with self._cond:
            self._checks.append((script, user, bridged, future))
            self._cond.notify()
        return future.result(self.settings.time_limit + 30)

    # -- listening to the queue (no queue calls here: it may be delivering) --

    def _on_events(self, events: List[tuple]) -> None:
        # Called for every queue change, also between two jobs: the workers
        # are woken only when there is new work for them.
        with self._cond:
            work = False
            for name, data in events:
                if name == JOB_CHANGED:
                    work |= self._job_changed(data)
                elif name == QUEUE_CHANGED:
                    for job_id in data['removed']:
                        self._forget(job_id)
            if work:
                self._cond.notify_all()

    def _job_changed(self, job: Dict[str, Any]) -> bool:
        """Follow a changed job; True if it may need a dry run now."""
        job_id, state = job['id'], JobState(job['state'])
        if state.finished:
            self._forget(job_id)
            return False
        active = self._active.get(job_id)
        if active is not None:
            if active[0] == job['source']:
                return False   # its dry run is under way
            active[1].cancel()   # edited: that dry run no longer applies
        verdict = DryRunState.of(job['estimate'])
        if verdict is not None and verdict.final:
            return False
        self._mark |= job['estimate'] is None
        self._look = True
        return True

    def _forget(self, job_id: int) -> None:
        self._unchecked.discard(job_id)
        active = self._active.get(job_id)
        if active is not None:
            active[1].cancel()

    # -- workers --------------------------------------------------------------

    def _work(self) -> None:
        while True:
            with self._cond:
                while not (self._stopped or self._checks or self._look or
                           self._mark):
                    self._cond.wait()
                if self._stopped:
                    return
                mark, self._mark = self._mark, False
                check = self._checks.pop(0) if self._checks else None
                look = self._look and check is None
                if look:
                    self._look = False
            try:
                if mark:
                    self.queue.mark_unestimated(pending())
                if check is not None:
                    self._check(*check)
                elif look and self._dry_run_next():
                    with self._cond:   # there may be more
                        self._look = True
            except Exception:
                self.log.exception('dry-run worker failed')

    def _next_job(self) -> Optional[Job]:
        """The job without a verdict and without a dry run under way that
        runs soonest (the current one first)."""
        current = self.queue.current()
        for job in ([current] if current else []) + self.queue.waiting():
            if not dry_run_done(job) and job.id not in self._active:
                return job
        return None

    def _dry_run_next(self) -> bool:
        """Dry-run the next job that needs it; False if none does."""
        job = self._next_job()
        if job is None:
            return False
        script = job.source
        try:
            user = runs_as(job, self.level_of)
        except UnknownAccount as err:
            # It fails when it starts.
            self._store(job.id, script, not_possible(str(err)))
            return True
        dry_run = self.runner(script, user,
                              bridged_kind(job.kind, job.isolated))
        with self._cond:
            if job.id in self._active:
                return True   # another worker took it meanwhile
            self._active[job.id] = (script, dry_run)
        # The job stays active until its report is stored, so that a change
        # event in between does not ask for a second dry run.
        try:
            if not self._store(job.id, script, running()):
                return True
            facts = dry_run.run()
            if dry_run.cancelled:
                return True
            report = _report(script, facts, self.settings.time_limit,
                             bridged_kind(job.kind, job.isolated))
            passed = report['state'] == DryRunState.OK
            hold = None
            # "not possible" (a bridged dry run over its limit) holds
            # nothing back, as for a job that gets no dry run.
            if self.settings.policy == 'hold' and \
                    report['state'] == DryRunState.FAILED:
                hold = 'dry run: ' + _first_problem(report)
            stored = self._store(job.id, script, report, hold, passed)
        finally:
            with self._cond:
                self._active.pop(job.id, None)
        if report['state'] != DryRunState.OK:
            self.log.warning('dry run of job %d: %s', job.id,
                             _first_problem(report))
        elif stored and job.held_by_dry_run:
            self.log.info('dry run of job %d passed: it is no longer held '
                          'back', job.id)
        return True

    def _check(self, script: str, user: Caller, bridged: Optional[str],
               future: Future) -> None:
        try:
            facts = self.runner(script, user, bridged).run()
            future.set_result(_report(script, facts, self.settings.time_limit,
                                      bridged))
        except Exception as err:
            future.set_exception(err)

    def _store(self, job_id: int, script: str, report: dict,
               hold: Optional[str] = None, passed: bool = False) -> bool:
        try:
            self.queue.set_estimate(job_id, report, for_source=script,
                                    hold_reason=hold, passed=passed)
            return True
        except (NotEditable, JobNotFound):
            return False   # edited, finished or removed meanwhile


def bridged_kind(kind: JobKind, isolated: bool) -> Optional[str]:
    """How a job of *kind* is dry-run: through the bridge as it runs (one
    of `BRIDGED_KINDS`), or None for a script NICOS runs itself."""
    if kind is JobKind.BLACKBOX:
        return BRIDGED_KINDS[0]
    return BRIDGED_KINDS[1] if isolated else None


def _report(script: str, facts: DryRunFacts, time_limit: float,
            bridged: Optional[str]) -> Dict[str, Any]:
    report = build_report(script, facts, time_limit)
    # A black-box script's "# estimate:" line overrides its dry run's figure.
    return with_declared(report, script) \
        if bridged == BRIDGED_KINDS[0] else report


def _first_problem(report: Dict[str, Any]) -> str:
    for problem in report.get('problems') or ():
        if problem['kind'] != 'warning':
            line = f' (line {problem["line"]})' if problem.get('line') else ''
            return problem['message'] + line
    return report.get('reason') or 'failed'
