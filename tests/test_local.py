"""The local Fargate, through unmodified boto3 clients: real task processes, AWS's answers."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import boto3
import psutil
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from distributed import Client
from helpers import DASK_IMAGE, PYTHON_IMAGE

import starburst_dask.local
from starburst_dask import fargate
from starburst_dask.admin.roles import TRUST_ECS_TASKS
from starburst_dask.ecs import tasks
from starburst_dask.ecs.tasks import NANNY_PORT, WORKER_PORT
from starburst_dask.local import LocalFargate
from starburst_dask.options import ClusterOptions

CLUSTER = "starburst-dask"
LOG_GROUP = "/starburst-dask"
SLEEP = ["python", "-c", "import time; time.sleep(600)"]
# Reports the address the task finds for itself: distributed's "route out" trick and a
# wildcard bind, as servers do.
SHOW_ADDRESS = (
    "import socket, time; from distributed.utils import get_ip; "
    "s = socket.socket(); s.bind(('0.0.0.0', 0)); "
    "print('address', get_ip(), s.getsockname()[0], flush=True); time.sleep(600)"
)


def wait_until(predicate, timeout=60.0, interval=0.2):
    """Poll ``predicate`` until it returns something true; fail after ``timeout`` s (ample:
    other test modules run at once on the same cores)."""
    deadline = time.monotonic() + timeout
    while not (result := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)
    return result


def describe(ecs, arns):
    return ecs.describe_tasks(cluster=CLUSTER, tasks=arns)["tasks"]


def wait_status(ecs, arns, status, timeout=60.0):
    """Wait until every task in ``arns`` has ``lastStatus == status``; return them."""
    return wait_until(
        lambda: (
            (tasks := describe(ecs, arns))
            and all(t["lastStatus"] == status for t in tasks)
            and tasks
        ),
        timeout,
    )


def register(ecs, command, family="probe", log_group=LOG_GROUP, **container):
    """A Fargate task definition as the cluster writes one: task-level size only."""
    definition = {
        "name": "main",
        "image": DASK_IMAGE,  # dask's image: what the cluster runs
        "command": command,
        "logConfiguration": {
            "logDriver": "awslogs",
            "options": {
                "awslogs-group": log_group,
                "awslogs-stream-prefix": "probe",
                "awslogs-region": "us-east-1",
            },
        },
        **container,
    }
    # awslogs on Fargate needs the execution role (prepare() made it).
    role = boto3.client("iam").get_role(RoleName="starburst-dask-execution")["Role"]["Arn"]
    return ecs.register_task_definition(
        family=family,
        requiresCompatibilities=["FARGATE"],
        networkMode="awsvpc",
        cpu="256",
        memory="512",
        executionRoleArn=role,
        containerDefinitions=[definition],
    )["taskDefinition"]["taskDefinitionArn"]


def subnets():
    found = boto3.client("ec2").describe_subnets(
        Filters=[{"Name": "default-for-az", "Values": ["true"]}]
    )["Subnets"]
    return [s["SubnetId"] for s in found]


def run(ecs, definition, count=1, public=True, groups=None, **kwargs):
    """RunTask without security groups (optional on AWS: the VPC default applies).

    With a public IP by default: the default subnets route to an internet gateway, which
    a task reaches (to pull its image, send its logs) only with one.
    """
    if "capacityProviderStrategy" not in kwargs:
        kwargs.setdefault("launchType", "FARGATE")
    config = {"subnets": subnets()[:1], "assignPublicIp": "ENABLED" if public else "DISABLED"}
    if groups:
        config["securityGroups"] = groups
    response = ecs.run_task(
        cluster=CLUSTER,
        taskDefinition=definition,
        count=count,
        networkConfiguration={"awsvpcConfiguration": config},
        **kwargs,
    )
    assert response["failures"] == []
    return response["tasks"]


def log_lines(task_arn):
    """The task's CloudWatch log stream (``prefix/container/task-id``), as far as written."""
    stream = f"probe/main/{task_arn.rsplit('/', 1)[1]}"
    try:
        events = boto3.client("logs").get_log_events(logGroupName=LOG_GROUP, logStreamName=stream)
    except ClientError as error:  # not created yet: the task has not started
        assert error.response["Error"]["Code"] == "ResourceNotFoundException"
        return []
    return [e["message"] for e in events["events"]]


def details(task):
    return {d["name"]: d["value"] for d in task["attachments"][0]["details"]}


def gone(pid):
    """The process has exited (a zombie awaiting its reaper counts as gone)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def error_of(call, **kwargs):
    with pytest.raises(ClientError) as info:
        call(**kwargs)
    return info.value.response


# Runs first, before the module's shared emulator exists: only one runs at a time.
def test_start_sets_environment_and_stop_ends_tasks_and_restores_it(monkeypatch):
    monkeypatch.setenv("AWS_PROFILE", "someone")
    monkeypatch.setenv("AWS_ENDPOINT_URL_ECS", "https://elsewhere.invalid")
    before = dict(os.environ)
    with LocalFargate() as aws:
        assert {k: os.environ[k] for k in aws.env} == aws.env
        assert aws.env["AWS_ENDPOINT_URL"] == aws.endpoint_url
        assert "AWS_PROFILE" not in os.environ and "AWS_ENDPOINT_URL_ECS" not in os.environ
        ecs = boto3.client("ecs")
        arn = run(ecs, register(ecs, SLEEP))[0]["taskArn"]
        wait_status(ecs, [arn], "RUNNING")
        pid = aws.task_records()[0]["pid"]
        assert not gone(pid)
    assert gone(pid)  # stop() waited for it
    assert dict(os.environ) == before
    # Start again: a fresh account, prepared again.
    with LocalFargate() as aws:
        ecs = boto3.client("ecs")
        assert ecs.list_tasks(cluster=CLUSTER, desiredStatus="STOPPED")["taskArns"] == []
        assert aws.task_records() == []


def test_prepare_creates_what_a_cluster_needs(local_fargate):
    local_fargate.prepare()  # idempotent
    cluster = boto3.client("ecs").describe_clusters(clusters=[CLUSTER])["clusters"][0]
    assert cluster["capacityProviders"] == list(fargate.CAPACITY_PROVIDERS)
    iam = boto3.client("iam")
    role = iam.get_role(RoleName="starburst-dask-execution")["Role"]
    principal = role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"]
    assert principal == {"Service": "ecs-tasks.amazonaws.com"}
    iam.get_role(RoleName="starburst-dask-task")
    groups = boto3.client("logs").describe_log_groups(logGroupNamePrefix=LOG_GROUP)
    assert [g["logGroupName"] for g in groups["logGroups"]] == [LOG_GROUP]
    assert len(subnets()) >= 2
    default = boto3.client("ec2").describe_security_groups(
        Filters=[{"Name": "group-name", "Values": ["default"]}]
    )["SecurityGroups"]
    assert default


def test_short_task_runs_its_command_and_reports_its_lifecycle(local_fargate):
    ecs = boto3.client("ecs")
    definition = register(ecs, ["python", "-c", "print('hello')"])
    launched = run(ecs, definition)[0]
    assert launched["lastStatus"] == "PROVISIONING"
    assert launched["desiredStatus"] == "RUNNING"
    task = wait_status(ecs, [launched["taskArn"]], "STOPPED")[0]
    container = task["containers"][0]
    assert (container["lastStatus"], container["exitCode"]) == ("STOPPED", 0)
    assert task["desiredStatus"] == "STOPPED"
    assert task["stopCode"] == "EssentialContainerExited"
    assert task["stoppedReason"] == "Essential container in task exited"
    times = [task[k] for k in ("createdAt", "pullStartedAt", "pullStoppedAt", "startedAt")]
    assert times == sorted(times) and times[-1] <= task["stoppingAt"] <= task["stoppedAt"]
    assert (task["cpu"], task["memory"]) == ("256", "512")
    assert (task["launchType"], task["platformVersion"]) == ("FARGATE", "1.4.0")
    subnet = boto3.client("ec2").describe_subnets(SubnetIds=[details(task)["subnetId"]])
    assert task["availabilityZone"] == subnet["Subnets"][0]["AvailabilityZone"]
    assert log_lines(task["taskArn"]) == ["hello"]


def test_overrides_environment_and_exit_code(local_fargate):
    ecs = boto3.client("ecs")
    script = "import os, sys; print(os.environ['GREETING']); sys.exit(int(os.environ['CODE']))"
    definition = register(
        ecs, ["python", "-c", "print('not me')"], environment=[{"name": "GREETING", "value": "hi"}]
    )
    override = {"name": "main", "command": ["python", "-c", script]}
    override["environment"] = [{"name": "CODE", "value": "3"}]
    launched = run(
        ecs,
        definition,
        capacityProviderStrategy=[{"capacityProvider": "FARGATE_SPOT", "weight": 1}],
        overrides={"containerOverrides": [override]},
    )[0]
    task = wait_status(ecs, [launched["taskArn"]], "STOPPED")[0]
    assert task["containers"][0]["exitCode"] == 3
    assert task["capacityProviderName"] == "FARGATE_SPOT"
    assert log_lines(task["taskArn"]) == ["hi"]


def test_task_reads_its_metadata_endpoint(local_fargate):
    ecs = boto3.client("ecs")
    script = (
        "import json, os, urllib.request\n"
        "uri = os.environ['ECS_CONTAINER_METADATA_URI_V4']\n"
        "task = json.load(urllib.request.urlopen(uri + '/task'))\n"
        "container = json.load(urllib.request.urlopen(uri))\n"
        "print(task['TaskARN'], task['Limits'], container['Networks'][0]['IPv4Addresses'])\n"
    )
    arn = run(ecs, register(ecs, ["python", "-c", script]))[0]["taskArn"]
    task = wait_status(ecs, [arn], "STOPPED")[0]
    assert task["containers"][0]["exitCode"] == 0
    ip = details(task)["privateIPv4Address"]
    assert log_lines(arn) == [f"{arn} {{'CPU': 0.25, 'Memory': 512}} ['{ip}']"]


# Calls AWS from inside a task with the SDK, as users' code on a worker does.
CALL_AWS = (
    "import json, os, urllib.request, boto3\n"
    "from botocore.exceptions import ClientError, NoCredentialsError\n"
    "uri = os.environ['ECS_CONTAINER_METADATA_URI_V4']\n"
    "task = json.load(urllib.request.urlopen(uri + '/task'))\n"
    "def call(what, f):\n"
    "    try:\n"
    "        print(what, f(), flush=True)\n"
    "    except ClientError as error:\n"
    "        print(what, error.response['Error']['Code'], error.response['Error']['Message'])\n"
    "    except NoCredentialsError as error:\n"
    "        print(what, 'NoCredentialsError', error, flush=True)\n"
    "ecs = boto3.client('ecs')\n"
    "call('caller', lambda: boto3.client('sts').get_caller_identity()['Arn'])\n"
    "call('own task', lambda: ecs.describe_tasks(\n"
    "    cluster=task['Cluster'], tasks=[task['TaskARN']])['tasks'][0]['lastStatus'])\n"
    "call('clusters', lambda: ecs.list_clusters()['clusterArns'])\n"
    "key = boto3.Session().get_credentials()\n"
    "forged = key and boto3.client('ecs', aws_access_key_id=key.access_key,\n"
    "    aws_secret_access_key='not-the-secret', aws_session_token=key.token)\n"
    "call('wrong secret', lambda: forged and forged.describe_tasks(\n"
    "    cluster=task['Cluster'], tasks=[task['TaskARN']])['tasks'][0]['lastStatus'])\n"
)


def task_role(name, statements):
    """A role ECS tasks may assume, with one inline policy of ``statements``."""
    iam = boto3.client("iam")
    trust = json.dumps(TRUST_ECS_TASKS)
    arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust)["Role"]["Arn"]
    policy = {"Version": "2012-10-17", "Statement": statements}
    iam.put_role_policy(RoleName=name, PolicyName="calls", PolicyDocument=json.dumps(policy))
    return arn


def test_a_task_calls_aws_with_its_task_role_only(local_fargate):
    """The SDK in a task finds the task role's credentials (the container credentials
    endpoint); what the role's policy allows works, the rest is AccessDenied as ECS words
    it; no credentials of the host's reach the task."""
    ecs = boto3.client("ecs")
    describe_own = {
        "Effect": "Allow",
        "Action": "ecs:DescribeTasks",
        "Resource": f"arn:aws:ecs:*:*:task/{CLUSTER}/*",
    }
    role = task_role("probe-describe-tasks", [describe_own])
    boto3_image = [{"name": "EXTRA_PIP_PACKAGES", "value": "boto3"}]
    definition = register(ecs, ["python", "-c", CALL_AWS], environment=boto3_image)

    def run_once_propagated():  # ECS refuses a new role until IAM has propagated it
        try:
            return run(ecs, definition, overrides={"taskRoleArn": role})[0]["taskArn"]
        except ClientError as error:
            assert "ECS was unable to assume the role" in str(error)
            return None

    with_role = wait_until(run_once_propagated, timeout=30, interval=1)
    without = run(ecs, definition)[0]["taskArn"]
    wait_status(ecs, [with_role, without], "STOPPED", timeout=60)
    task_id = with_role.rsplit("/", 1)[1]
    account = boto3.client("sts").get_caller_identity()["Account"]
    assert log_lines(with_role) == [
        f"caller arn:aws:sts::{account}:assumed-role/probe-describe-tasks/{task_id}",
        "own task RUNNING",
        f"clusters AccessDeniedException User: arn:aws:sts::{account}:assumed-role/"
        f"probe-describe-tasks/{task_id} is not authorized to perform: ecs:ListClusters on "
        "resource: * because no identity-based policy allows the ecs:ListClusters action",
        "wrong secret InvalidSignatureException The request signature we calculated does not "
        "match the signature you provided. Check your AWS Secret Access Key and signing method. "
        "Consult the service documentation for details.",
    ]
    caller, *rest = log_lines(without)
    assert caller.startswith("caller NoCredentialsError Unable to locate credentials")


def test_a_worker_whose_running_scheduler_refuses_connections_ends_saying_why(local_fargate):
    """The product's worker boot finds its scheduler's address with the task role, waits
    for it to accept connections, and gives up after its death timeout once the
    scheduler's task runs (a task that never listens here), with the reason."""
    ecs, iam = boto3.client("ecs"), boto3.client("iam")
    role = iam.get_role(RoleName="starburst-dask-task")["Role"]["Arn"]
    scheduler = run(ecs, register(ecs, SLEEP, family="silent"))[0]["taskArn"]
    options = ClusterOptions.resolve(worker_death_timeout=3, security=False)
    worker = run(
        ecs,
        register(ecs, tasks.worker_command(options), family="worker"),
        overrides={
            "taskRoleArn": role,
            "containerOverrides": [
                {
                    "name": "main",
                    "environment": [
                        {"name": k, "value": v}
                        for k, v in tasks.worker_environment(scheduler).items()
                    ],
                }
            ],
        },
    )[0]["taskArn"]
    stopped = wait_status(ecs, [worker], "STOPPED", timeout=60)[0]
    assert stopped["containers"][0]["exitCode"] == 1
    ip = details(describe(ecs, [scheduler])[0])["privateIPv4Address"]
    assert log_lines(worker)[-1] == (
        f"the scheduler's task runs, but {ip}:8786 refused connections for 3 s: does the "
        "security group admit the cluster's tasks?"
    )
    ecs.stop_task(cluster=CLUSTER, task=scheduler)


def test_stop_task_sends_sigterm_and_lists_follow_desired_status(local_fargate):
    ecs = boto3.client("ecs")
    script = (
        "import signal, sys, time\n"
        "signal.signal(signal.SIGTERM, lambda *_: (print('bye', flush=True), sys.exit(0)))\n"
        "print('ready', flush=True)\n"
        "time.sleep(600)\n"
    )
    arn = run(ecs, register(ecs, ["python", "-c", script]))[0]["taskArn"]
    wait_until(lambda: "ready" in log_lines(arn))
    assert arn in ecs.list_tasks(cluster=CLUSTER)["taskArns"]  # RUNNING by default
    stopped = ecs.stop_task(cluster=CLUSTER, task=arn, reason="enough")["task"]
    assert stopped["desiredStatus"] == "STOPPED"
    task = wait_status(ecs, [arn], "STOPPED")[0]
    assert (task["stopCode"], task["stoppedReason"]) == ("UserInitiated", "enough")
    assert task["containers"][0]["exitCode"] == 0
    assert log_lines(arn) == ["ready", "bye"]
    assert arn not in ecs.list_tasks(cluster=CLUSTER)["taskArns"]
    assert arn in ecs.list_tasks(cluster=CLUSTER, desiredStatus="STOPPED")["taskArns"]


def test_stop_timeout_escalates_to_sigkill(local_fargate):
    ecs = boto3.client("ecs")
    script = (
        "import signal, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('ready', flush=True)\n"
        "time.sleep(600)\n"
    )
    arn = run(ecs, register(ecs, ["python", "-c", script], stopTimeout=2))[0]["taskArn"]
    wait_until(lambda: "ready" in log_lines(arn))
    ecs.stop_task(cluster=CLUSTER, task=arn)
    assert describe(ecs, [arn])[0]["lastStatus"] == "STOPPING"  # SIGTERM ignored
    task = wait_status(ecs, [arn], "STOPPED")[0]
    assert task["containers"][0]["exitCode"] == 128 + signal.SIGKILL
    assert (task["stoppedAt"] - task["stoppingAt"]).total_seconds() >= 2
    assert task["stoppedReason"] == "Task stopped by user"


def test_an_exited_task_deprovisions_before_stopped_and_keeps_its_eni_until_then(
    local_fargate,
):
    ecs, ec2 = boto3.client("ecs"), boto3.client("ec2")
    saved = local_fargate.deprovisioning
    local_fargate.deprovisioning = (3.0, 3.0)
    try:
        arn = run(ecs, register(ecs, ["python", "-c", "print('done')"]))[0]["taskArn"]
        task = wait_status(ecs, [arn], "DEPROVISIONING")[0]
    finally:
        local_fargate.deprovisioning = saved
    assert task["desiredStatus"] == "STOPPED" and "stoppedAt" not in task
    assert task["containers"][0]["exitCode"] == 0 and task["executionStoppedAt"]
    eni = details(task)["networkInterfaceId"]
    assert ec2.describe_network_interfaces(NetworkInterfaceIds=[eni])["NetworkInterfaces"]
    assert arn not in ecs.list_tasks(cluster=CLUSTER)["taskArns"]  # desiredStatus STOPPED
    task = wait_status(ecs, [arn], "STOPPED")[0]
    assert (task["stoppedAt"] - task["executionStoppedAt"]).total_seconds() >= 3
    assert task["attachments"][0]["status"] == "DELETED"
    with pytest.raises(ClientError, match="InvalidNetworkInterfaceID.NotFound"):
        ec2.describe_network_interfaces(NetworkInterfaceIds=[eni])


def test_a_spot_interruption_as_aws_sends_it(local_fargate):
    ecs = boto3.client("ecs")
    script = (
        "import signal, sys, time\n"
        "signal.signal(signal.SIGTERM, lambda *_: (print('bye', flush=True), sys.exit(0)))\n"
        "print('ready', flush=True)\n"
        "time.sleep(600)\n"
    )
    definition = register(ecs, ["python", "-c", script])
    on_demand = run(ecs, definition)[0]["taskArn"]
    spot = run(
        ecs,
        definition,
        capacityProviderStrategy=[{"capacityProvider": "FARGATE_SPOT", "weight": 1}],
    )[0]["taskArn"]
    wait_until(lambda: "ready" in log_lines(spot) and "ready" in log_lines(on_demand))
    with pytest.raises(ValueError, match="does not run on FARGATE_SPOT"):
        local_fargate.interrupt_spot(on_demand)
    local_fargate.interrupt_spot(spot)
    task = describe(ecs, [spot])[0]
    assert task["desiredStatus"] == "STOPPED"
    assert (task["stopCode"], task["stoppedReason"]) == (
        "SpotInterruption",
        "Your Spot Task was interrupted.",
    )
    ecs.stop_task(cluster=CLUSTER, task=spot, reason="too late")  # the first reason stands
    task = wait_status(ecs, [spot], "STOPPED")[0]
    assert task["stopCode"] == "SpotInterruption" and task["containers"][0]["exitCode"] == 0
    assert log_lines(spot) == ["ready", "bye"]  # SIGTERM, handled
    ecs.stop_task(cluster=CLUSTER, task=on_demand)
    wait_status(ecs, [on_demand], "STOPPED")


def test_a_frozen_task_stays_running_and_stoptask_kills_it_at_its_stop_timeout(local_fargate):
    ecs = boto3.client("ecs")
    script = "import time\nprint('ready', flush=True)\ntime.sleep(600)\n"
    arn = run(ecs, register(ecs, ["python", "-c", script], stopTimeout=2))[0]["taskArn"]
    wait_until(lambda: "ready" in log_lines(arn))
    local_fargate.freeze_task(arn)
    assert describe(ecs, [arn])[0]["lastStatus"] == "RUNNING"
    ecs.stop_task(cluster=CLUSTER, task=arn)
    task = wait_status(ecs, [arn], "STOPPED")[0]
    assert task["containers"][0]["exitCode"] == 128 + signal.SIGKILL  # SIGTERM never ran
    assert (task["executionStoppedAt"] - task["stoppingAt"]).total_seconds() >= 2


def test_each_task_has_its_own_address_and_eni(local_fargate):
    ecs, ec2 = boto3.client("ecs"), boto3.client("ec2")
    launched = run(ecs, register(ecs, ["python", "-c", SHOW_ADDRESS]), count=2, public=True)
    arns = [t["taskArn"] for t in launched]
    tasks = wait_status(ecs, arns, "RUNNING")
    ips = set()
    for task in tasks:
        eni = details(task)
        ip = eni["privateIPv4Address"]
        ips.add(ip)
        assert ip.startswith("127.")
        assert task["containers"][0]["networkInterfaces"][0]["privateIpv4Address"] == ip
        assert eni["macAddress"] and eni["subnetId"] in subnets()
        lines = wait_until(lambda arn=task["taskArn"]: log_lines(arn))
        assert lines == [f"address {ip} {ip}"]  # what the process sees is its ENI's address
        interface = ec2.describe_network_interfaces(NetworkInterfaceIds=[eni["networkInterfaceId"]])
        interface = interface["NetworkInterfaces"][0]
        assert interface["PrivateIpAddress"] == ip
        public = interface["Association"]["PublicIp"]  # assignPublicIp ENABLED
        assert public.startswith("127.") and public != ip
        ips.add(public)
    assert len(ips) == 4
    for arn in arns:
        ecs.stop_task(cluster=CLUSTER, task=arn)
    for task in wait_status(ecs, arns, "STOPPED"):
        eni_id = details(task)["networkInterfaceId"]
        found = ec2.describe_network_interfaces(
            Filters=[{"Name": "network-interface-id", "Values": [eni_id]}]
        )
        assert found["NetworkInterfaces"] == []  # deleted with the task


def public_ip(task):
    eni = boto3.client("ec2").describe_network_interfaces(
        NetworkInterfaceIds=[details(task)["networkInterfaceId"]]
    )["NetworkInterfaces"][0]
    return eni["Association"]["PublicIp"]


def test_dask_scheduler_and_worker_use_their_task_addresses(local_fargate):
    ecs, groups = boto3.client("ecs"), [local_fargate.security_group]
    scheduler_def = register(ecs, ["dask", "scheduler", "--idle-timeout", "300"], family="sched")
    scheduler = run(ecs, scheduler_def, groups=groups)[0]["taskArn"]
    running = wait_status(ecs, [scheduler], "RUNNING")[0]
    address = f"tcp://{details(running)['privateIPv4Address']}:8786"
    worker_command = ["dask", "worker", address, "--nthreads", "1", "--memory-limit", "3GiB"]
    worker_command += ["--name", "w0", "--death-timeout", "60"]
    # The security group admits only the pinned dask ports among its tasks.
    worker_command += ["--worker-port", str(WORKER_PORT), "--nanny-port", str(NANNY_PORT)]
    worker = run(ecs, register(ecs, worker_command, family="worker"), groups=groups)[0]["taskArn"]
    worker_ip = details(wait_status(ecs, [worker], "RUNNING")[0])["privateIPv4Address"]
    # This machine is outside the VPC: it reaches the scheduler at its public address.
    with Client(f"tcp://{public_ip(running)}:8786", timeout=30) as client:
        client.wait_for_workers(1, timeout=30)
        info = client.scheduler_info()
        assert info["address"] == address
        [worker_address] = info["workers"]
        assert worker_address.startswith(f"tcp://{worker_ip}:")
        assert client.submit(lambda x: x + 1, 41).result() == 42
    # Worker first: a worker whose scheduler vanishes mid-close may rightly exit 1.
    for arn in (worker, scheduler):
        ecs.stop_task(cluster=CLUSTER, task=arn)
        [task] = wait_status(ecs, [arn], "STOPPED", timeout=30)
        exit_code = task["containers"][0]["exitCode"]
        assert exit_code == 0, log_lines(arn)  # each exits cleanly on SIGTERM


def test_tasks_that_cannot_start_say_why(local_fargate):
    ecs = boto3.client("ecs")
    missing_command = run(ecs, register(ecs, ["no-such-command", "--help"]))[0]
    missing_group = run(ecs, register(ecs, ["python", "-V"], log_group="/no/such/group"))[0]
    ecr_image = "123456789012.dkr.ecr.us-east-1.amazonaws.com/missing:latest"
    missing_image = run(ecs, register(ecs, ["python", "-V"], image=ecr_image))[0]
    arns = [t["taskArn"] for t in (missing_command, missing_group, missing_image)]
    tasks = wait_status(ecs, arns, "STOPPED")
    assert {t["stopCode"] for t in tasks} == {"TaskFailedToStart"}
    assert all("startedAt" not in t for t in tasks)
    reasons = [t["stoppedReason"] for t in tasks]
    assert reasons[0].startswith("CannotStartContainerError")
    assert '"no-such-command": executable file not found' in reasons[0]
    assert reasons[1].startswith("ResourceInitializationError") and "/no/such/group" in reasons[1]
    assert reasons[2].startswith("CannotPullContainerError") and ecr_image in reasons[2]


def test_validation_like_aws(local_fargate):
    ecs = boto3.client("ecs")
    definition = register(ecs, SLEEP)
    response = error_of(run, ecs=ecs, definition=definition, count=11)
    assert response["Error"]["Code"] == "InvalidParameterException"
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 400
    size = {"cpu": "1024", "memory": "512", "containerDefinitions": [{"name": "c", "image": "i"}]}
    response = error_of(
        ecs.register_task_definition, family="bad", requiresCompatibilities=["FARGATE"], **size
    )
    assert response["Error"]["Code"] == "ClientException"
    assert "2048 to 8192 in steps of 1024" in response["Error"]["Message"]
    response = error_of(
        ecs.register_task_definition,
        family="bad",
        requiresCompatibilities=["FARGATE"],
        networkMode="bridge",
        **{**size, "memory": "2048"},
    )
    assert "awsvpc" in response["Error"]["Message"]
    network = {"awsvpcConfiguration": {"subnets": []}}
    response = error_of(
        ecs.run_task,
        cluster=CLUSTER,
        taskDefinition=definition,
        launchType="FARGATE",
        networkConfiguration=network,
    )
    assert response["Error"]["Code"] == "InvalidParameterException"
    network = {"awsvpcConfiguration": {"subnets": ["subnet-nope"]}}
    response = error_of(
        ecs.run_task,
        cluster=CLUSTER,
        taskDefinition=definition,
        launchType="FARGATE",
        networkConfiguration=network,
    )
    assert "subnet-nope" in response["Error"]["Message"]
    response = error_of(run, ecs=ecs, definition=definition, launchType="EC2")
    assert "Fargate tasks only" in response["Error"]["Message"]
    response = error_of(
        ecs.run_task, cluster="no-such-cluster", taskDefinition=definition, launchType="FARGATE"
    )
    assert response["Error"]["Code"] == "ClusterNotFoundException"


def test_unknown_tasks(local_fargate):
    ecs = boto3.client("ecs")
    response = error_of(ecs.stop_task, cluster=CLUSTER, task="0123456789abcdef")
    assert response["Error"]["Code"] == "InvalidParameterException"
    assert response["Error"]["Message"] == "The referenced task was not found."
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 400
    answer = ecs.describe_tasks(cluster=CLUSTER, tasks=["0123456789abcdef"])
    assert answer["tasks"] == []
    assert answer["failures"] == [{"arn": "0123456789abcdef", "reason": "MISSING"}]
    too_many = [str(n) for n in range(fargate.DESCRIBE_TASKS_MAX + 1)]
    response = error_of(ecs.describe_tasks, cluster=CLUSTER, tasks=too_many)
    assert response["Error"]["Code"] == "InvalidParameterException"


def test_list_tasks_filters_and_pages(local_fargate):
    ecs = boto3.client("ecs")
    launched = run(ecs, register(ecs, SLEEP, family="pager"), count=3, startedBy="pager")
    arns = [t["taskArn"] for t in launched]
    first = ecs.list_tasks(cluster=CLUSTER, startedBy="pager", maxResults=2)
    second = ecs.list_tasks(
        cluster=CLUSTER, startedBy="pager", maxResults=2, nextToken=first["nextToken"]
    )
    assert first["taskArns"] + second["taskArns"] == arns and "nextToken" not in second
    assert ecs.list_tasks(cluster=CLUSTER, family="pager")["taskArns"] == arns
    assert ecs.list_tasks(cluster=CLUSTER, family="nobody")["taskArns"] == []
    assert error_of(ecs.list_tasks, cluster=CLUSTER, maxResults=101)["Error"]["Code"] == (
        "InvalidParameterException"
    )
    for arn in arns:
        ecs.stop_task(cluster=CLUSTER, task=arn)
    wait_status(ecs, arns, "STOPPED")
    assert ecs.list_tasks(cluster=CLUSTER, startedBy="pager")["taskArns"] == []


def test_fault_hooks(local_fargate):
    ecs = boto3.client("ecs", config=Config(retries={"total_max_attempts": 1}))
    definition = register(ecs, SLEEP)
    local_fargate.fail_next_run_task(kind="throttle")
    response = error_of(run, ecs=ecs, definition=definition)
    assert (response["Error"]["Code"], response["Error"]["Message"]) == (
        "ThrottlingException",
        "Rate exceeded",
    )
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 400

    local_fargate.fail_next_run_task(kind="capacity")
    answer = ecs.run_task(
        cluster=CLUSTER,
        taskDefinition=definition,
        count=3,
        launchType="FARGATE",
        networkConfiguration={"awsvpcConfiguration": {"subnets": subnets()[:1]}},
    )
    assert answer["tasks"] == []
    assert answer["failures"] == [{"reason": fargate.CAPACITY_UNAVAILABLE}] * 3

    arn = run(ecs, definition)[0]["taskArn"]  # the faults are used up
    wait_status(ecs, [arn], "RUNNING")
    local_fargate.kill_task(arn)
    task = wait_status(ecs, [arn], "STOPPED")[0]
    assert task["containers"][0]["exitCode"] == 128 + signal.SIGKILL
    assert task["stopCode"] == "EssentialContainerExited"


def test_counters_records_and_tags(local_fargate):
    ecs = boto3.client("ecs")
    definition = register(ecs, ["python", "-c", "pass"])
    local_fargate.reset_counters()
    tags = [{"key": "owner", "value": "tests"}]
    arns = [t["taskArn"] for t in run(ecs, definition, count=2, tags=tags)]
    tasks = ecs.describe_tasks(cluster=CLUSTER, tasks=arns, include=["TAGS"])["tasks"]
    assert [t["tags"] for t in tasks] == [tags, tags]
    assert "tags" not in describe(ecs, arns)[0]
    assert local_fargate.calls["RunTask"] == 1
    assert local_fargate.calls["DescribeTasks"] == 2
    assert local_fargate.run_task_counts == [2]
    assert local_fargate.describe_task_sizes == [2, 2]
    tasks = {t["taskArn"]: t for t in wait_status(ecs, arns, "STOPPED")}
    records = {r["arn"]: r for r in local_fargate.task_records() if r["arn"] in arns}
    for arn, record in records.items():
        assert record["ip"] == details(tasks[arn])["privateIPv4Address"]
        assert record["stoppedAt"] >= record["startedAt"] and record["pid"] > 0
        assert (record["lastStatus"], record["cpu"], record["memory"]) == ("STOPPED", "256", "512")
    local_fargate.reset_counters()
    assert not local_fargate.calls and local_fargate.run_task_counts == []


def test_no_task_outlives_a_killed_emulator():
    root = Path(starburst_dask.local.__file__).parents[2]
    path = os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))
    emulator = subprocess.Popen(
        [sys.executable, "-m", "starburst_dask.local"],
        env={**os.environ, "PYTHONPATH": path},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        settings = {}
        for line in emulator.stdout:  # serve() prints the settings a second shell needs
            if line.startswith("export "):
                name, value = line.removeprefix("export ").strip().split("=", 1)
                settings[name] = value
            if line.startswith("# Stop"):
                break
        session = boto3.Session(
            region_name=settings["AWS_REGION"],
            aws_access_key_id=settings["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=settings["AWS_SECRET_ACCESS_KEY"],
        )
        ecs = session.client("ecs", endpoint_url=settings["AWS_ENDPOINT_URL"])
        ec2 = session.client("ec2", endpoint_url=settings["AWS_ENDPOINT_URL"])
        definition = ecs.register_task_definition(
            family="orphan",
            requiresCompatibilities=["FARGATE"],
            cpu="256",
            memory="512",
            containerDefinitions=[{"name": "main", "image": PYTHON_IMAGE, "command": SLEEP}],
        )["taskDefinition"]["taskDefinitionArn"]
        subnet = ec2.describe_subnets()["Subnets"][0]["SubnetId"]
        arn = ecs.run_task(
            cluster=CLUSTER,
            taskDefinition=definition,
            launchType="FARGATE",
            networkConfiguration={
                "awsvpcConfiguration": {"subnets": [subnet], "assignPublicIp": "ENABLED"}
            },
        )["tasks"][0]["taskArn"]
        wait_status(ecs, [arn], "RUNNING")
        # The shim and the sleeping command: everything the emulator started.
        task_processes = wait_until(
            lambda: (
                len(found := psutil.Process(emulator.pid).children(recursive=True)) == 2 and found
            )
        )
        emulator.send_signal(signal.SIGKILL)
        emulator.wait(10)
        wait_until(lambda: all(gone(p.pid) for p in task_processes), timeout=30)
    finally:
        if emulator.poll() is None:
            emulator.kill()
            emulator.wait(10)
        emulator.stdout.close()


def test_effective_account_settings_answer_the_defaults_the_account_has_not_set(local_fargate):
    ecs = boto3.client("ecs")
    settings = ecs.list_account_settings(name="taskLongArnFormat", effectiveSettings=True)
    account = boto3.client("sts").get_caller_identity()["Account"]
    assert settings["settings"] == [
        {
            "name": "taskLongArnFormat",
            "value": "enabled",
            "principalArn": f"arn:aws:iam::{account}:root",
        }
    ]
    assert ecs.list_account_settings(name="taskLongArnFormat")["settings"] == []  # none set
