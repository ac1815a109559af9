"""Bad inputs across the API, dask config, environment variables and the command line.

Issue 14's table: each bad input ends in one clear line, a project exception (API) or a
non-zero exit (the command), no traceback, and nothing created at the AWS API: no task
(ECS ListTasks), task definition (ListTaskDefinitions) or secret (Secrets Manager
ListSecrets) more, no mutating call among the project's own, no RunTask or
RegisterTaskDefinition on the wire (the local Fargate's ``recorded()``).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys

import dask.config
import pytest
from click.testing import CliRunner
from helpers import lock_with, private_dask_config

from starburst_dask import FargateCluster
from starburst_dask.admin.roles import TRUST_ECS_TASKS
from starburst_dask.cli import main
from starburst_dask.errors import (
    ConfigurationError,
    ConfirmationError,
    MissingResourceError,
)

#: The project's calls that would change the account.
MUTATING = ("Create", "Register", "Run", "Put", "Request", "Start", "Update", "Tag", "Authorize")
DEAD_ENDPOINT = "http://127.0.0.1:1"
STALE_SUBNET = "subnet-0123456789abcdef0"


def state(aws):
    """What a refused input must leave as it was."""
    ecs, secrets = aws.client("ecs"), aws.client("secretsmanager")
    tasks = [
        arn
        for status in ("RUNNING", "STOPPED")
        for arn in ecs.list_tasks(cluster="starburst-dask", desiredStatus=status)["taskArns"]
    ]
    return {
        "tasks": sorted(tasks),
        "definitions": ecs.list_task_definitions()["taskDefinitionArns"],
        "secrets": sorted(s["Name"] for s in secrets.list_secrets()["SecretList"]),
    }


@pytest.fixture
def untouched(local_fargate):
    """Fails the test if anything was created at the AWS API meanwhile."""
    before, calls = state(local_fargate), local_fargate.project_calls.copy()
    seen = len(local_fargate.recorded())
    yield
    made = sorted(
        op
        for (_, op), n in (local_fargate.project_calls - calls).items()
        if op.startswith(MUTATING)
    )
    assert made == [], f"the project changed the account: {made}"
    wire = {e.operation for e in local_fargate.recorded()[seen:]}
    assert not wire & {"RunTask", "RegisterTaskDefinition"}, wire
    assert state(local_fargate) == before


def one_line(text):
    assert "Traceback" not in text
    assert "\n" not in text.strip(), text
    return text


# -- The API: FargateCluster(...) --------------------------------------------------------

API = [
    # Issue 14's cases.
    ("public ip as text", {"assign_public_ip": "false"}, ["assign_public_ip must be True"]),
    ("environment as text", {"environment": "A=1"}, ["environment must be a mapping", "'A=1'"]),
    ("empty image", {"image": ""}, ["image must not be empty"]),
    ("duration not one", {"scheduler_timeout": "5 minutes please"}, ["scheduler_timeout"]),
    ("ids in one text", {"subnets": "subnet-a,subnet-b"}, ["each ID as its own list item"]),
    # Types.
    ("cpu as text", {"worker_cpu": "1024"}, ["worker_cpu must be a whole number"]),
    ("workers negative", {"n_workers": -1}, ["n_workers must be 0 or more"]),
    ("workers fraction", {"n_workers": 2.5}, ["n_workers must be a whole number"]),
    ("workers bool", {"n_workers": True}, ["n_workers must be a whole number"]),
    ("inside vpc as text", {"inside_vpc": "no"}, ["inside_vpc must be True or False"]),
    ("security as text", {"security": "false"}, ["security must be True or False"]),
    ("spot unknown", {"spot": "maybe"}, ["spot must be False, True or 'fallback'"]),
    ("subnet not text", {"subnets": [1]}, ["subnets must be a list of text"]),
    ("empty group", {"security_groups": ""}, ["security_groups must be a list of text"]),
    ("tags as list", {"tags": ["a"]}, ["tags must be a mapping"]),
    ("reserved tag", {"tags": {"aws:team": "x"}}, ["a prefix AWS reserves"]),
    ("secrets as text", {"secrets": "x"}, ["secrets must be a mapping"]),
    ("environment none", {"environment": {"A": None}}, ["'A' is None"]),
    ("credential in env", {"environment": {"AWS_SECRET_ACCESS_KEY": "x" * 40}}, ["secrets="]),
    ("cost negative", {"max_cost": -1}, ["max_cost must be a positive number"]),
    ("alert over limit", {"max_cost": 2, "cost_alert": 5}, ["must be below max_cost=2"]),
    ("lifetime", {"max_lifetime": "forever"}, ["max_lifetime must be a duration like '24h'"]),
    ("ttl as text", {"worker_ttl": "abc"}, ["worker_ttl must be a duration"]),
    ("timeout zero", {"running_timeout": 0}, ["running_timeout must be a positive number"]),
    ("region", {"region": "moon-east-1"}, ["unknown AWS region 'moon-east-1'"]),
    ("name", {"name": "has space"}, ["cluster name 'has space'"]),
    ("unknown option", {"worker_cores": 4}, ["did you mean worker_cpu?"]),
    ("image and software", {"image": "x", "software": "current"}, ["not both"]),
    ("architecture", {"architecture": "arm"}, ["ARM64"]),
    ("empty ecs cluster", {"ecs_cluster": ""}, ["ecs_cluster must not be empty"]),
    ("empty role", {"execution_role": ""}, ["execution_role must not be empty"]),
    ("spot discount", {"cost_spot_discount": 2}, ["cost_spot_discount must be below 1"]),
    ("confirm as text", {"confirm": "no"}, ["confirm must be True or False"]),
    ("confirm threshold", {"confirm_vcpus": -1}, ["confirm_vcpus must be a positive"]),
]

#: Refused after read-only AWS calls (prices, lookups), before anything is created.
API_AFTER_READS = [
    # Issue 14: a huge cluster in a process without a terminal is not started silently.
    ("huge cluster", {"n_workers": 100_000}, ConfirmationError, ["confirm=False", "100,000"]),
    ("hourly limit", {"max_hourly_cost": 0.0001}, ConfigurationError, ["max_hourly_cost"]),
    (
        "one subnet wrapped",  # issue 14: once split into characters ("subnet 'u'")
        {"subnets": "subnet-abc"},
        MissingResourceError,
        ["'subnet-abc'", "InvalidSubnetID", "starburst-dask setup"],
    ),
    ("no ecs cluster", {"ecs_cluster": "nosuch"}, MissingResourceError, ["'nosuch'"]),
]


@pytest.mark.parametrize("kwargs, words", [c[1:] for c in API], ids=[c[0] for c in API])
def test_a_bad_argument_is_refused_before_aws(local_fargate, untouched, kwargs, words):
    calls = local_fargate.project_calls.copy()
    with pytest.raises(ConfigurationError) as info:
        FargateCluster(**{"n_workers": 1, **kwargs})
    for word in words:
        assert word in one_line(str(info.value))
    assert local_fargate.project_calls == calls  # no AWS call at all


@pytest.mark.parametrize(
    "kwargs, error, words", [c[1:] for c in API_AFTER_READS], ids=[c[0] for c in API_AFTER_READS]
)
def test_a_bad_argument_found_by_reading_aws_creates_nothing(untouched, kwargs, error, words):
    with pytest.raises(error) as info:
        FargateCluster(**{"n_workers": 1, **kwargs})
    for word in words:
        assert word in one_line(str(info.value))


@pytest.mark.parametrize(
    "line, missing",
    [(f"subnets: [{STALE_SUBNET}]", STALE_SUBNET), ("ecs-cluster: gone", "'gone'")],
    ids=["subnets", "ecs cluster"],
)
def test_a_stale_setup_file_is_named_with_the_command_that_rewrites_it(
    untouched, tmp_path, line, missing
):
    # Issue 14: the file from a local Fargate that has since stopped.
    setup_file = tmp_path / "starburst-setup.yaml"
    setup_file.write_text(f"starburst:\n  {line}\n")
    with private_dask_config(tmp_path):
        dask.config.refresh()
        with pytest.raises(MissingResourceError) as info:
            FargateCluster(n_workers=1)
    said = one_line(str(info.value))
    assert missing in said and str(setup_file) in said and "starburst-dask setup" in said


def test_a_stale_setup_file_is_named_before_an_image_is_built(untouched, local_fargate, tmp_path):
    # A build creates ECR and CodeBuild resources: the account is checked before it.
    software = lock_with(tmp_path, "tini", "0.19.1")  # an image no test has built
    builds = local_fargate.client("codebuild").list_builds()["ids"]
    (tmp_path / "starburst-setup.yaml").write_text(f"starburst:\n  subnets: [{STALE_SUBNET}]\n")
    with private_dask_config(tmp_path):
        dask.config.refresh()
        with pytest.raises(MissingResourceError) as info:
            FargateCluster(n_workers=1, software=str(software))
    assert "starburst-setup.yaml" in one_line(str(info.value))
    assert local_fargate.client("codebuild").list_builds()["ids"] == builds


# -- dask config and DASK_STARBURST__* environment variables -----------------------------

CONFIG = [
    ("public ip", {"assign-public-ip": "sometimes"}, ['true, false or "auto"']),
    ("subnets number", {"subnets": 5}, ["starburst.subnets must be a list"]),
    ("cpu word", {"worker-cpu": "big"}, ["starburst.worker-cpu must be a whole number"]),
    ("cost word", {"cost.max-cost": "lots"}, ["starburst.cost.max-cost must be a number"]),
    ("mistyped key", {"max-cots": 5}, ["did you mean starburst.cost.max-cost?"]),
    ("environment text", {"environment": "A=1"}, ["starburst.environment must be a mapping"]),
    ("boolean word", {"inside-vpc": "perhaps"}, ["true or false (or yes/no, 1/0)"]),
    ("threshold", {"confirm.vcpus": -1}, ["starburst.confirm.vcpus must be a positive"]),
    ("null size", {"worker-memory": None}, ["starburst.worker-memory must be set"]),
]

ENVIRONMENT = [
    ("public ip", {"DASK_STARBURST__ASSIGN_PUBLIC_IP": "maybe"}, ['"auto"']),
    ("timeout", {"DASK_STARBURST__SCHEDULER_TIMEOUT": "soon"}, ["a duration like '5m'"]),
    ("ids in one", {"DASK_STARBURST__SUBNETS": "subnet-a,subnet-b"}, ["its own list item"]),
    ("workers", {"DASK_STARBURST__N_WORKERS": "many"}, ["a whole number"]),
    ("mistyped", {"DASK_STARBURST__COST__MAX_COTS": "5"}, ["did you mean"]),
    ("bool word", {"DASK_STARBURST__QUOTA__AUTO_REQUEST": "sure"}, ["true or false"]),
]


@contextlib.contextmanager
def environment(monkeypatch, variables):
    """These variables set, and dask config as dask reads them at import."""
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    with dask.config.set(dict(dotted(dask.config.collect_env(variables)))):
        yield


def dotted(tree, prefix=""):
    for key, value in tree.items():
        if isinstance(value, dict):
            yield from dotted(value, f"{prefix}{key}.")
        else:
            yield prefix + key, value


@pytest.mark.parametrize("values, words", [c[1:] for c in CONFIG], ids=[c[0] for c in CONFIG])
def test_a_bad_config_value_is_refused_before_aws(local_fargate, untouched, values, words):
    calls = local_fargate.project_calls.copy()
    with (
        dask.config.set({f"starburst.{k}": v for k, v in values.items()}),
        pytest.raises(ConfigurationError) as info,
    ):
        FargateCluster(n_workers=1)
    for word in words:
        assert word in one_line(str(info.value))
    assert local_fargate.project_calls == calls


@pytest.mark.parametrize(
    "variables, words", [c[1:] for c in ENVIRONMENT], ids=[c[0] for c in ENVIRONMENT]
)
def test_a_bad_environment_variable_is_named(
    local_fargate, untouched, monkeypatch, variables, words
):
    with environment(monkeypatch, variables), pytest.raises(ConfigurationError) as info:
        FargateCluster()
    said = one_line(str(info.value))
    for word in [*words, *(variables if "did you mean" not in words else [])]:
        assert word in said


def test_config_and_environment_spellings_are_parsed_not_truthy(monkeypatch):
    # Issue 14: "false" gave public IPs; "5m" and one subnet id raised or split.
    from starburst_dask.options import ClusterOptions

    variables = {
        "DASK_STARBURST__ASSIGN_PUBLIC_IP": "no",
        "DASK_STARBURST__INSIDE_VPC": "0",
        "DASK_STARBURST__SCHEDULER_TIMEOUT": "5m",
        "DASK_STARBURST__SUBNETS": "subnet-abc",
    }
    with environment(monkeypatch, variables):
        options = ClusterOptions.resolve(region="us-east-1")
    assert options.assign_public_ip is False and options.inside_vpc is False
    assert (options.scheduler_timeout, options.subnets) == (300, ("subnet-abc",))
    with dask.config.set({"starburst.assign-public-ip": "false"}):
        assert ClusterOptions.resolve(region="us-east-1").assign_public_ip is False
    given = ClusterOptions.resolve(region="us-east-1", subnets="subnet-abc", worker_ttl="1m")
    assert (given.subnets, given.worker_ttl) == (("subnet-abc",), 60)


# -- The command line --------------------------------------------------------------------

CLI = [
    # Issue 14's cases.
    ("quota lower", ["quota", "--request", "1"], {}, ["quota is 64 vCPU already"]),
    ("quota dead", ["quota"], {"AWS_ENDPOINT_URL": DEAD_ENDPOINT}, ["Could not connect"]),
    ("cost limit", ["cost", "--limit", "-1"], {}, ["-1 is not in the range"]),
    ("no repository", ["image", "ls", "--repository", "no-such-repo"], {}, ["does not exist"]),
    ("no cluster", ["cleanup", "--cluster", "nosuch"], {}, ["nosuch"]),
    ("render nothing", ["image", "render", "no-such-env.yml"], {}, ["neither a file"]),
    ("port range", ["local", "--port", "70000"], {}, ["70000 is not in the range"]),
    ("demo workers", ["demo", "--workers", "0"], {}, ["--workers"]),
    # More.
    ("quota zero", ["quota", "--request", "0"], {}, ["positive number of vCPUs"]),
    ("quota region", ["quota", "--region", "moon-east-1"], {}, ["unknown AWS region"]),
    ("ls region", ["ls", "--region", "moon-east-1"], {}, ["unknown AWS region"]),
    ("teardown region", ["teardown", "--region", "nowhere"], {}, ["unknown AWS region"]),
    ("bad repository", ["image", "ls", "--repository", "BAD NAME"], {}, ["(InvalidParameter"]),
    ("no command", ["nosuch"], {}, ["No such command"]),
    ("image region", ["image", "build", "current", "--region", "moon-1"], {}, ["moon-1"]),
    ("image ls region", ["image", "ls", "--region", "moon-1"], {}, ["unknown AWS region"]),
]

#: Commands given a bad config value (dask config), each one line.
CLI_CONFIG = [
    ("demo", ["demo"], {"worker-cpu": "big"}, "Error: starburst.worker-cpu must be"),
    ("doctor", ["doctor"], {"assign-public-ip": "x"}, "[fail] config: starburst.assign-public"),
    ("cleanup", ["cleanup", "--cluster", "x"], {"region": ""}, "Error: starburst.region must not"),
]


@pytest.mark.parametrize("args, env, words", [c[1:] for c in CLI], ids=[c[0] for c in CLI])
def test_a_bad_command_is_one_error_line(untouched, args, env, words):
    result = CliRunner().invoke(main, args, env=env)
    assert result.exit_code in (1, 2), result.output
    assert one_line(result.output).startswith("Error: ")
    for word in words:
        assert word in result.output


@pytest.mark.parametrize(
    "args, values, start", [c[1:] for c in CLI_CONFIG], ids=[c[0] for c in CLI_CONFIG]
)
def test_a_command_with_a_bad_config_value_says_so(untouched, args, values, start):
    with dask.config.set({f"starburst.{k}": v for k, v in values.items()}):
        result = CliRunner().invoke(main, args)
    assert result.exit_code == 1
    assert one_line(result.output).startswith(start), result.output


def test_image_commands_say_one_line(untouched, tmp_path):
    broken = tmp_path / "environment.yml"
    broken.write_text("dependencies: [unclosed\n")
    unreachable = tmp_path / "unreachable.yml"
    unreachable.write_text(f"channels: ['{DEAD_ENDPOINT}/channel']\ndependencies: [python]\n")
    for args, words in (
        (["image", "render", str(broken)], ["is not valid YAML", "line 2"]),
        (["image", "build", str(unreachable)], [f"{DEAD_ENDPOINT}/channel is out of reach"]),
    ):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 1 and "Traceback" not in result.output
        said = result.stderr.strip().splitlines()  # the progress lines, then one error
        assert said[-1].startswith("Error: ") and [s[:6] for s in said].count("Error:") == 1
        for word in words:
            assert word in said[-1]


def command(args, env):
    """``starburst-dask args`` in its own process (dask reads its config at import)."""
    return subprocess.run(
        [sys.executable, "-c", "from starburst_dask.cli import main; main()", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize("args", [["quota"], ["ls"], ["doctor"]])
def test_every_command_names_a_malformed_dask_config_file(untouched, tmp_path, args):
    (tmp_path / "broken.yaml").write_text("starburst:\n  region: [unclosed\n")
    run = command(args, {"DASK_CONFIG": str(tmp_path)})
    assert run.returncode == 1
    assert one_line(run.stderr).startswith("Error: A dask config file at ")
    assert "broken.yaml" in run.stderr


def test_a_port_in_use_is_one_error_line(tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        run = command(["local", "--port", str(taken.getsockname()[1])], {})
    assert run.returncode == 1 and one_line(run.stderr).startswith("Error: cannot serve on")


def test_the_demo_names_a_stale_setup_file(tmp_path):
    # Issue 14: a file from a local Fargate that has since stopped broke the demo with a
    # traceback that did not mention it. The demo runs its own local Fargate.
    (tmp_path / "starburst-setup.yaml").write_text(f"starburst:\n  subnets: [{STALE_SUBNET}]\n")
    run = command(["demo", "--workers", "1"], {"DASK_CONFIG": str(tmp_path)})
    assert run.returncode == 1 and "Traceback" not in run.stderr
    said = run.stderr.strip().splitlines()[-1]
    assert said.startswith("Error: ") and STALE_SUBNET in said
    assert str(tmp_path / "starburst-setup.yaml") in said and "starburst-dask setup" in said


def test_a_task_role_with_which_workers_cannot_find_their_scheduler_is_refused(
    local_fargate, untouched
):
    # Workers look up their scheduler's address with the task role (DescribeTasks): a
    # role without that permission would leave every worker without a scheduler.
    iam = local_fargate.client("iam")
    trust = json.dumps(TRUST_ECS_TASKS)
    iam.create_role(RoleName="bare-task-role", AssumeRolePolicyDocument=trust)
    with pytest.raises(ConfigurationError) as info:
        FargateCluster(n_workers=1, task_role="bare-task-role")
    said = one_line(str(info.value))
    assert "the task role bare-task-role may not describe the ECS cluster's tasks" in said
    assert "run: starburst-dask setup again" in said
    assert '"Action": "ecs:DescribeTasks"' in said
    assert ':task/starburst-dask/*"' in said
