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
