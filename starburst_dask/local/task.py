"""A local Fargate task: moto's ECS task whose essential container is a local process.

moto serializes API answers from model attributes named after the API's members in
snake case (``created_at`` for ``createdAt``), so :class:`LocalTask` carries the fields
AWS reports, and updates them as the runtime reports on its process.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import suppress
from datetime import datetime, timezone
from typing import Any, TypedDict

from moto.ec2.exceptions import InvalidNetworkInterfaceIdError
from moto.ecs.models import Cluster, EC2ContainerServiceBackend, Task, TaskDefinition
from moto.logs.models import logs_backends

from .. import fargate
from . import docker_hub, images, reach, secrets, vpc
from .latency import Latency
from .metadata import METADATA_VAR, MetadataServer
from .runtime import TaskProcess
from .task_role import CREDENTIALS_VAR, TaskRoles
from .timeline import Timeline

#: Fargate platform version the local tasks report.
PLATFORM_VERSION = "1.4.0"


class TaskRecord(TypedDict):
    """The emulator's own view of a task, independent of the ECS API."""

    arn: str
    lastStatus: str
    desiredStatus: str
    #: The task's direct child process (the shim, which outlives the command's processes).
    pid: int | None
    ip: str
    cpu: str
    memory: str
    startedAt: datetime | None
    stoppedAt: datetime | None
    exitCode: int | None
    stopCode: str | None


def _now() -> datetime:
    return datetime.now(timezone.utc)


class LocalTask(Task):
    """A Fargate task whose essential container is a local process.

    It reports its real lifecycle (moto's task advances a state on every describe), each
    phase taking the time its :class:`~.latency.Latency` draws, on the local Fargate's
    :class:`~.timeline.Timeline`: PROVISIONING while its ENI is created (a loopback
    address ``ip`` of its subnet, which its process binds and advertises, and, with
    ``assignPublicIp``, a distinct public one: ``vpc.py``) and attached, PENDING while
    its image is pulled, then its process runs; DEPROVISIONING after it exits.
    The runtime calls its :class:`~.runtime.TaskHooks` methods from its own threads.
    """

    #: The task's state, read through :attr:`last_status` (moto's state model allows None).
    _status: str

    def __init__(
        self,
        cluster: Cluster,
        task_definition: TaskDefinition,
        backend: EC2ContainerServiceBackend,
        metadata: MetadataServer,
        task_roles: TaskRoles,
        timeline: Timeline,
        latency: Callable[[], Latency],
        network: dict[str, Any],
        capacity_provider_name: str | None,
        overrides: dict[str, Any],
        **kwargs: Any,
    ) -> None:
        vpc_config = network["awsvpcConfiguration"]
        ec2 = vpc.backend(backend.account_id, backend.region_name)
        subnet = ec2.get_subnet(vpc_config["subnets"][0])
        # AWS uses the VPC's default security group when none is given.
        groups = vpc_config.get("securityGroups") or [_default_group(ec2, subnet.vpc_id)]
        network = {"awsvpcConfiguration": {**vpc_config, "securityGroups": groups}}
        super().__init__(
            cluster=cluster,
            task_definition=task_definition,
            container_instance_arn=None,
            resource_requirements=None,
            backend=backend,
            launch_type="FARGATE",
            capacity_provider_name=capacity_provider_name,
            overrides=overrides,
            networking_configuration=network,
            platform_version=PLATFORM_VERSION,
            **kwargs,
        )
        # Reentrant: a release due at once (the local Fargate stopping) runs under it.
        self._lock = threading.RLock()
        self._timeline = timeline
        #: The local Fargate's latencies now (they may change while the task lives).
        self._latency = latency
        #: Runs the task's process once its image is pulled (set by :meth:`provision`).
        self._launch: Callable[[TaskProcess], None] | None = None
        #: The pull's retries, when its network cannot reach the registry or the logs.
        self._retrying: threading.Timer | None = None
        self._status = "PROVISIONING"
        self.platform_family = "Linux"
        self.architecture = (task_definition.runtime_platform or {}).get(
            "cpuArchitecture"
        ) or fargate.ARCHITECTURES[0]
        self.attributes = [
            {
                "name": fargate.TASK_ARCHITECTURE_ATTRIBUTE,
                "value": fargate.TASK_ARCHITECTURE_VALUES[self.architecture],
            }
        ]
        self.availability_zone = subnet.availability_zone
        self.cpu = str(overrides.get("cpu") or task_definition.cpu)
        self.memory = str(overrides.get("memory") or task_definition.memory)
        self.created_at = _now()
        self.pull_started_at: datetime | None = None
        self.pull_stopped_at: datetime | None = None
        self.started_at: datetime | None = None
        self.stopping_at: datetime | None = None
        self.execution_stopped_at: datetime | None = None
        self.stopped_at: datetime | None = None
        self.stop_code: str | None = None
        # AWS omits stoppedReason until the task stops; moto types it str (and starts at "").
        self.stopped_reason: str | None = None  # type: ignore[assignment]
        self._log_stream: tuple[Any, str, str] | None = None
        #: The ENI's private address, once Fargate has created it while PROVISIONING.
        self.ip = ""
        self._metadata_uri = metadata.uri(self.id)
        self._network = (ec2, subnet.id, groups, vpc_config.get("assignPublicIp") == "ENABLED")
        self._eni: Any = None
        self._precreate_eni(ec2, subnet.id)
        container_def: dict[str, Any] = task_definition.container_definitions[0]
        container = self.containers[0]
        container.task_arn = self.task_arn  # moto puts the task definition's ARN here
        # moto describes a container from its attributes: AWS's exitCode is absent until the
        # container exits (moto's type: int, 0), and its reason is one moto's model lacks.
        container.exitCode = None  # type: ignore[assignment]
        container.reason = None  # type: ignore[attr-defined]
        container.network_interfaces = []  # the ENI's, once it exists
        self.log_config: dict[str, Any] = container_def.get("logConfiguration") or {}
        self._image: str = container_def["image"]
        self._container_environment = _environment(container_def, overrides)
        self._secrets: list[dict[str, str]] = container_def.get("secrets") or []
        self._execution_role = overrides.get("executionRoleArn") or getattr(
            task_definition, "execution_role_arn", None
        )
        # What ECS sets ("Amazon ECS environment variables"): the region, the metadata, and
        # with a task role its credentials (the local Fargate's own never reach a task).
        environment = {
            **self._container_environment,
            "AWS_EXECUTION_ENV": "AWS_ECS_FARGATE",
            "AWS_REGION": self.region_name,
            "AWS_DEFAULT_REGION": self.region_name,
            METADATA_VAR: self._metadata_uri,
        }
        task_role = overrides.get("taskRoleArn") or getattr(task_definition, "task_role_arn", None)
        if task_role:
            issued = task_roles.issue(self._account_id, self.region_name, task_role, self.id)
            environment[CREDENTIALS_VAR] = metadata.credentials_uri(issued)
        self.process = TaskProcess(
            command=_command(container_def, overrides),
            environment=environment,
            ip="",  # the ENI's, once created
            stop_timeout=min(
                container_def.get("stopTimeout", fargate.STOP_TIMEOUT_DEFAULT),
                fargate.STOP_TIMEOUT_MAX,
            ),
            hooks=self,
        )

    def _precreate_eni(self, ec2: Any, subnet_id: str) -> None:
        """The attachment as RunTask answers it: PRECREATED, its subnet only (moto's
        random-address ENI, made at once, is deleted: Fargate creates the ENI later)."""
        attachment: dict[str, Any] = self.attachments[0]  # the ENI's, as the API shows it
        details = {d["name"]: d["value"] for d in attachment["details"]}
        ec2.delete_network_interface(details["networkInterfaceId"])
        attachment["status"] = "PRECREATED"
        attachment["details"] = [{"name": "subnetId", "value": subnet_id}]

    def _create_eni(self, ec2: Any, subnet_id: str, groups: list[str], public: bool) -> Any:
        """The task's ENI, with its loopback address: the attachment CREATED, its details
        (private IP among them) shown from now on."""
        attachment: dict[str, Any] = self.attachments[0]
        self.ip = self.process.ip = ec2.allocate_private_ip(subnet_id)
        eni = ec2.create_network_interface(
            subnet=subnet_id,
            private_ip_address=self.ip,
            group_ids=groups,
            description="ECS task ENI",
        )
        eni.status = "in-use"
        eni.device_index = 0
        if public:
            # Read from EC2 as on AWS. Without an enforcing firewall nothing would route
            # a distinct public address to the task: it is then the private one.
            network = vpc.network()
            eni.public_ip = network.public_ip() if network.enforced else self.ip
        attachment["status"] = "CREATED"
        attachment["details"] = [
            {"name": "subnetId", "value": subnet_id},
            {"name": "networkInterfaceId", "value": eni.id},
            {"name": "macAddress", "value": eni.mac_address},
            {"name": "privateDnsName", "value": eni.private_dns_name},
            {"name": "privateIPv4Address", "value": self.ip},
        ]
        self.containers[0].network_interfaces = [
            {"attachmentId": attachment["id"], "privateIpv4Address": self.ip}
        ]
        return eni

    # PROVISIONING and PENDING, each step on the timeline after its drawn delay.
    def provision(self, launch: Callable[[TaskProcess], None]) -> None:
        """RunTask has answered: create and attach the ENI, pull the image, then
        ``launch`` the process (the runtime's)."""
        self._launch = launch
        self._next(self._latency().draw("eni_created"), self._eni_created)

    def _next(self, delay: float, step: Callable[[], None]) -> None:
        self._timeline.schedule(delay, step, cancel=self._never_started)

    def _stopped_before_start(self) -> bool:
        """Whether StopTask came before the process started; if so, it never will.
        The caller holds the lock."""
        if self.desired_status != "STOPPED":
            return False
        if self.last_status not in ("DEPROVISIONING", "STOPPED"):
            self._exit(None)
        return True

    def _never_started(self) -> None:
        """The local Fargate stops while this task starts: it stops without running."""
        with self._lock:
            self.desired_status = "STOPPED"
            self._stopped_before_start()

    def _eni_created(self) -> None:
        with self._lock:
            if self._stopped_before_start():
                return
            self._eni = self._create_eni(*self._network)
        self._next(self._latency().draw("eni_attached") / 2, self._eni_attaching)

    def _eni_attaching(self) -> None:
        with self._lock:
            if self._stopped_before_start():
                return
            self.attachments[0]["status"] = "ATTACHING"
        self._next(self._latency().draw("eni_attached") / 2, self._eni_attached)

    def _eni_attached(self) -> None:
        with self._lock:
            if self._stopped_before_start():
                return
            self.attachments[0]["status"] = "ATTACHED"
            self.last_status = "PENDING"
            self.pull_started_at = _now()
        pulled = self._pull()
        if pulled is not None:
            self._next(self._latency().pull_seconds(pulled.compressed_bytes()), self._pulled)

    def _pulled(self) -> None:
        with self._lock:
            if self._stopped_before_start():
                return
            self.pull_stopped_at = _now()
        assert self._launch is not None
        self._launch(self.process)

    # The real lifecycle replaces moto's describe-driven state machine.
    @property
    def last_status(self) -> str:
        return self._status

    @last_status.setter
    def last_status(self, value: str) -> None:
        self._status = value

    def advance(self) -> None:
        """Do nothing: the state follows the process, not the number of describes."""

    def record(self) -> TaskRecord:
        """This task as the emulator sees it."""
        return TaskRecord(
            arn=self.task_arn,
            lastStatus=self.last_status,
            desiredStatus=self.desired_status,
            pid=self.process.pid,
            ip=self.ip,
            cpu=self.cpu,
            memory=self.memory,
            startedAt=self.started_at,
            stoppedAt=self.stopped_at,
            exitCode=self.containers[0].exitCode,
            stopCode=self.stop_code,
        )

    def metadata(self) -> dict[str, Any]:
        """This task's metadata document (endpoint version 4, the fields that matter)."""
        family, revision = self.task_definition_arn.rsplit("/", 1)[1].rsplit(":", 1)
        container = self.containers[0]
        network = {
            "NetworkMode": "awsvpc",
            "IPv4Addresses": [self.ip],
            "AttachmentIndex": 0,
            "MACAddress": self._eni.mac_address,
            "IPv4SubnetCIDRBlock": self._eni.subnet.cidr_block,
            "PrivateDNSName": self._eni.private_dns_name,
        }
        return {
            "Cluster": self.cluster_arn,
            "TaskARN": self.task_arn,
            "Family": family,
            "Revision": revision,
            "DesiredStatus": self.desired_status,
            "KnownStatus": self.last_status,
            "Limits": {"CPU": fargate.vcpus(int(self.cpu)), "Memory": int(self.memory)},
            "AvailabilityZone": self.availability_zone,
            "LaunchType": "FARGATE",
            "Containers": [
                {
                    "DockerId": f"{self.id}-0",
                    "Name": container.name,
                    "Image": container.image,
                    "DesiredStatus": self.desired_status,
                    "KnownStatus": container.last_status,
                    "Type": "NORMAL",
                    "Networks": [network],
                }
            ],
        }

    def stop(self, reason: str | None) -> None:
        """StopTask: SIGTERM now, SIGKILL after the container's stopTimeout."""
        with self._lock:
            if self.desired_status == "STOPPED":  # stopping or stopped already
                return
            self.desired_status = "STOPPED"
            self.stopping_at = _now()
            self.stop_code = "UserInitiated"
            self.stopped_reason = reason or "Task stopped by user"
            if self.last_status == "RUNNING":
                self.last_status = "STOPPING"
            if self._retrying is not None:  # never to start: stopped now
                self._retrying.cancel()
                self._exit(None)
        self.process.terminate()

    def interrupt_spot(self) -> None:
        """A Fargate Spot interruption: the stop code and reason AWS gives, SIGTERM now,
        SIGKILL after the container's stopTimeout."""
        with self._lock:
            if self.capacity_provider_name != "FARGATE_SPOT":
                raise ValueError(f"task {self.id} does not run on FARGATE_SPOT")
            if self.desired_status == "STOPPED":  # stopping or stopped already
                return
            self.desired_status = "STOPPED"
            self.stopping_at = _now()
            self.stop_code = fargate.SPOT_INTERRUPTION_CODE
            self.stopped_reason = fargate.SPOT_INTERRUPTION_REASON
            if self.last_status == "RUNNING":
                self.last_status = "STOPPING"
        self.process.terminate()

    def _pull(self) -> images.Pulled | None:
        """PENDING: the network, secrets, log stream and image checked and resolved, as
        AWS does them before the container starts; None if the task stops instead."""
        egress = reach.egress(self._eni.ec2_backend, self._eni.subnet.id, self._eni.public_ip)
        awslogs = self.log_config.get("logDriver") == "awslogs"
        unreachable = reach.start_failure(
            egress,
            self.region_name,
            self._image,
            self.log_config.get("options", {}).get("awslogs-region", self.region_name)
            if awslogs
            else None,
        )
        # Secrets come with the registry credentials, before the log stream and the pull.
        if self._secrets and not (unreachable and reach.REGISTRY_AUTH in unreachable):
            task = self._secrets_task(egress)
            unreachable = secrets.unreachable(self._secrets, task) or unreachable
        if unreachable:  # AWS retries for a while before it gives up
            with self._lock:
                self._retrying = threading.Timer(
                    vpc.network().failure_delay, self.failed, [unreachable]
                )
                self._retrying.daemon = True
                self._retrying.start()
            return None
        # Secrets and registry credentials come first ("unable to pull secrets or registry
        # auth"); their values reach the process's environment only.
        resolved = self._resolve_secrets(egress)
        if isinstance(resolved, str):
            self.failed(resolved)
            return None
        self.process.environment.update(resolved)
        refused = docker_hub.limit().refused(*reach.parse(self._image), egress.internet_source)
        pulled = refused or images.pull(
            self._image,
            self._container_environment,
            fargate.IMAGE_PLATFORMS[self.architecture],
            self._execution_role,
        )
        log_failure = self._open_log_stream()
        if log_failure:
            self.failed(log_failure)
            return None
        if isinstance(pulled, str):  # the pull failed: why
            self.failed(pulled)
            return None
        self.process.environment.update(pulled.environment())
        self._route(egress)
        vpc.changed()  # its security groups admit before it listens
        return pulled

    def _secrets_task(self, egress: reach.Egress) -> secrets.Task:
        return secrets.Task(
            self._account_id, self.region_name, self.id, self._execution_role, egress
        )

    def _resolve_secrets(self, egress: reach.Egress) -> dict[str, str] | str:
        """The container's ``secrets`` read with the execution role, or why the task stops."""
        return secrets.resolve(self._secrets, self._secrets_task(egress)) if self._secrets else {}

    def _route(self, egress: reach.Egress) -> None:
        """Tell the process how its traffic leaves (read by ``eni/sitecustomize.py``)."""
        vpc_cidr = self._eni.ec2_backend.get_vpc(self._eni.subnet.vpc_id).cidr_block
        self.process.environment.update(
            {
                "STARBURST_LOCAL_VPC_CIDR": vpc_cidr,
                "STARBURST_LOCAL_INTERNET_SOURCE": egress.internet_source or "",
                "STARBURST_LOCAL_LINK_LOCAL": self._metadata_uri.split("/")[2],
            }
        )

    # TaskHooks
    def prepare(self) -> bool:
        with self._lock:
            return not self._stopped_before_start()

    def started(self, pid: int) -> None:
        with self._lock:
            self.started_at = _now()
            self.last_status = "RUNNING" if self.desired_status == "RUNNING" else "STOPPING"
            self.containers[0].last_status = "RUNNING"

    def output(self, line: str) -> None:
        if self._log_stream:
            logs, group, stream = self._log_stream
            event = {"timestamp": int(_now().timestamp() * 1000), "message": line}
            logs.put_log_events(group, stream, [event])

    def failed(self, reason: str) -> None:
        with self._lock:
            if self.last_status in ("DEPROVISIONING", "STOPPED"):  # stopped while it retried
                return
            if self.stop_code is None:
                self.stop_code = "TaskFailedToStart"
                self.stopped_reason = reason
                self.containers[0].reason = reason  # type: ignore[attr-defined]  # see __init__
            self._exit(None)

    def exited(self, exit_code: int) -> None:
        with self._lock:
            if self.stop_code is None:
                self.stop_code = "EssentialContainerExited"
                self.stopped_reason = "Essential container in task exited"
            self._exit(exit_code)

    def _exit(self, exit_code: int | None) -> None:
        """The container has exited (or never started): DEPROVISIONING until the
        deprovisioner releases the ENI; the caller holds the lock."""
        now = _now()
        container = self.containers[0]
        container.last_status = "STOPPED"
        container.exitCode = exit_code  # type: ignore[assignment]  # see __init__
        self.desired_status = "STOPPED"
        self.stopping_at = self.stopping_at or now
        self.execution_stopped_at = now
        self.last_status = "DEPROVISIONING"
        if self._eni is not None:
            self.attachments[0]["status"] = "DETACHING"
        self._timeline.schedule(self._latency().draw("deprovisioning"), self._release)

    def _release(self) -> None:
        """Deprovisioning is over: the ENI is deleted, the task STOPPED."""
        with self._lock:
            self.stopped_at = _now()
            self.attachments[0]["status"] = "DELETED"
            if self._eni is not None:
                with suppress(InvalidNetworkInterfaceIdError):  # already deleted by a user
                    self._eni.ec2_backend.delete_network_interface(self._eni.id)
            self.last_status = "STOPPED"
        vpc.changed()

    def _open_log_stream(self) -> str | None:
        """Create the awslogs stream ``prefix/container/task-id``; return why not, if not."""
        if self.log_config.get("logDriver") != "awslogs":
            return None
        options = self.log_config.get("options", {})
        group = options.get("awslogs-group", "")
        region = options.get("awslogs-region", self.region_name)
        logs = logs_backends[self._account_id][region]
        if group not in logs.groups:
            return (
                "ResourceInitializationError: failed to validate logger args: failed to "
                "create Cloudwatch log stream: ResourceNotFoundException: The specified "
                f"log group does not exist: {group}"
            )
        parts = [options.get("awslogs-stream-prefix"), self.containers[0].name, self.id]
        stream = "/".join(p for p in parts if p)
        logs.ensure_log_stream(group, stream)
        self._log_stream = (logs, group, stream)
        return None


def _default_group(ec2: vpc.LocalEc2Backend, vpc_id: str) -> str:
    """The id of the VPC's default security group (every VPC has one, as on AWS)."""
    group = ec2.get_default_security_group(vpc_id)
    if group is None:
        raise RuntimeError(f"{vpc_id} has no default security group")
    return group.id


def _command(container_def: dict[str, Any], overrides: dict[str, Any]) -> list[str]:
    """Docker's rule: entry point, then the command (the override replaces the command)."""
    override = _container_override(container_def, overrides)
    command = override.get("command") or container_def.get("command") or []
    return [*container_def.get("entryPoint", []), *command]


def _environment(container_def: dict[str, Any], overrides: dict[str, Any]) -> dict[str, str]:
    override = _container_override(container_def, overrides)
    pairs = [*container_def.get("environment", []), *override.get("environment", [])]
    return {pair["name"]: pair["value"] for pair in pairs}


def _container_override(container_def: dict[str, Any], overrides: dict[str, Any]) -> dict:
    for override in overrides.get("containerOverrides", []):
        if override.get("name") == container_def.get("name"):
            return override
    return {}
