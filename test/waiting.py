"""Waiting on a condition in tests, with a timeout instead of a fixed sleep."""

import time


def wait_until(condition, timeout=30.0):
    """Poll *condition* until it returns something true; return that."""
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        assert time.monotonic() < deadline, 'condition not met in time'
        time.sleep(0.05)
    return result
