"""When workers that stopped by themselves are replaced, and when replacing stops."""

import pytest

from starburst_dask.cluster.replacement import ReplacementPolicy


def test_a_worker_that_had_joined_is_replaced_at_once():
    policy = ReplacementPolicy()
    policy.stopped(joined=True, reason="")
    assert (policy.failures, policy.delay, policy.exhausted) == (0, 0.0, False)


def test_failures_back_off_doubling_up_to_the_cap():
    policy = ReplacementPolicy(max_failures=10, base_delay=1.0, max_delay=60.0)
    delays = []
    for _ in range(8):
        policy.stopped(joined=False, reason="Essential container in task exited")
        delays.append(policy.delay)
    assert delays == [1, 2, 4, 8, 16, 32, 60, 60]


def test_a_worker_that_joins_resets_the_count():
    policy = ReplacementPolicy(max_failures=3)
    for _ in range(2):
        policy.stopped(joined=False, reason="CannotPullContainerError")
    policy.stopped(joined=True, reason="")
    assert (policy.failures, policy.last_reason, policy.delay) == (0, "", 0.0)
    for _ in range(2):
        policy.stopped(joined=False, reason="exit code 1")
    assert not policy.exhausted  # two in a row, not four


@pytest.mark.parametrize("max_failures", [1, 5])
def test_replacing_stops_after_max_failures_in_a_row(max_failures):
    policy = ReplacementPolicy(max_failures=max_failures)
    for i in range(max_failures):
        assert not policy.exhausted
        policy.stopped(joined=False, reason=f"exit code {i}")
    assert policy.exhausted


def test_the_error_names_the_count_the_last_reason_and_the_fix():
    policy = ReplacementPolicy(max_failures=2)
    policy.stopped(joined=False, reason="CannotPullContainerError: image not found")
    policy.stopped(joined=False, reason="Essential container in task exited (exit code 3)")
    message = policy.error()
    assert message.startswith("2 worker tasks in a row stopped before joining the scheduler")
    assert "The last one: Essential container in task exited (exit code 3)" in message
    assert "cluster.scale(n)" in message


@pytest.mark.parametrize(("wanted", "limit"), [(1, 5), (10, 5), (11, 6), (64, 32), (1000, 200)])
def test_the_limit_is_half_the_workers_wanted_within_five_and_200(wanted, limit):
    # As ECS's deployment circuit breaker: half the desired count, at most 200.
    policy = ReplacementPolicy()
    for i in range(limit):
        assert not policy.exhausted, i
        policy.stopped(joined=False, reason="exit code 1", wanted=wanted)
    assert policy.exhausted


def test_a_worker_joining_resets_the_count_of_failures_in_a_row():
    policy = ReplacementPolicy(max_failures=3)
    for _ in range(2):
        policy.stopped(joined=False, reason="CannotPullContainerError")
    policy.join(["worker-7"])
    assert (policy.failures, policy.last_reason, policy.delay) == (0, "", 0.0)
    assert "worker-7" in policy.joined
    for _ in range(2):
        policy.stopped(joined=False, reason="exit code 1")
    assert not policy.exhausted
