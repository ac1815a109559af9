"""Expensive clusters confirmed: asked at a terminal, refused without one, unless told;
scaling and adapting past the thresholds too."""

from __future__ import annotations

import math
import types

import dask.config
import pytest

from starburst_dask.cost.confirm import ScaleGuard, confirm_launch, requested_vcpus
from starburst_dask.errors import ConfirmationError
from starburst_dask.options import ClusterOptions


def meter(per_hour, scheduler_rate=0.05, worker_rate=0.2):
    return types.SimpleNamespace(
        estimate_per_hour=per_hour,
        scheduler_rate=scheduler_rate,
        worker_rate=worker_rate,
        per_hour=lambda n: scheduler_rate + n * worker_rate,
        prices=types.SimpleNamespace(source="published prices"),
    )


def never(question):
    raise AssertionError(f"asked: {question}")


def options(**kwargs):
    return ClusterOptions.resolve(region="us-east-1", **kwargs)


def test_a_cluster_under_both_thresholds_starts_without_a_question():
    confirm_launch(meter(0.5), options(n_workers=4), interactive=lambda: True, ask=never)


@pytest.mark.parametrize("answer", [True, False])
def test_at_a_terminal_the_estimate_is_asked_about(answer):
    asked = []

    def ask(question):
        asked.append(question)
        return answer

    big = options(n_workers=100)
    if answer:
        confirm_launch(meter(58.26), big, interactive=lambda: True, ask=ask)
    else:
        with pytest.raises(ConfirmationError, match="the answer was no"):
            confirm_launch(meter(58.26), big, interactive=lambda: True, ask=ask)
    [question] = asked
    assert "$58.26" in question and "101 vCPUs" in question and "[y/N]" in question
    assert "starburst.confirm.hourly-cost=10" in question and "confirm.vcpus=64" in question


def test_without_a_terminal_it_is_refused_naming_the_ways_on():
    with pytest.raises(ConfirmationError) as info:
        confirm_launch(meter(5826.05), options(n_workers=100_000), interactive=lambda: False)
    said = str(info.value)
    assert "$5,826.05" in said and "100,001 vCPUs" in said and "confirm=False" in said
    assert "Nothing was started" in said and "\n" not in said


def test_confirm_false_or_null_thresholds_allow_it():
    huge = options(n_workers=100_000)
    confirm_launch(meter(5826.05), huge, confirm=False, interactive=lambda: False)
    with dask.config.set({"starburst.confirm.hourly-cost": None, "starburst.confirm.vcpus": None}):
        allowed = options(n_workers=100_000)
    confirm_launch(meter(5826.05), allowed, interactive=lambda: False)


def test_the_vcpus_requested_count_the_scheduler():
    assert requested_vcpus(options(n_workers=3, worker_cpu=2048, worker_memory=4096)) == 7


def guard(n_workers=4, confirm=True):
    # 1 vCPU workers at $0.20 an hour, a $0.05 scheduler: $10 an hour allows 49 workers,
    # 64 vCPUs 63 of them.
    return ScaleGuard(meter(0.05 + 0.2 * n_workers), options(n_workers=n_workers), confirm)


def test_scaling_within_the_thresholds_is_not_asked_about():
    g = guard()
    assert g.most_unasked() == 49
    g.scale(49, ask=never)


def test_scaling_past_them_is_asked_about_once_and_refused_without_a_terminal():
    g = guard()
    with pytest.raises(ConfirmationError) as info:
        g.scale(1000, interactive=lambda: False)
    said = str(info.value)
    assert "$200.05" in said and "1,001 vCPUs" in said and "1,000 workers" in said
    assert said.endswith("Not scaled.") and "confirm=False" in said
    asked = []
    at_terminal = {"interactive": lambda: True}
    g.scale(1000, **at_terminal, ask=lambda question: asked.append(question) or True)
    [question] = asked
    assert question.startswith("Scale to 1,000 workers? This cluster would cost about $200.05")
    g.scale(1000, ask=never)  # confirmed once
    with pytest.raises(ConfirmationError, match="not scaled: .*the answer was no"):
        g.scale(2000, **at_terminal, ask=lambda question: False)
    with pytest.raises(ConfirmationError, match="no terminal"):  # asked from the event loop
        g.scale(2000, from_loop=True, **at_terminal, ask=never)


def test_adapt_without_a_maximum_stays_within_the_thresholds_and_says_so():
    said = []
    assert guard().adapt_maximum(math.inf, said.append) == 49
    [line] = said
    assert "up to 49 workers" in line and "adapt(maximum=...)" in line
    assert "starburst.confirm.hourly-cost=10" in line
    with pytest.raises(ConfirmationError, match="Not scaled"):
        guard().adapt_maximum(100, said.append, from_loop=True)


def test_confirm_false_scales_and_adapts_without_limit():
    g = guard(confirm=False)
    g.scale(10**5, from_loop=True)
    assert g.adapt_maximum(math.inf, never) == math.inf
