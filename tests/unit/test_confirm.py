"""Expensive clusters confirmed: asked at a terminal, refused without one, unless told."""

from __future__ import annotations

import types

import dask.config
import pytest

from starburst_dask.cost.confirm import confirm_launch, requested_vcpus
from starburst_dask.errors import ConfirmationError
from starburst_dask.options import ClusterOptions


def meter(per_hour):
    return types.SimpleNamespace(
        estimate_per_hour=per_hour, prices=types.SimpleNamespace(source="published prices")
    )


def options(**kwargs):
    return ClusterOptions.resolve(region="us-east-1", **kwargs)


def test_a_cluster_under_both_thresholds_starts_without_a_question():
    def never(question):
        raise AssertionError("asked")

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
