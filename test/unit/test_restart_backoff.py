"""The supervisor's restart schedule (supervisor/backoff.py)."""

import pytest
from hypothesis import given, strategies as st

from nicos_scriptserver.supervisor.backoff import Backoff, RestartPolicy

policies = st.builds(
    RestartPolicy,
    first_delay=st.floats(0.01, 10),
    factor=st.floats(1, 10),
    max_delay=st.floats(10, 1000),
    healthy_after=st.floats(1, 600),
    give_up_after=st.integers(1, 5000))


def test_the_default_series_doubles_from_half_a_second_to_30_s_then_gives_up():
    backoff = Backoff()
    delays = [backoff.next_delay(1.0) for _ in range(8)]
    assert delays == [0.5, 1, 2, 4, 8, 16, 30, None]


def test_a_minute_of_healthy_running_starts_the_series_again():
    backoff = Backoff()
    assert [backoff.next_delay(1.0) for _ in range(5)] == [0.5, 1, 2, 4, 8]
    assert backoff.next_delay(60.0) == 0.5
    assert backoff.next_delay(59.9) == 1


@given(policies, st.lists(st.floats(0, 1e6), max_size=200))
def test_delays_stay_between_the_first_delay_and_the_cap(policy, runs):
    backoff = Backoff(policy)
    for ran_for in runs:
        delay = backoff.next_delay(ran_for)
        if delay is None:
            return
        assert policy.first_delay <= delay <= policy.max_delay


@given(policies, st.lists(st.floats(0, 1e6), max_size=200))
def test_it_gives_up_exactly_at_the_nth_failure_without_a_healthy_run(policy, runs):
    backoff = Backoff(policy)
    in_a_row = 0
    for ran_for in runs:
        in_a_row = 1 if ran_for >= policy.healthy_after else in_a_row + 1
        delay = backoff.next_delay(ran_for)
        assert (delay is None) == (in_a_row >= policy.give_up_after)
        if delay is None:
            return
        if in_a_row == 1:
            assert delay == policy.first_delay


@given(policies)
def test_within_a_series_delays_never_shrink(policy):
    backoff = Backoff(policy)
    delays = []
    while (delay := backoff.next_delay(0.0)) is not None:
        delays.append(delay)
    assert delays == sorted(delays)
    assert len(delays) == policy.give_up_after - 1


@pytest.mark.parametrize('numbers', [dict(first_delay=0), dict(first_delay=40),
                                     dict(factor=0.5), dict(give_up_after=0),
                                     dict(healthy_after=0)])
def test_an_inconsistent_policy_is_refused(numbers):
    with pytest.raises(ValueError):
        RestartPolicy(**numbers)
