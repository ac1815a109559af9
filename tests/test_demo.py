"""The demo's Monte Carlo job: seeded, and independent of how it is split."""

import dask
import numpy as np

from starburst_dask import demo


def test_results_do_not_depend_on_chunking():
    whole = demo.simulate(0, 40, seed=7)
    split = np.concatenate([demo.simulate(0, 15, seed=7), demo.simulate(15, 25, seed=7)])
    np.testing.assert_array_equal(whole, split)


def test_graph_matches_direct_computation():
    n = 1_234  # not a multiple of the chunk size
    with dask.config.set(scheduler="sync"):
        result = demo.portfolio(n, seed=3).compute()
    direct = demo.summarise(demo.simulate(0, n, seed=3))
    assert result == direct
    assert result.simulations == n
    assert result.p5_final_value < result.mean_final_value < result.p95_final_value
    assert "1,234 simulations" in str(result)


def test_demo_command_runs_the_job_on_a_local_fargate_and_leaves_nothing(monkeypatch):
    import psutil
    from click.testing import CliRunner
    from conftest import IMAGE_VAR

    from starburst_dask.cli import main

    # As the README runs it: on the default image, this environment's, built once.
    monkeypatch.delenv(IMAGE_VAR)
    monkeypatch.setitem(dask.config.config["starburst"], "image", None)
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    result = CliRunner().invoke(main, ["demo", "--workers", "2", "--simulations", "2000"])
    assert result.exit_code == 0, result.output
    with dask.config.set(scheduler="sync"):
        expected = demo.portfolio(2000, seed=42).compute()
    assert str(expected) in result.output  # the same numbers as computed here
    assert "Closed" in result.output
    assert "building" in result.output and "/starburst-dask:" in result.output
    left = {p.pid for p in psutil.Process().children(recursive=True)} - before
    assert not [
        p
        for p in left
        if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE
    ]
