"""Option values typed by the schema: the same rules for arguments, files and variables."""

from __future__ import annotations

import dask.config
import pytest

from starburst_dask import config
from starburst_dask.errors import ConfigurationError
from starburst_dask.values import Origin, checked


def argument(name, value):
    return checked(config.node(name), value, Origin(name))


def configured(name, value):
    with dask.config.set({f"starburst.{config.OPTIONS[name]}": value}):
        return config.setting(name)


@pytest.mark.parametrize("text", ["false", "no", "off", "0", "False", " NO "])
def test_config_spells_false_and_it_is_false(text):
    assert configured("inside_vpc", text) is False
    assert configured("assign_public_ip", text) is False
    with pytest.raises(ConfigurationError, match="inside_vpc must be True or False"):
        argument("inside_vpc", text)  # an argument is a bool


def test_an_enum_keeps_its_words_and_parses_booleans():
    assert configured("assign_public_ip", "auto") == "auto"
    assert configured("spot", "yes") is True and configured("spot", "fallback") == "fallback"


@pytest.mark.parametrize("value, seconds", [("5m", 300), (90, 90), ("1.5s", 1.5), ("2h", 7200)])
def test_durations_are_seconds(value, seconds):
    assert argument("scheduler_timeout", value) == seconds
    assert configured("worker_ttl", value) == seconds


def test_one_id_is_a_list_of_one_and_never_characters():
    assert argument("subnets", "subnet-abc") == ("subnet-abc",)
    assert configured("security_groups", "sg-1") == ("sg-1",)
    assert argument("subnets", ["subnet-a", "subnet-b"]) == ("subnet-a", "subnet-b")


def test_mappings_are_text():
    assert argument("environment", {"A": 1, "B": True}) == {"A": "1", "B": "True"}
    with pytest.raises(ConfigurationError, match=r"environment must be a mapping.*'A=1'"):
        argument("environment", "A=1")


def test_a_config_error_names_the_file_that_set_it(tmp_path, monkeypatch):
    monkeypatch.setenv("DASK_CONFIG", str(tmp_path))
    (tmp_path / "mine.yaml").write_text("starburst:\n  worker_cpu: big\n")
    monkeypatch.setattr(dask.config, "paths", [str(tmp_path)])
    with (
        dask.config.set({"starburst.worker-cpu": "big"}),
        pytest.raises(ConfigurationError) as info,
    ):
        config.setting("worker_cpu")
    said = str(info.value)
    assert 'starburst.worker-cpu must be a whole number, not "big"' in said
    assert str(tmp_path / "mine.yaml") in said and "set e.g. starburst.worker-cpu: 1024" in said


def test_a_variable_is_named_with_its_own_example(monkeypatch):
    monkeypatch.setenv("DASK_STARBURST__SCHEDULER_TIMEOUT", "soon")
    with (
        dask.config.set({"starburst.scheduler-timeout": "soon"}),
        pytest.raises(ConfigurationError) as info,
    ):
        config.setting("scheduler_timeout")
    assert "(set in DASK_STARBURST__SCHEDULER_TIMEOUT); set e.g. " in str(info.value)
    assert 'DASK_STARBURST__SCHEDULER_TIMEOUT="5m"' in str(info.value)
