"""When to restart a crashed service, and when to give up (pure).

A service that crashes is started again after a delay that doubles with
each failure in a row (0.5 s, 1 s, 2 s, ... up to 30 s), so a service that
cannot start does not spin the machine, while a one-off crash costs half a
second. A service that ran for a minute counted as healthy: its next crash
starts the series again. After a number of failures in a row, each within
a minute of its start, restarting is pointless (a broken configuration or
disk) and the supervisor gives up.
"""

from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class RestartPolicy:
    """The numbers of the backoff; the defaults are the supervisor's."""

    first_delay: float = 0.5
    factor: float = 2.0
    max_delay: float = 30.0
    #: A run at least this long resets the series of failures.
    healthy_after: float = 60.0
    #: Failures in a row (since the last run of `healthy_after`) at which
    #: the supervisor gives up.
    give_up_after: int = 8

    def __post_init__(self) -> None:
        if not 0 < self.first_delay <= self.max_delay or self.factor < 1 \
                or self.healthy_after <= 0 or self.give_up_after < 1:
            raise ValueError(f'inconsistent restart policy: {self}')


class Backoff:
    """The restart schedule of one service under a `RestartPolicy`."""

    def __init__(self, policy: RestartPolicy = RestartPolicy()):
        self.policy = policy
        #: Failures in a row so far.
        self.failures = 0
        self._delay = 0.0

    def next_delay(self, ran_for: float) -> Optional[float]:
        """The service stopped after running *ran_for* seconds: the delay
        before starting it again, or None to give up."""
        policy = self.policy
        if ran_for >= policy.healthy_after:
            self.failures = 0
        self.failures += 1
        if self.failures >= policy.give_up_after:
            return None
        # Grown step by step rather than as a power, which a long series
        # would overflow.
        self._delay = policy.first_delay if self.failures == 1 else \
            min(policy.max_delay, self._delay * policy.factor)
        return self._delay
