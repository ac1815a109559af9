"""Option resolution and validation: every bad input gets one clear error, before AWS."""

import dask.config
import pytest

from starburst_dask.errors import ConfigurationError
from starburst_dask.options import ClusterOptions


def resolve(**kwargs):
    return ClusterOptions.resolve(region="us-east-1", **kwargs)


def test_defaults_fit_a_new_accounts_quota():
    o = resolve()
    vcpus = (o.scheduler_cpu + o.n_workers * o.worker_cpu) / 1024
    assert vcpus <= 6
    assert o.worker_vcpus == 1
    assert 0 < o.worker_memory_limit < o.worker_memory * 2**20


def test_arguments_override_config_and_config_overrides_defaults():
    with dask.config.set({"starburst.worker-cpu": 2048, "starburst.worker-memory": 8192}):
        o = resolve()
        assert (o.worker_cpu, o.worker_memory) == (2048, 8192)
        assert resolve(worker_cpu=512, worker_memory=1024).worker_cpu == 512


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"worker_cpu": 1024, "worker_memory": 1024},
         ["worker_cpu=1024", "worker_memory=1024", "2048 to 8192 in steps of 1024"]),
        ({"scheduler_cpu": 256, "scheduler_memory": 4096}, ["512, 1024, 2048"]),
        ({"worker_cpu": 3000}, ["3000 is not a Fargate CPU size", "256, 512, 1024"]),
        ({"n_workers": -1}, ["n_workers must be 0 or more"]),
        ({"n_workers": 2.5}, ["n_workers must be a whole number"]),
        ({"n_workers": "3"}, ["n_workers must be a whole number"]),
        ({"n_workers": True}, ["n_workers must be a whole number"]),
        ({"region": "moon-east-1"}, ["unknown AWS region 'moon-east-1'"]),
        ({"name": "has space"}, ["cluster name"]),
        ({"launch_timeout": 0}, ["launch_timeout must be a positive"]),
        ({"worker_cores": 4}, ["unknown option(s) ['worker_cores']"]),
        ({"max_lifetime": "forever"}, ["max_lifetime must be a duration like '24h'"]),
        ({"spot": "maybe"}, ["spot must be False, True or 'fallback'"]),
    ],
)
def test_invalid_options_name_the_problem(kwargs, words):
    with pytest.raises(ConfigurationError) as info:
        ClusterOptions.resolve(**{"region": "us-east-1", **kwargs})
    for word in words:
        assert word in str(info.value)


def test_missing_region_says_how_to_set_it(monkeypatch):
    for var in ("AWS_DEFAULT_REGION", "AWS_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    with pytest.raises(ConfigurationError, match="no AWS region is configured"):
        ClusterOptions.resolve()
