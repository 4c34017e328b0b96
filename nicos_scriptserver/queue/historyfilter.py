"""Which finished jobs a history page shows: by owner, state and time."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional, Tuple

from nicos_scriptserver.queue.errors import InvalidValue
from nicos_scriptserver.queue.model import JobState

FINISHED_STATES = tuple(state.value for state in JobState if state.finished)


def page_limit(limit: Any) -> int:
    """*limit*, the size of a history page, if it is a positive number;
    else `InvalidValue`."""
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise InvalidValue(f'the history limit must be a positive number, '
                           f'not {limit!r}')
    return limit


@dataclass(frozen=True)
class HistoryFilter:
    """Finished jobs of *owner*, in one of *states*, that finished at or
    after *since* and before *until* (epoch seconds); None: any."""

    owner: Optional[str] = None
    states: Optional[Tuple[str, ...]] = None
    since: Optional[float] = None
    until: Optional[float] = None

    @property
    def empty(self) -> bool:
        """Whether it lets every finished job through."""
        return self == HistoryFilter()

    def matches(self, job: Any) -> bool:
        """Whether the finished *job* passes (what the store's query
        selects)."""
        return ((self.owner is None or job.owner == self.owner) and
                (self.states is None or job.state.value in self.states) and
                (self.since is None or job.finished_at is not None and
                 job.finished_at >= self.since) and
                (self.until is None or job.finished_at is not None and
                 job.finished_at < self.until))

    @classmethod
    def parse(cls, user: Any = None, state: Any = None, since: Any = None,
              until: Any = None) -> 'HistoryFilter':
        """The filter a client asked for: *user* an account name, *state*
        a finished state or a list of them, *since*/*until* epoch seconds.
        Raise `InvalidValue` for anything else."""
        if user is not None and (not isinstance(user, str) or not user):
            raise InvalidValue(f'the history user must be an account name, '
                               f'not {user!r}')
        states = None
        if state is not None:
            states = (state,) if isinstance(state, str) else state
            if not isinstance(states, (list, tuple)) or not states or any(
                    value not in FINISHED_STATES for value in states):
                raise InvalidValue(
                    f'the history state must be one or more of '
                    f'{", ".join(FINISHED_STATES)}, not {state!r}')
            states = tuple(sorted(set(states)))
        return cls(user, states, _time('since', since), _time('until', until))


def _time(name: str, value: Any) -> Optional[float]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            not math.isfinite(value):
        raise InvalidValue(f'the history {name} must be epoch seconds, not '
                           f'{value!r}')
    return float(value)
