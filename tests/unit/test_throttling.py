"""AWS's token bucket model, on an injected clock."""

import threading

import pytest

from starburst_dask import fargate
from starburst_dask.aws.throttling import TokenBucket

from .stubs import FakeClock


def test_a_full_bucket_serves_its_burst_then_says_how_long_to_wait():
    clock = FakeClock()
    bucket = TokenBucket(burst=3, rate=2.0, clock=clock)
    assert [bucket.take() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take() == pytest.approx(0.5)  # one token at 2 a second
    assert bucket.take(2) == pytest.approx(1.0)


def test_a_refused_take_takes_nothing():
    clock = FakeClock()
    bucket = TokenBucket(burst=10, rate=1.0, clock=clock)
    assert bucket.take(10) == 0.0
    clock.advance(4)
    assert bucket.take(5) == pytest.approx(1.0)
    assert bucket.take(4) == 0.0  # the refused 5 took none of the 4 refilled


def test_refill_follows_the_clock_and_stops_at_the_burst():
    clock = FakeClock()
    bucket = TokenBucket(burst=5, rate=1.0, clock=clock)
    bucket.take(5)
    clock.advance(2.5)
    assert bucket.take(2) == 0.0
    assert bucket.take(1) == pytest.approx(0.5)
    clock.advance(3600)
    assert bucket.take(5) == 0.0  # an hour refills only up to the burst
    assert bucket.take(1) == pytest.approx(1.0)


def test_given_back_tokens_are_usable_and_capped_at_the_burst():
    clock = FakeClock()
    bucket = TokenBucket(burst=4, rate=1.0, clock=clock)
    bucket.take(4)
    bucket.give(3)
    assert bucket.take(3) == 0.0
    bucket.give(100)
    assert bucket.take(4) == 0.0 and bucket.take(1) == pytest.approx(1.0)


def test_concurrent_takers_never_share_a_token():
    bucket = TokenBucket(burst=100, rate=1e-9, clock=FakeClock())  # no refill to speak of
    granted = []

    def take():
        granted.extend(1 for _ in range(50) if bucket.take() == 0.0)

    threads = [threading.Thread(target=take) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(granted) == 100


def test_awss_run_task_buckets_allow_their_burst_then_their_rate():
    """Fargate RunTask: a burst of 20 calls, then 20 a second (fargate.RATE_LIMITS)."""
    clock = FakeClock()
    burst, rate = fargate.RATE_LIMITS["fargate-run-task-calls"]
    bucket = TokenBucket(burst, rate, clock=clock)
    served = 0
    for _ in range(10 * 100):  # ten seconds of calls every 10 ms
        served += bucket.take() == 0.0
        clock.advance(0.01)
    assert served == pytest.approx(burst + 10 * rate, abs=1)
