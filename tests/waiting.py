"""Waiting on a condition in tests: poll it, with a timeout that fails the test naming what
was awaited."""
import time

import pytest


def wait_until(predicate, timeout: float = 10.0, what: str = "condition", poll: float = 0.02):
    """Poll `predicate` until it returns a true value (returned); fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout} s")
        time.sleep(poll)
    return value
