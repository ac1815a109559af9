"""Option resolution and validation: every bad input gets one clear error, before AWS."""

import dask.config
import pytest

from starburst_dask.errors import ConfigurationError
from starburst_dask.options import ClusterOptions, configured_image, default_image


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
        (
            {"worker_cpu": 1024, "worker_memory": 1024},
            ["worker_cpu=1024", "worker_memory=1024", "2048 to 8192 in steps of 1024"],
        ),
        ({"scheduler_cpu": 256, "scheduler_memory": 4096}, ["512, 1024, 2048"]),
        ({"worker_cpu": 3000}, ["3000 is not a Fargate CPU size", "256, 512, 1024"]),
        ({"n_workers": -1}, ["n_workers must be 0 or more"]),
        ({"n_workers": 2.5}, ["n_workers must be a whole number"]),
        ({"n_workers": "3"}, ["n_workers must be a whole number"]),
        ({"n_workers": True}, ["n_workers must be a whole number"]),
        ({"region": "moon-east-1"}, ["unknown AWS region 'moon-east-1'"]),
        ({"name": "has space"}, ["cluster name"]),
        ({"running_timeout": 0}, ["running_timeout must be a positive"]),
        ({"launch_timeout": 0}, ["running_timeout must be a positive"]),  # its former name
        ({"worker_cores": 4}, ["unknown option 'worker_cores': did you mean worker_cpu?"]),
        ({"max_cots": 4}, ["unknown option 'max_cots': did you mean max_cost?"]),
        ({"image_build_project": "p"}, ["unknown option 'image_build_project'"]),  # setup's
        ({"cluster": "a", "ecs_cluster": "b"}, ["cluster= and ecs_cluster= name the same"]),
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


@pytest.mark.parametrize(
    "former, name",
    [
        ("cluster", "ecs_cluster"),
        ("launch_timeout", "running_timeout"),
        ("launch_deadline", "launch_retry_timeout"),
    ],
)
def test_former_names_still_work_as_arguments_and_config_keys(former, name):
    value = "my-cluster" if name == "ecs_cluster" else 42
    assert getattr(resolve(**{former: value}), name) == value
    with dask.config.set({f"starburst.{former.replace('_', '-')}": value}):
        assert getattr(resolve(), name) == value
        assert getattr(resolve(**{name: value}), name) == value


def test_a_former_and_a_current_config_key_that_disagree_are_refused():
    with (
        dask.config.set({"starburst.cluster": "old", "starburst.ecs-cluster": "new"}),
        pytest.raises(ConfigurationError, match="keep only starburst.ecs-cluster"),
    ):
        resolve()


@pytest.mark.parametrize(
    "key, suggestion",
    [
        ("starburst.max-cots", "starburst.cost.max-cost"),
        ("starburst.cost.max_cots", "starburst.cost.max-cost"),
        ("starburst.quota.intervall", "starburst.quota.interval"),
        ("starburst.worker_cpus", "starburst.worker-cpu"),
    ],
)
def test_a_mistyped_config_key_is_refused_with_the_closest_key(key, suggestion):
    with dask.config.set({key: 5}), pytest.raises(ConfigurationError) as info:
        resolve()
    shown = key.replace("_", "-")
    assert f"unknown config key {shown}: did you mean {suggestion}?" in str(info.value)


def environment(**variables):
    """dask config as dask reads these ``DASK_*`` environment variables, as dotted keys."""

    def dotted(tree, prefix=""):
        for key, value in tree.items():
            if isinstance(value, dict):
                yield from dotted(value, f"{prefix}{key}.")
            else:
                yield prefix + key, value

    return dask.config.set(dict(dotted(dask.config.collect_env(variables))))


def test_a_mistyped_environment_variable_is_refused():
    with (
        environment(DASK_STARBURST__COST__MAX_COTS="5"),
        pytest.raises(
            ConfigurationError,
            match="starburst.cost.max-cots: did you mean starburst.cost.max-cost",
        ),
    ):
        resolve()
    with environment(
        DASK_STARBURST__COST__MAX_COST="5",
        DASK_STARBURST__LAUNCH_DEADLINE="9",
        DASK_STARBURST__SUBNETS='["subnet-1"]',
    ):
        o = resolve()
    assert (o.max_cost, o.launch_retry_timeout, o.subnets) == (5, 9, ("subnet-1",))


def test_free_mappings_take_any_key():
    with dask.config.set(
        {"starburst.environment": {"MY_VAR": "1"}, "starburst.tags": {"team": "data"}}
    ):
        o = resolve()
    assert (o.environment, o.tags) == ({"MY_VAR": "1"}, {"team": "data"})


def test_the_configured_image_is_dasks_own_unless_one_is_set():
    # What setup and doctor check the network for: never the text "None".
    assert configured_image() == default_image() == ClusterOptions.resolve(region="us-east-1").image
    with dask.config.set({"starburst.image": "python:3.11"}):
        assert configured_image() == "python:3.11"
