"""setup, doctor, ls, cleanup, teardown, and clusters that stop themselves, on a local Fargate.

One fresh, unprepared local Fargate for the module: ``setup`` creates everything. The
dask config file setup writes goes to a temporary ``DASK_CONFIG`` directory.
"""

import json
import os
import re
import selectors
import signal
import subprocess
import sys
import time

import dask.config
import psutil
import pytest
from click.testing import CliRunner
from distributed import Client
from helpers import PYTHON_IMAGE, private_dask_config, wait_until

from starburst_dask import FargateCluster
from starburst_dask.admin.config_file import CONFIG_FILE
from starburst_dask.admin.managed import MANAGED_TAG
from starburst_dask.admin.roles import TRUST_ECS_TASKS
from starburst_dask.cli import main
from starburst_dask.errors import ConfigurationError
from starburst_dask.local import LocalFargate

ECS_CLUSTER = "starburst-dask"

#: A client that starts a cluster, says "ready" with its task ARNs, and waits to be killed.
CLIENT = """
import json, sys, time
from distributed import Client
from starburst_dask import FargateCluster
cluster = FargateCluster(n_workers=1, scheduler_timeout=float(sys.argv[1]),
                         worker_death_timeout=5, poll_interval=0.5, name=sys.argv[2])
client = Client(cluster)
client.wait_for_workers(1, timeout=120)
arns = [cluster.scheduler.task_arn] + [w.task_arn for w in cluster.workers.values()]
print("ready", json.dumps(arns), flush=True)
time.sleep(3600)
"""


@pytest.fixture(scope="module")
def aws(tmp_path_factory):
    """An unprepared local Fargate, and a dask config directory of our own."""
    directory = tmp_path_factory.mktemp("dask-config")
    with private_dask_config(directory), LocalFargate(prepare=False) as fargate:
        fargate.config_dir = directory
        yield fargate


@pytest.fixture
def set_up(aws):
    """What setup creates (idempotent: usually there already), read into dask config."""
    from starburst_dask.admin.setup import setup

    setup(allow_cidrs=["127.0.0.1/32"])  # this machine, outside the VPC, runs the clients
    dask.config.refresh()
    return aws


def cli(*args, input=None):
    result = CliRunner().invoke(main, list(args), input=input, catch_exceptions=False)
    return result


def inventory(aws):
    """Every resource setup may create, with its settings, across services."""
    iam, ec2 = aws.client("iam"), aws.client("ec2")
    roles = {
        r["RoleName"]: sorted(iam.list_role_policies(RoleName=r["RoleName"])["PolicyNames"])
        for r in iam.list_roles()["Roles"]
    }
    groups = {
        g["GroupId"]: (g["GroupName"], g["IpPermissions"])
        for g in ec2.describe_security_groups()["SecurityGroups"]
    }
    path = aws.config_dir / CONFIG_FILE
    return {
        "clusters": aws.client("ecs").list_clusters()["clusterArns"],
        "roles": roles,
        "log groups": [
            (g["logGroupName"], g.get("retentionInDays"))
            for g in aws.client("logs").describe_log_groups()["logGroups"]
        ],
        "security groups": groups,
        "repositories": [
            r["repositoryName"] for r in aws.client("ecr").describe_repositories()["repositories"]
        ],
        "config": path.read_text() if path.exists() else None,
    }


def running(aws, arns):
    described = aws.client("ecs").describe_tasks(cluster=ECS_CLUSTER, tasks=arns)["tasks"]
    return [t["taskArn"] for t in described if t["lastStatus"] != "STOPPED"]


def processes_left(aws, arns):
    pids = [r["pid"] for r in aws.task_records() if r["arn"] in arns and r["pid"]]
    return [
        p
        for p in pids
        if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE
    ]


def start_client(aws, name, scheduler_timeout):
    """A client process running a cluster; returns it and its tasks' ARNs once ready."""
    env = {**os.environ, **aws.env}
    process = subprocess.Popen(
        [sys.executable, "-c", CLIENT, str(scheduler_timeout), name],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while time.monotonic() < deadline and process.poll() is None:
            if selector.select(timeout=1):
                line = process.stdout.readline()
                if line.startswith("ready"):
                    return process, json.loads(line.split(" ", 1)[1])
    process.kill()
    raise AssertionError(f"client did not get ready (exit code {process.poll()})")


def test_doctor_fails_before_setup_and_names_the_fix(aws):
    result = cli("doctor")
    assert result.exit_code == 1
    assert "[fail] ECS cluster: 'starburst-dask' does not exist" in result.output
    assert "run: starburst-dask setup" in result.output
    assert "[  ok] credentials" in result.output


def test_setup_twice_creates_once_and_never_opens_to_the_world(aws):
    assert cli("setup", "--allow-cidr", "0.0.0.0/0").exit_code == 1  # refused up front
    before = inventory(aws)
    first = cli("setup", "--allow-cidr", "203.0.113.7/32")
    assert first.exit_code == 0, first.output
    # A number, or "unknown" where Service Quotas does not know Fargate (stock moto).
    assert re.search(r"Fargate vCPU quota \(us-east-1\): (unknown|\d+)", first.output)
    after_first = inventory(aws)
    assert after_first != before

    second = cli("setup", "--allow-cidr", "203.0.113.7/32", "--json")
    assert second.exit_code == 0, second.output
    report = json.loads(second.stdout)
    assert report["changed"] is False
    assert {r["status"] for r in report["resources"]} == {"exists"}
    assert report["fargate_vcpu_quota"] is None or report["fargate_vcpu_quota"] >= 0
    assert inventory(aws) == after_first  # the AWS resources say the same
    assert after_first["roles"]["starburst-dask-execution"] == [
        "starburst-dask-execution",
        "starburst-dask-secrets",
    ]

    [group_id] = report["settings"]["security-groups"]
    [group] = aws.client("ec2").describe_security_groups(GroupIds=[group_id])["SecurityGroups"]
    sources = {
        (p.get("FromPort"), r.get("CidrIp") or r.get("CidrIpv6"))
        for p in group["IpPermissions"]
        for r in p["IpRanges"] + p["Ipv6Ranges"]
    }
    # The caller's network to the scheduler and dashboard; the cluster's tasks to each
    # other (the group itself); nothing else.
    assert sources == {(8786, "203.0.113.7/32")}
    # Only the dask ports, pinned, from the group itself: not all traffic.
    assert [
        (p["IpProtocol"], p["FromPort"], p["ToPort"], p["UserIdGroupPairs"][0]["GroupId"])
        for p in group["IpPermissions"]
        if p["UserIdGroupPairs"]
    ] == [("tcp", 8786, 8790, group_id)]
    assert report["settings"]["assign-public-ip"] is True  # default subnets route to an IGW
    assert {"Key": MANAGED_TAG[0], "Value": MANAGED_TAG[1]} in group["Tags"]
    subnets = aws.client("ec2").describe_subnets(SubnetIds=report["settings"]["subnets"])
    assert len({s["AvailabilityZone"] for s in subnets["Subnets"]}) >= 2
    ecs = aws.client("ecs").describe_clusters(clusters=[ECS_CLUSTER], include=["TAGS"])
    assert {"key": MANAGED_TAG[0], "value": MANAGED_TAG[1]} in ecs["clusters"][0]["tags"]


def test_setup_narrows_all_traffic_within_to_the_dask_ports(aws, set_up):
    """A group set up before the ports were pinned admits all traffic from itself."""
    ec2 = aws.client("ec2")
    [group_id] = dask.config.get("starburst.security-groups")
    within = {"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": group_id}]}
    ec2.authorize_security_group_ingress(GroupId=group_id, IpPermissions=[within])

    result = cli("setup", "--allow-cidr", "127.0.0.1/32", "--json")
    assert result.exit_code == 0, result.output
    [group] = ec2.describe_security_groups(GroupIds=[group_id])["SecurityGroups"]
    assert sorted(
        (p["IpProtocol"], p.get("FromPort"), p.get("ToPort"))
        for p in group["IpPermissions"]
        if p["UserIdGroupPairs"]
    ) == [("tcp", 8786, 8790)]
    assert json.loads(result.stdout)["changed"] is True


def test_doctor_passes_after_setup(aws, set_up):
    result = cli("doctor", "--json")
    assert result.exit_code == 0, result.output
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    assert "Fargate vCPU quota" in checks  # "unknown" would be a warning
    assert json.loads(result.output)["ok"] is True
    for name in (
        "ECS cluster",
        "IAM execution role",
        "IAM task role",
        "log group",
        "subnets",
        "security group",
        "ECR repository",
    ):
        assert checks[name]["status"] == "ok", checks[name]
    assert {c["status"] for c in checks.values()} <= {"ok", "warn"}


def test_the_execution_role_reads_the_projects_secrets_only(aws, set_up):
    """setup lets the execution role read starburst-dask/* secrets and nothing else; doctor
    fails without it, and setup puts it back."""
    from starburst_dask.admin.setup import setup

    iam = aws.client("iam")
    role, policy = "starburst-dask-execution", "starburst-dask-secrets"
    document = iam.get_role_policy(RoleName=role, PolicyName=policy)["PolicyDocument"]
    assert document["Statement"] == [
        {
            "Effect": "Allow",
            "Action": "secretsmanager:GetSecretValue",
            "Resource": "arn:aws:secretsmanager:us-east-1:123456789012:secret:starburst-dask/*",
        }
    ]
    iam.delete_role_policy(RoleName=role, PolicyName=policy)
    result = cli("doctor")
    assert result.exit_code == 1
    assert "may not read the project's secrets (starburst-dask/*)" in result.output
    setup(allow_cidrs=["127.0.0.1/32"])
    assert policy in iam.list_role_policies(RoleName=role)["PolicyNames"]
    assert cli("doctor").exit_code == 0


def test_the_task_role_describes_the_clusters_tasks_only(aws, set_up):
    """setup lets the task role describe its ECS cluster's tasks (workers find their
    scheduler with it) and nothing more; doctor fails without it, a cluster is refused
    before it launches anything, and setup puts it back."""
    from starburst_dask.admin.setup import setup

    iam = aws.client("iam")
    role, policy = "starburst-dask-task", "starburst-dask-find-scheduler"
    document = iam.get_role_policy(RoleName=role, PolicyName=policy)["PolicyDocument"]
    assert document["Statement"] == [
        {
            "Effect": "Allow",
            "Action": "ecs:DescribeTasks",
            "Resource": "arn:aws:ecs:us-east-1:123456789012:task/starburst-dask/*",
        }
    ]
    assert iam.list_role_policies(RoleName=role)["PolicyNames"] == [policy]
    iam.delete_role_policy(RoleName=role, PolicyName=policy)
    result = cli("doctor")
    assert result.exit_code == 1
    assert "workers could not find their scheduler (ecs:DescribeTasks)" in result.output
    runs = aws.calls["RunTask"]
    with pytest.raises(ConfigurationError, match="may not describe the ECS cluster's tasks"):
        FargateCluster(n_workers=1)
    assert aws.calls["RunTask"] == runs
    setup(allow_cidrs=["127.0.0.1/32"])
    assert policy in iam.list_role_policies(RoleName=role)["PolicyNames"]
    assert cli("doctor").exit_code == 0


def test_cluster_needs_no_arguments_after_setup(aws, set_up):
    written = dask.config.get("starburst.security-groups")
    with (
        dask.config.set({"starburst.n-workers": 1, "starburst.poll-interval": 0.5}),
        FargateCluster() as cluster,
        Client(cluster) as client,
    ):
        assert list(cluster.options.security_groups) == written
        assert client.submit(sum, [1, 2, 3]).result() == 6


def test_cluster_of_a_killed_client_stops_itself(aws, set_up):
    process, arns = start_client(aws, "killed-client", scheduler_timeout=5)
    process.send_signal(signal.SIGKILL)
    process.wait()
    # The scheduler exits 5 s after its client is gone, then workers follow at once
    # (within their 5 s death timeout at most); the rest is slack for polls and load.
    wait_until(lambda: running(aws, arns) == [], timeout=5 + 5 + 30)
    wait_until(lambda: processes_left(aws, arns) == [], timeout=30)


def scheduler_log(aws, arn):
    stream = f"starburst-dask/dask/{arn.rsplit('/', 1)[1]}"
    events = aws.client("logs").get_log_events(
        logGroupName="/starburst-dask", logStreamName=stream
    )["events"]
    return "\n".join(e["message"] for e in events)


def test_max_lifetime_stops_a_cluster_whose_client_is_alive(aws, set_up):
    # An idle timeout far below the lifetime: a connected client keeps the scheduler up.
    # (Long enough for the client to connect on a busy machine: with no client yet, the
    # scheduler goes at its idle timeout.)
    with (
        FargateCluster(
            n_workers=1, scheduler_timeout=10, max_lifetime=30, poll_interval=0.5
        ) as cluster,
        Client(cluster) as client,
    ):
        client.wait_for_workers(1, timeout=60)
        arns = [cluster.scheduler.task_arn] + [w.task_arn for w in cluster.workers.values()]
        wait_until(lambda: running(aws, arns) == [], timeout=60)
    assert processes_left(aws, arns) == []
    log = scheduler_log(aws, arns[0])
    assert "Reason: starburst-dask max-lifetime reached" in log, log
    assert "Reason: idle-timeout-exceeded" not in log


def test_ls_and_cleanup_stop_only_the_projects_orphans(aws, set_up):
    ecs = aws.client("ecs")
    [foreign] = [
        t["taskArn"]
        for t in ecs.run_task(
            cluster=ECS_CLUSTER,
            taskDefinition=sleeper(aws),
            launchType="FARGATE",
            networkConfiguration={
                "awsvpcConfiguration": {"subnets": dask.config.get("starburst.subnets")}
            },
        )["tasks"]
    ]
    try:
        process, arns = start_client(aws, "orphaned", scheduler_timeout=600)
        process.send_signal(signal.SIGKILL)
        process.wait()

        listed = json.loads(cli("ls", "--json").output)
        assert [(c["name"], c["tasks"]) for c in listed] == [
            ("orphaned", {"scheduler": 1, "worker": 1})
        ]
        assert listed[0]["cost_usd"] is None or listed[0]["cost_usd"] > 0
        assert sorted(listed[0]["task_arns"]) == sorted(arns)  # not the foreign task

        young = cli("cleanup")  # younger than the default 2h, scheduler alive
        assert young.exit_code == 0 and "Nothing to clean up" in young.output
        unknown = cli("cleanup", "--cluster", "nosuch", "--yes")
        assert unknown.exit_code == 1
        assert unknown.output.startswith("Error: no cluster named nosuch has tasks")
        assert sorted(running(aws, arns)) == sorted(arns)  # nothing was stopped
        dry = cli("cleanup", "--older-than", "0s")
        assert "orphaned" in dry.output and "Dry run" in dry.output
        assert sorted(running(aws, arns)) == sorted(arns)

        done = cli("cleanup", "--older-than", "0s", "--yes")
        assert done.exit_code == 0 and "Stopped 2 tasks" in done.output
        wait_until(lambda: running(aws, arns) == [], timeout=60)
        wait_until(lambda: processes_left(aws, arns) == [], timeout=30)
        assert running(aws, [foreign]) == [foreign]  # never ours to stop
        assert "No running clusters" in cli("ls").output
    finally:
        ecs.stop_task(cluster=ECS_CLUSTER, task=foreign, reason="test over")
    wait_until(lambda: running(aws, [foreign]) == [], timeout=60)


def test_teardown_deletes_only_what_setup_created(aws, set_up):
    assert cli("teardown", input="n\n").exit_code == 1  # declined: nothing deleted
    assert inventory(aws)["clusters"]
    # (With tasks running, teardown refuses: tests/test_teardown.py.)
    result = cli("teardown", "--yes")
    assert result.exit_code == 0, result.output
    left = inventory(aws)
    # ECS's service-linked role is AWS's, shared by every cluster of the account: kept.
    assert left["roles"] == {"AWSServiceRoleForECS": []}
    assert left["log groups"] == [] and left["repositories"] == []
    assert [name for name, _ in left["security groups"].values()] == ["default"]
    assert left["config"] is None
    assert ecs_active(aws) == []

    # A role of setup's name that setup did not create is used as it is, and kept.
    # (A role, not a log group: moto keeps a deleted log group's tags for its successor.)
    aws.client("iam").create_role(
        RoleName="starburst-dask-task", AssumeRolePolicyDocument=json.dumps(TRUST_ECS_TASKS)
    )
    refused = cli("setup", "--s3-bucket", "data")  # cannot be applied to it: an error
    assert refused.exit_code == 1 and "--s3-bucket data cannot be applied" in refused.output
    again = json.loads(cli("setup", "--json").stdout)
    assert {
        "kind": "IAM role",
        "name": "starburst-dask-task",
        "status": "exists, not managed",
        "detail": "",
    } in again["resources"]
    assert cli("teardown", "--yes").exit_code == 0
    assert inventory(aws)["roles"] == {
        "AWSServiceRoleForECS": [],
        "starburst-dask-task": [],
    }  # no S3 policy added


def sleeper(aws):
    """A task definition whose task sleeps ten minutes: a task, but no dask."""
    return aws.client("ecs").register_task_definition(
        family="not-starburst",
        networkMode="awsvpc",
        requiresCompatibilities=["FARGATE"],
        cpu="256",
        memory="512",
        containerDefinitions=[
            {
                "name": "app",
                "image": PYTHON_IMAGE,
                "essential": True,
                "command": ["python", "-c", "import time; time.sleep(600)"],
            }
        ],
    )["taskDefinition"]["taskDefinitionArn"]


def ecs_active(aws):
    clusters = aws.client("ecs").list_clusters()["clusterArns"]
    if not clusters:
        return []
    described = aws.client("ecs").describe_clusters(clusters=clusters)["clusters"]
    return [c["clusterName"] for c in described if c["status"] == "ACTIVE"]
