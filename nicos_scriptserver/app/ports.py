"""What the application needs of NICOS, as small interfaces.

The NICOS adapters (`nicos_scriptserver.daemon`) implement them; the
fuzzers and tests give plain stand-ins. The application reaches NICOS
through nothing else: the script thread (`ScriptControl`), the command
catalog (`Commands`), dry runs (`DryRunner`), the accounts' levels, the
NICOS log and a clock are handed to it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Callable, Optional, Protocol

from nicos_scriptserver.catalog.validate import CommandLookup
from nicos_scriptserver.estimates import DryRunFacts
from nicos_scriptserver.queue import Caller, Job

#: The user level of an account now; None if there is no such account.
LevelOf = Callable[[str], Optional[int]]
#: The log that clients show (NICOS makes a new one as the daemon starts,
#: so it is asked for each time).
Log = Callable[[], logging.Logger]
#: Epoch seconds now.
Clock = Callable[[], float]


class ScriptControl(Protocol):
    """The script thread, which runs the current job.

    Each request may raise `InvalidTransition` if the job cannot be
    reached (then the application withdraws what it recorded).
    """

    def pause(self, job: Job, level: int, by: Caller) -> None:
        """Ask the running *job* to pause at the next point of *level*
        (NICOS's break levels)."""

    def resume(self, by: Caller) -> None:
        """Let the paused job go on."""

    def abort(self, job: Job, level: int, by: Caller) -> None:
        """Ask the current *job* to stop at the next point of *level*; a
        black-box job's processes are ended."""

    def emergency_stop(self, job: Optional[Job], by: Caller) -> None:
        """Stop the current *job* (if any) at once, then every device."""

    def line(self) -> Optional[int]:
        """The line of its script the running job is at."""

    def wake(self) -> None:
        """A job may start now that could not before."""


class Commands(Protocol):
    """The instrument's command catalog."""

    def lookup(self) -> Optional[CommandLookup]:
        """The catalog as it is now; None if it is not loaded."""

    def between_jobs(self) -> None:
        """No job runs: let changed command files take effect."""


class DryRun(Protocol):
    """One dry run of a script (see `DryRunner`)."""

    @property
    def cancelled(self) -> bool:
        """Whether `cancel` was called."""

    def run(self) -> DryRunFacts:
        """Dry-run the script; blocks until it ends, times out or is
        cancelled, and never raises for what the script does."""

    def cancel(self) -> None:
        """Stop the dry run; `run` returns soon after."""


#: How a bridged job's script is dry-run: in a child, through the bridge.
BRIDGED_KINDS = ('black-box', 'isolated')


class DryRunner(Protocol):
    """Makes dry runs."""

    def __call__(self, script: str, user: Caller,
                 bridged: Optional[str] = None) -> DryRun:
        """A dry run of *script* as *user* (not started yet); *bridged*
        (one of `BRIDGED_KINDS`) runs it as that kind of bridged job."""


@dataclass(frozen=True)
class Ports:
    """Everything of NICOS the application reaches (see the module)."""

    control: ScriptControl
    commands: Commands
    level_of: LevelOf
    log: Log
    clock: Clock = time.time
