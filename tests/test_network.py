"""The local Fargate's VPC: routes decide what a task reaches, security groups who connects.

Everything through boto3 clients and real connections: tasks run probes (a web server, a
connection attempt) and the test reads their CloudWatch logs, or connects itself from
this machine, which is outside the VPC at its own public address.
"""

import asyncio

import boto3
import dask.config
import pytest
from distributed import Client
from helpers import DASK_IMAGE, put_image, stopped, wait_until

from starburst_dask import FargateCluster
from starburst_dask.admin import doctor
from starburst_dask.errors import ConfigurationError, MissingResourceError
from starburst_dask.local import LocalFargate

CLUSTER = "starburst-dask"
LOG_GROUP = "/starburst-dask"
REGION = "us-east-1"
ACCOUNT = "123456789012"
#: Seconds a task without a route waits before it stops (AWS: tens of seconds).
FAILURE_DELAY = 1.0
# A web server on port 8000 of every address the task has, saying when it listens.
SERVE = [
    "python",
    "-c",
    "import http.server as h; "
    "s = h.HTTPServer(('', 8000), h.SimpleHTTPRequestHandler); "
    "print('listening', flush=True); s.serve_forever()",
]
# Connects to argv[1]:argv[2] and prints what happened, as a probe in a task.
CONNECT = """\
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3).close()
    print("connected", flush=True)
except OSError as e:
    print("failed", type(e).__name__, e.strerror or e, flush=True)
"""


@pytest.fixture(scope="module")
def aws():
    with LocalFargate(network_failure_delay=FAILURE_DELAY) as fargate:
        yield fargate


@pytest.fixture(scope="module")
def ec2(aws):
    return boto3.client("ec2")


@pytest.fixture(scope="module")
def ecs(aws):
    return boto3.client("ecs")


@pytest.fixture(scope="module")
def vpc(ec2):
    return ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"][0]


def network_check():
    return next(c for c in doctor.run() if c.name == "network")


def needs_firewall(aws):
    if not aws.firewall.enabled:
        pytest.skip(f"security groups are not enforced here: {aws.firewall.reason}")


def default_subnet(ec2):
    found = ec2.describe_subnets(Filters=[{"Name": "default-for-az", "Values": ["true"]}])
    return sorted(s["SubnetId"] for s in found["Subnets"])[0]


_blocks = iter(range(200, 256))


def private_subnet(ec2, vpc, zone="us-east-1a"):
    """A subnet of the default VPC with a route table of its own: no route out."""
    base = vpc["CidrBlock"].split(".")[:2]
    subnet = ec2.create_subnet(
        VpcId=vpc["VpcId"],
        AvailabilityZone=zone,
        CidrBlock=".".join([*base, str(next(_blocks)), "0/24"]),
    )
    subnet_id = subnet["Subnet"]["SubnetId"]
    table = ec2.create_route_table(VpcId=vpc["VpcId"])["RouteTable"]["RouteTableId"]
    ec2.associate_route_table(RouteTableId=table, SubnetId=subnet_id)
    return subnet_id, table


DASK_TAG = DASK_IMAGE.split(":")[1]


def register(ecs, command, image=DASK_IMAGE, family="net", logs=True):
    container = {"name": "main", "image": image, "command": command}
    extra = {}
    if logs:  # awslogs on Fargate needs the execution role (prepare() made it)
        container["logConfiguration"] = {
            "logDriver": "awslogs",
            "options": {
                "awslogs-group": LOG_GROUP,
                "awslogs-region": REGION,
                "awslogs-stream-prefix": "net",
            },
        }
        extra["executionRoleArn"] = boto3.client("iam").get_role(
            RoleName="starburst-dask-execution"
        )["Role"]["Arn"]
    return ecs.register_task_definition(
        family=family,
        requiresCompatibilities=["FARGATE"],
        networkMode="awsvpc",
        cpu="256",
        memory="512",
        containerDefinitions=[container],
        **extra,
    )["taskDefinition"]["taskDefinitionArn"]


#: Tasks run() started in the current test.
_started: list[str] = []


@pytest.fixture(autouse=True)
def stop_started_tasks(request):
    """The tasks a test started on the module's emulator are stopped at its end: none
    outlives it (a test's own emulator stops its tasks itself)."""
    yield
    started = _started[:]
    _started.clear()
    if started and "ecs" in request.fixturenames:
        ecs = request.getfixturevalue("ecs")
        for arn in started:
            ecs.stop_task(cluster=CLUSTER, task=arn, reason="test over")
        for arn in started:
            stopped(ecs, arn, cluster=CLUSTER)


def run(ecs, definition, subnet, public, groups=None):
    config = {"subnets": [subnet], "assignPublicIp": "ENABLED" if public else "DISABLED"}
    if groups:
        config["securityGroups"] = groups
    response = ecs.run_task(
        cluster=CLUSTER,
        taskDefinition=definition,
        launchType="FARGATE",
        networkConfiguration={"awsvpcConfiguration": config},
    )
    assert response["failures"] == []
    _started.append(response["tasks"][0]["taskArn"])
    return response["tasks"][0]["taskArn"]


def task(ecs, arn):
    return ecs.describe_tasks(cluster=CLUSTER, tasks=[arn])["tasks"][0]


def settled(ecs, arn, status="RUNNING", timeout=30):
    """The task once it is ``status`` or STOPPED."""
    wait_until(lambda: task(ecs, arn)["lastStatus"] in (status, "STOPPED"), timeout)
    return task(ecs, arn)


def addresses(ec2, described):
    details = {d["name"]: d["value"] for d in described["attachments"][0]["details"]}
    eni = ec2.describe_network_interfaces(NetworkInterfaceIds=[details["networkInterfaceId"]])[
        "NetworkInterfaces"
    ][0]
    return eni["PrivateIpAddress"], eni.get("Association", {}).get("PublicIp")


def log_lines(arn):
    stream = f"net/main/{arn.rsplit('/', 1)[1]}"
    logs = boto3.client("logs")
    try:
        events = logs.get_log_events(logGroupName=LOG_GROUP, logStreamName=stream)["events"]
    except logs.exceptions.ResourceNotFoundException:
        return []
    return [e["message"] for e in events]


def group(ec2, vpc, name, **rules):
    """A security group with ingress ``rules`` (tcp ports -> CIDRs or group ids)."""
    group_id = ec2.create_security_group(GroupName=name, Description=name, VpcId=vpc["VpcId"])[
        "GroupId"
    ]
    permissions = []
    for sources in rules.values():
        for port, source in sources:
            permission = {"IpProtocol": "tcp", "FromPort": port, "ToPort": port}
            if source.startswith("sg-"):
                permission["UserIdGroupPairs"] = [{"GroupId": source}]
            else:
                permission["IpRanges"] = [{"CidrIp": source}]
            permissions.append(permission)
    if permissions:
        ec2.authorize_security_group_ingress(GroupId=group_id, IpPermissions=permissions)
    return group_id


def connect_from_task(ecs, subnet, host, port, groups, public=True):
    """What a probe task reports when it connects to ``host:port``."""
    arn = run(
        ecs, register(ecs, ["python", "-c", CONNECT, host, str(port)]), subnet, public, groups
    )
    wait_until(lambda: log_lines(arn), timeout=30)
    return log_lines(arn)[0]


def reachable_from_here(host, port, timeout=3.0):
    import socket

    try:
        socket.create_connection((host, port), timeout=timeout).close()
        return True
    except TimeoutError:  # dropped, as by a security group: no answer at all
        return False


# Runs first, before the module's shared emulator exists: only one runs at a time.
def test_without_root_it_runs_unenforced_and_says_so_once(monkeypatch, caplog):
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    with LocalFargate(network_failure_delay=FAILURE_DELAY) as fargate:
        assert fargate.firewall.reason == "the local Fargate does not run as root"
        ec2, ecs = fargate.client("ec2"), fargate.client("ecs")
        arn = run(ecs, register(ecs, SERVE), default_subnet(ec2), public=True)
        private, public = addresses(ec2, settled(ecs, arn))
        assert public == private  # nothing would route a distinct public address to it
        ecs.stop_task(cluster=CLUSTER, task=arn)
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    [warning] = warnings
    assert warning.startswith(
        "security groups are not enforced (the local Fargate does not run as root)"
    )


# -- routes --------------------------------------------------------------------------------


def test_default_vpc_is_routed_like_aws(ec2, vpc):
    assert vpc["CidrBlock"].startswith("127.")  # the address plan (docs/local-fargate.md)
    [gateway] = ec2.describe_internet_gateways(
        Filters=[{"Name": "attachment.vpc-id", "Values": [vpc["VpcId"]]}]
    )["InternetGateways"]
    [main] = ec2.describe_route_tables(
        Filters=[
            {"Name": "vpc-id", "Values": [vpc["VpcId"]]},
            {"Name": "association.main", "Values": ["true"]},
        ]
    )["RouteTables"]
    assert {
        "DestinationCidrBlock": "0.0.0.0/0",
        "GatewayId": gateway["InternetGatewayId"],
    }.items() <= next(
        r for r in main["Routes"] if r.get("DestinationCidrBlock") == "0.0.0.0/0"
    ).items()
    [default] = ec2.describe_security_groups(
        Filters=[
            {"Name": "vpc-id", "Values": [vpc["VpcId"]]},
            {"Name": "group-name", "Values": ["default"]},
        ]
    )["SecurityGroups"]
    assert [p["UserIdGroupPairs"][0]["GroupId"] for p in default["IpPermissions"]] == [
        default["GroupId"]
    ]


def test_task_without_a_route_out_fails_to_start_as_on_aws(ec2, ecs, vpc):
    subnet, _ = private_subnet(ec2, vpc)
    # Fargate sets up registry credentials, then the log stream, then pulls.
    quiet = register(ecs, ["python", "-V"], logs=False)
    hub = run(ecs, quiet, subnet, public=True)
    logged = run(ecs, register(ecs, ["python", "-V"]), subnet, public=True)
    ecr_image = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/probe:1"
    ecr = run(ecs, register(ecs, ["python", "-V"], image=ecr_image), subnet, public=True)
    # On a subnet routed to an internet gateway, but without a public IP.
    no_ip = run(ecs, quiet, default_subnet(ec2), public=False)
    assert task(ecs, hub)["lastStatus"] in ("PROVISIONING", "PENDING")  # AWS retries first
    stopped = {arn: settled(ecs, arn, "STOPPED") for arn in (hub, logged, ecr, no_ip)}
    assert {t["stopCode"] for t in stopped.values()} == {"TaskFailedToStart"}
    assert all("startedAt" not in t for t in stopped.values())
    for arn in (hub, no_ip):
        assert stopped[arn]["stoppedReason"].startswith(
            "CannotPullContainerError: pull image manifest has been retried 5 time(s): "
            f"failed to resolve ref docker.io/{DASK_IMAGE}: failed to do request: Head "
            f'"https://registry-1.docker.io/v2/daskdev/dask/manifests/{DASK_TAG}": dial tcp '
        )
        assert stopped[arn]["stoppedReason"].endswith(":443: i/o timeout")
    assert stopped[ecr]["stoppedReason"].startswith(
        "ResourceInitializationError: unable to pull secrets or registry auth: execution "
        "resource retrieval failed: unable to retrieve ecr registry auth: service call has "
        "been retried 3 time(s): RequestError: send request failed caused by: Post "
        f'"https://api.ecr.{REGION}.amazonaws.com/": dial tcp '
    )
    assert stopped[logged]["stoppedReason"].startswith(
        "ResourceInitializationError: failed to validate logger args: create stream has been "
        "retried 1 times: failed to create Cloudwatch log stream: RequestError: send request "
        f'failed caused by: Post "https://logs.{REGION}.amazonaws.com/": dial tcp '
    )


def test_nat_gateway_route_lets_a_private_task_start(ec2, ecs, vpc):
    subnet, table = private_subnet(ec2, vpc)
    allocation = ec2.allocate_address(Domain="vpc")
    nat = ec2.create_nat_gateway(
        SubnetId=default_subnet(ec2), AllocationId=allocation["AllocationId"]
    )["NatGateway"]
    ec2.create_route(
        RouteTableId=table, DestinationCidrBlock="0.0.0.0/0", NatGatewayId=nat["NatGatewayId"]
    )
    arn = run(ecs, register(ecs, ["python", "-c", "print('ran')"]), subnet, public=False)
    wait_until(lambda: log_lines(arn), timeout=30)
    assert log_lines(arn) == ["ran"]
    assert settled(ecs, arn, "STOPPED")["stopCode"] == "EssentialContainerExited"
    with dask.config.set({"starburst.subnets": [subnet]}):  # doctor reads it the same way
        check = network_check()
    assert (check.status, check.detail) == (
        doctor.OK,
        "tasks reach their image and logs through a NAT gateway",
    )


def test_ecr_image_starts_through_vpc_endpoints_only_when_all_are_there(ec2, ecs, vpc):
    subnet, table = private_subnet(ec2, vpc)
    ecr = boto3.client("ecr")
    ecr.create_repository(repositoryName="probe-endpoints")
    put_image(ecr, "probe-endpoints", "1")
    image = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/probe-endpoints:1"
    definition = register(ecs, ["python", "-c", "print('ran')"], image=image)
    for service in ("ecr.api", "ecr.dkr", "logs"):
        ec2.create_vpc_endpoint(
            VpcId=vpc["VpcId"],
            VpcEndpointType="Interface",
            ServiceName=f"com.amazonaws.{REGION}.{service}",
            SubnetIds=[subnet],
            PrivateDnsEnabled=True,
        )
    without_s3 = settled(ecs, run(ecs, definition, subnet, public=False), "STOPPED")
    assert without_s3["stopCode"] == "TaskFailedToStart"
    assert without_s3["stoppedReason"].startswith("CannotPullContainerError: ")
    assert "starport-layer-bucket.s3" in without_s3["stoppedReason"]  # image layers: S3
    ec2.create_vpc_endpoint(
        VpcId=vpc["VpcId"],
        VpcEndpointType="Gateway",
        ServiceName=f"com.amazonaws.{REGION}.s3",
        RouteTableIds=[table],
    )
    arn = run(ecs, definition, subnet, public=False)
    wait_until(lambda: log_lines(arn), timeout=30)
    assert log_lines(arn) == ["ran"]
    # Endpoints serve AWS's services only: this machine, on the internet, has no route.
    probe = register(ecs, ["python", "-c", CONNECT, "127.0.0.1", "80"], image=image)
    arn = run(ecs, probe, subnet, public=False)
    wait_until(lambda: log_lines(arn), timeout=30)
    assert log_lines(arn) == ["failed OSError Network is unreachable"]


# -- security groups -----------------------------------------------------------------------


def test_client_outside_the_vpc_reaches_a_task_only_when_its_group_admits_it(aws, ec2, ecs, vpc):
    needs_firewall(aws)
    vpc_only = group(ec2, vpc, "vpc-only", rules=[(8000, vpc["CidrBlock"])])
    arn = run(ecs, register(ecs, SERVE), default_subnet(ec2), public=True, groups=[vpc_only])
    private, public = addresses(ec2, settled(ecs, arn))
    assert public != private
    wait_until(lambda: log_lines(arn) == ["listening"])
    assert not reachable_from_here(public, 8000)  # not admitted: dropped
    assert not reachable_from_here(private, 8000)  # the internet has no route to it
    ec2.authorize_security_group_ingress(
        GroupId=vpc_only,
        IpPermissions=[
            {
                "IpProtocol": "tcp",
                "FromPort": 8000,
                "ToPort": 8000,
                "IpRanges": [{"CidrIp": "127.0.0.1/32"}],
            }
        ],
    )
    wait_until(lambda: reachable_from_here(public, 8000), timeout=30)
    assert not reachable_from_here(private, 8000)  # still outside the VPC


def test_group_references_admit_private_addresses_of_members_only(aws, ec2, ecs, vpc):
    needs_firewall(aws)
    members = group(ec2, vpc, "members")
    others = group(ec2, vpc, "others")
    server_group = group(ec2, vpc, "server", rules=[(8000, members)])
    subnet = default_subnet(ec2)
    server = run(ecs, register(ecs, SERVE), subnet, public=True, groups=[server_group])
    private, public = addresses(ec2, settled(ecs, server))
    wait_until(lambda: log_lines(server) == ["listening"])
    assert connect_from_task(ecs, subnet, private, 8000, [members]) == "connected"
    assert connect_from_task(ecs, subnet, private, 8000, [others]).startswith("failed")
    # A group reference never matches traffic sent to a public IP.
    assert connect_from_task(ecs, subnet, public, 8000, [members]).startswith("failed")


def test_traffic_to_a_public_ip_comes_from_the_senders_nat_or_public_ip(aws, ec2, ecs, vpc):
    needs_firewall(aws)
    subnet = default_subnet(ec2)
    nat_subnet, table = private_subnet(ec2, vpc, zone="us-east-1b")
    allocation = ec2.allocate_address(Domain="vpc")
    nat = ec2.create_nat_gateway(SubnetId=subnet, AllocationId=allocation["AllocationId"])
    ec2.create_route(
        RouteTableId=table,
        DestinationCidrBlock="0.0.0.0/0",
        NatGatewayId=nat["NatGateway"]["NatGatewayId"],
    )
    nat_only = group(ec2, vpc, "nat-only", rules=[(8000, f"{allocation['PublicIp']}/32")])
    server = run(ecs, register(ecs, SERVE), subnet, public=True, groups=[nat_only])
    _, public = addresses(ec2, settled(ecs, server))
    wait_until(lambda: log_lines(server) == ["listening"])
    client_group = group(ec2, vpc, "probe")
    # From the NAT-routed subnet, without a public IP: it arrives from the NAT's address.
    assert (
        connect_from_task(ecs, nat_subnet, public, 8000, [client_group], public=False)
        == "connected"
    )
    # With a public IP of its own, it arrives from that one, which the group does not admit.
    assert connect_from_task(ecs, subnet, public, 8000, [client_group]).startswith("failed")


# -- clusters ------------------------------------------------------------------------------


def test_worker_given_the_public_address_cannot_join_a_vpc_only_scheduler(aws, ec2, ecs, vpc):
    needs_firewall(aws)
    subnet = default_subnet(ec2)
    # The VPC and this machine (to watch) may reach the scheduler: not public addresses.
    scheduler_group = group(
        ec2, vpc, "scheduler", rules=[(8786, vpc["CidrBlock"]), (8786, "127.0.0.1/32")]
    )
    scheduler = run(
        ecs,
        register(ecs, ["dask", "scheduler", "--idle-timeout", "300"]),
        subnet,
        public=True,
        groups=[scheduler_group],
    )
    private, public = addresses(ec2, settled(ecs, scheduler))
    worker = ["dask", "worker", "--nthreads", "1", "--death-timeout", "15"]

    def start_worker(address, name):
        return run(
            ecs,
            register(ecs, [*worker, "--name", name, f"tcp://{address}:8786"]),
            subnet,
            public=True,
            groups=[scheduler_group],
        )

    outside = start_worker(public, "via-public")
    inside = start_worker(private, "via-private")
    with Client(f"tcp://{public}:8786", timeout=30) as client:
        client.wait_for_workers(1, timeout=60)
        stopped = settled(ecs, outside, "STOPPED", timeout=90)  # gave up: never connected
        names = {w["name"] for w in client.scheduler_info()["workers"].values()}
    assert names == {"via-private"}
    assert stopped["containers"][0]["exitCode"] != 0
    assert task(ecs, inside)["lastStatus"] == "RUNNING"


def test_client_cannot_reach_a_scheduler_whose_group_does_not_admit_it(aws, ec2, ecs, vpc):
    needs_firewall(aws)
    vpc_only = group(ec2, vpc, "scheduler-vpc-only", rules=[(8786, vpc["CidrBlock"])])
    scheduler = run(
        ecs,
        register(ecs, ["dask", "scheduler", "--idle-timeout", "300"]),
        default_subnet(ec2),
        public=True,
        groups=[vpc_only],
    )
    _, public = addresses(ec2, settled(ecs, scheduler))

    async def connect():  # asynchronous: distributed's synchronous Client that cannot
        async with Client(f"tcp://{public}:8786", timeout=5, asynchronous=True):  # connect
            pass  # leaves its IO loop thread running

    with pytest.raises(OSError, match="Timed out trying to connect"):
        asyncio.run(connect())


def test_cluster_with_defaults_gets_public_ips_and_works_from_here(aws, ec2, ecs):
    with FargateCluster(n_workers=1) as cluster, Client(cluster) as client:
        assert client.submit(sum, [1, 2]).result() == 3
        private, public = addresses(ec2, task(ecs, cluster.scheduler.task_arn))
        assert public is not None and public != private
        # This client, outside the VPC, uses the public address; workers the private one.
        assert cluster.scheduler_address == f"tls://{public}:8786"
        assert client.scheduler_info()["address"] == f"tls://{private}:8786"


def test_client_inside_vpc_option_connects_to_the_private_address(aws):
    needs_firewall(aws)
    # This machine is outside the VPC: the private address is out of its reach.
    with (
        dask.config.set({"distributed.comm.timeouts.connect": "3s"}),
        pytest.raises(Exception, match="Timed out trying to connect to tls://127"),
    ):
        FargateCluster(n_workers=0, inside_vpc=True, name="inside-vpc")
    ecs = boto3.client("ecs")
    assert ecs.list_tasks(cluster=CLUSTER, startedBy="inside-vpc")["taskArns"] == []
    assert ecs.list_tasks(cluster=CLUSTER, startedBy="inside-vpc", desiredStatus="STOPPED")[
        "taskArns"
    ]  # it did run


def test_private_ips_on_internet_gateway_subnets_are_refused_before_launch(aws):
    aws.reset_counters()
    with pytest.raises(ConfigurationError, match="assign_public_ip is off") as info:
        FargateCluster(n_workers=1, assign_public_ip=False)
    assert "an ECR image" in str(info.value)  # the daskdev image needs the internet
    assert aws.calls["RunTask"] == 0


def test_setup_refuses_subnets_without_a_route_naming_the_missing_endpoints(aws, ec2, vpc):
    from starburst_dask.admin.setup import setup

    subnets = [private_subnet(ec2, vpc, zone)[0] for zone in ("us-east-1c", "us-east-1d")]
    with pytest.raises(MissingResourceError, match="has no route to the internet") as info:
        setup(subnets=subnets)
    assert all(s in str(info.value) for s in subnets)
    assert boto3.client("ecs").list_clusters()["clusterArns"] == [
        f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/{CLUSTER}"
    ]  # prepare's only: nothing made


def test_doctor_checks_the_subnets_routes(aws, ec2, vpc):
    assert network_check().status == doctor.OK  # default subnets: an internet gateway
    subnets = [private_subnet(ec2, vpc, zone)[0] for zone in ("us-east-1e", "us-east-1f")]
    with dask.config.set({"starburst.subnets": subnets}):
        check = network_check()
    assert check.status == doctor.FAIL
    assert "has no route to the internet" in check.detail and subnets[0] in check.detail
    assert "NAT gateway" in check.fix
