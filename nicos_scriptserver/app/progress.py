"""How far the running job is, when the commands it calls report too.

A job script and the instrument commands it calls each report about
their own work: the job says ``step(2, 5)`` ("point 2 of 5 begins"), the
`measure` it then calls says ``progress(0.5, 'block 10 of 20')``. Each
call of a catalog command opens a scope nested in its caller's current
step, so an inner fraction f of step i of n is (i - 1 + f) / n of the
caller, and so on outwards; the messages are joined outer first
("point 2 of 5 · block 10 of 20"). When the command returns its scope
ends: the caller keeps the fraction reached and its own message.

Inside a step the fraction only moves forward: a second command called
in the same step goes on from where the first one left it. A caller that
reports no step leaves its commands its whole range, as if it reported
nothing itself (a script of plain ``measure()`` calls shows each one's
own progress).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Tuple

#: Between the messages of nested scopes.
SEPARATOR = ' · '

#: (overall fraction 0..1, message) as the job reports it.
Report = Tuple[float, str]


@dataclass
class _Scope:
    """One level: the job's script, or a command call inside it."""

    low: float  # the overall fraction where this scope begins
    high: float  # and where it ends
    position: float  # the overall fraction reached
    step_end: Optional[float] = None  # where the current step ends, if any
    message: str = ''
    reported: bool = False  # whether this scope has reported anything


class ProgressStack:
    """The running job's nested progress scopes; the job's script is the
    outermost. Arguments are checked by the caller (`daemon.jobapi`)."""

    def __init__(self) -> None:
        self._scopes: List[_Scope] = [_Scope(0.0, 1.0, 0.0)]

    def step(self, number: int, total: int, message: str = '') -> Report:
        """Step *number* of *total* (1 <= number <= total) of the innermost
        scope begins; its message defaults to ``step 3 of 10``."""
        scope = self._scopes[-1]
        width = scope.high - scope.low
        scope.position = scope.low + width * (number - 1) / total
        scope.step_end = scope.low + width * number / total
        scope.message = message or f'step {number} of {total}'
        scope.reported = True
        return self.report()

    def progress(self, fraction: float, message: str = '') -> Report:
        """The innermost scope is *fraction* (0..1) done; this ends its
        step, if it was in one."""
        scope = self._scopes[-1]
        scope.position = scope.low + (scope.high - scope.low) * fraction
        scope.step_end = None
        scope.message = message
        scope.reported = True
        return self.report()

    def enter(self) -> None:
        """A command call begins: its reports nest in the caller's step."""
        scope = self._scopes[-1]
        if scope.step_end is None:
            self._scopes.append(_Scope(scope.low, scope.high, scope.position))
        else:
            self._scopes.append(_Scope(scope.position, scope.step_end,
                                       scope.position))

    def leave(self) -> Optional[Report]:
        """The innermost command call returned (or raised); the report to
        send if it had reported (its message is gone), else None."""
        if len(self._scopes) == 1:
            return None  # the job's own scope never ends
        scope = self._scopes.pop()
        if not scope.reported:
            return None
        caller = self._scopes[-1]
        caller.position = scope.position
        caller.reported = True
        return self.report()

    def report(self) -> Report:
        """The overall fraction and the joined messages, outer first."""
        fraction = min(max(self._scopes[-1].position, 0.0), 1.0)
        return fraction, SEPARATOR.join(scope.message for scope in self._scopes
                                        if scope.message)
