"""ECS for the local Fargate: moto's ECS backend whose Fargate tasks are local processes.

:func:`install` swaps :class:`LocalEcsBackend` into moto's ``ecs_backends``; it answers
through :class:`LocalEcsResponse`, with AWS's validation, defaults and limits, and
counts what it receives for tests.
"""

from __future__ import annotations

import datetime
import itertools
import json
import threading
import types
from collections import Counter, deque
from typing import Any

from moto.core.responses import ActionResult
from moto.ec2.models import ec2_backends
from moto.ecs import urls as moto_ecs_urls
from moto.ecs.exceptions import (
    EcsClientException,
    InvalidParameterException,
)
from moto.ecs.models import (
    EC2ContainerServiceBackend,
    Task,
    TaskDefinition,
    ecs_backends,
)
from moto.ecs.responses import EC2ContainerServiceResponse

from .. import fargate
from . import deletion, iam, limits
from .latency import Latency
from .metadata import MetadataServer
from .quotas import FargateAccount
from .runtime import Runtime
from .task import LocalTask
from .task_role import TaskRoles
from .timeline import Timeline

#: Kinds of injected RunTask faults (see :meth:`Controls.fail_next_run_task`).
FAULT_KINDS = ("throttle", "capacity")
#: Account settings' values where the account set none, as ListAccountSettings answers
#: with ``effectiveSettings`` (AWS CLI reference, list-account-settings example 1: the
#: long ARN formats ``enabled``, for the root user).
DEFAULT_ACCOUNT_SETTINGS = {
    "containerInstanceLongArnFormat": "enabled",
    "serviceLongArnFormat": "enabled",
    "taskLongArnFormat": "enabled",
}


class Controls:
    """Shared by all ECS backends of one local Fargate: processes, faults, counters."""

    def __init__(self, runtime: Runtime, account: FargateAccount, latency: Latency) -> None:
        self.runtime = runtime
        self.account = account
        #: How long each phase of a task's lifecycle takes (settable while running).
        self.latency = latency
        #: Runs each task's next phase once its time is over.
        self.timeline = Timeline()
        #: The task role credentials issued to tasks (``task_role.py``).
        self.task_roles = TaskRoles()
        self.metadata = MetadataServer(_task_metadata, self.task_roles.document)
        self.calls: Counter[str] = Counter()
        self.run_task_counts: list[int] = []
        self.describe_task_sizes: list[int] = []
        #: Tasks RunTask refused because the vCPU quota had no room.
        self.quota_refusals = 0
        #: Calls answered with ThrottlingException for exceeding a rate limit.
        self.throttled_calls = 0
        self._faults: deque[str] = deque()
        #: Tasks placed so far: each takes the next of its subnets, in turn.
        self.placements = itertools.count()
        self._lock = threading.Lock()

    def fail_next_run_task(self, n: int, kind: str) -> None:
        """Make the next ``n`` RunTask calls fail with ``kind`` (see :data:`FAULT_KINDS`)."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"kind must be one of {FAULT_KINDS}, not {kind!r}")
        with self._lock:
            self._faults.extend([kind] * n)

    def next_fault(self) -> str | None:
        """Take the fault for this RunTask call, if one is pending."""
        with self._lock:
            return self._faults.popleft() if self._faults else None

    def count_call(self, action: str) -> None:
        """Count one ECS request (requests arrive on many threads)."""
        with self._lock:
            self.calls[action] += 1

    def close(self) -> None:
        """Stop every task and wait for it; stop serving task metadata."""
        self.timeline.close()  # tasks still starting never start; exited ones STOPPED now
        self.runtime.shutdown()  # the rest exit, and are STOPPED at once
        self.metadata.close()

    def reset_counters(self) -> None:
        """Forget the calls seen so far."""
        self.calls.clear()
        self.run_task_counts.clear()
        self.describe_task_sizes.clear()
        self.quota_refusals = 0
        self.throttled_calls = 0


_controls: Controls | None = None


def install(controls: Controls) -> None:
    """Make moto's ECS run Fargate tasks as local processes, until :func:`uninstall`.

    Must run before moto builds an ECS backend for the server: ``ecs_backends`` builds
    each (account, region) backend lazily from its ``backend`` class.
    """
    global _controls
    if _controls is not None:
        raise RuntimeError("a local Fargate is already running in this process")
    _controls = controls
    ecs_backends.backend = LocalEcsBackend
    ecs_backends.clear()  # drop backends built from the stock class


def uninstall() -> None:
    """Restore moto's stock ECS backend class."""
    global _controls
    _controls = None
    ecs_backends.backend = EC2ContainerServiceBackend
    ecs_backends.clear()


def controls() -> Controls:
    """The installed :class:`Controls`."""
    if _controls is None:
        raise RuntimeError("the local Fargate is not running")
    return _controls


def local_tasks() -> list[LocalTask]:
    """Every local task of every account and region."""
    return [
        task
        for backend in _backends()
        for cluster_tasks in list(backend.tasks.values())  # copies: RunTask adds meanwhile
        for task in list(cluster_tasks.values())
        if isinstance(task, LocalTask)
    ]


def task_usage() -> list[tuple[str, float, str, str]]:
    """``(capacity provider, vCPUs, account, region)`` of every task not yet STOPPED."""
    return [
        (
            task.capacity_provider_name or "FARGATE",
            fargate.vcpus(int(task.cpu)),
            backend.account_id,
            backend.region_name,
        )
        for backend in _backends()
        for cluster_tasks in list(backend.tasks.values())  # copies: RunTask adds meanwhile
        for task in list(cluster_tasks.values())
        if isinstance(task, LocalTask) and task.last_status != "STOPPED"
    ]


def _backends() -> list[LocalEcsBackend]:
    # install() and uninstall() clear the backends: while installed, every one is local.
    return [
        backend
        for _, _, backend in ecs_backends.iter_backends()
        if isinstance(backend, LocalEcsBackend)
    ]


def _task_metadata(task_id: str) -> dict[str, Any] | None:
    for task in local_tasks():
        if task.id == task_id:
            return task.metadata()
    return None


class LocalEcsBackend(EC2ContainerServiceBackend):
    """moto's ECS backend whose tasks are Fargate tasks run by the local runtime."""

    @property
    def _url_module(self) -> Any:
        # moto finds a backend's handlers in the urls module next to its class.
        return types.SimpleNamespace(
            url_bases=moto_ecs_urls.url_bases,
            url_paths={"{0}/$": LocalEcsResponse.dispatch},
        )

    @property
    def controls(self) -> Controls:
        return controls()

    def register_task_definition(  # type: ignore[override]
        self, family: str, container_definitions: list[dict[str, Any]], **kwargs: Any
    ) -> TaskDefinition:
        if "FARGATE" in (kwargs.get("requires_compatibilities") or []):
            _check_fargate_definition(kwargs)
            limits.check_fargate_logging(kwargs, container_definitions)
        limits.check_container_secrets(kwargs, container_definitions)
        limits.check_ecs_tags(kwargs.get("tags") or [])
        definition = super().register_task_definition(family, container_definitions, **kwargs)
        # AWS answers when a revision was registered (and deregistered); moto's model has
        # no such fields, and its answers carry the attributes named after them.
        definition.registered_at = datetime.datetime.now(datetime.timezone.utc)  # type: ignore[attr-defined]
        return definition

    def deregister_task_definition(self, task_definition_str: str) -> TaskDefinition:
        definition = super().deregister_task_definition(task_definition_str)
        definition.deregistered_at = datetime.datetime.now(datetime.timezone.utc)  # type: ignore[attr-defined]
        return definition

    def create_cluster(
        self,
        cluster_name: str,
        tags: Any = None,
        cluster_settings: Any = None,
        configuration: dict[str, Any] | None = None,
        capacity_providers: list[str] | None = None,
        default_capacity_provider_strategy: list[dict[str, Any]] | None = None,
        service_connect_defaults: dict[str, str] | None = None,
    ) -> Any:
        limits.check_ecs_tags(tags or [])
        # ECS creates its service-linked role with a cluster; capacity providers need it
        # usable at once, which a role created just now is not.
        iam.ensure_service_linked_role(self.account_id)
        if capacity_providers:
            iam.check_service_linked_role(self.account_id)
        return super().create_cluster(
            cluster_name,
            tags,
            cluster_settings,
            configuration,
            capacity_providers,
            default_capacity_provider_strategy,
            service_connect_defaults,
        )

    def delete_cluster(self, cluster_str: str) -> Any:
        # moto deletes whatever the cluster holds; ECS refuses.
        deletion.check_delete_cluster(self, self._get_cluster(cluster_str))
        return super().delete_cluster(cluster_str)

    def put_cluster_capacity_providers(
        self,
        cluster_name: str,
        capacity_providers: list[str] | None,
        default_capacity_provider_strategy: Any,
    ) -> Any:
        if capacity_providers:
            iam.check_service_linked_role(self.account_id)
        return super().put_cluster_capacity_providers(
            cluster_name, capacity_providers, default_capacity_provider_strategy
        )

    def tag_resource(self, arn: str, tags: dict[str, str]) -> None:
        existing = {t["key"]: t["value"] for t in self.list_tags_for_resource(arn) or []}
        given = dict(tags)
        limits.check_ecs_tags([{"key": k, "value": v} for k, v in {**existing, **given}.items()])
        super().tag_resource(arn, tags)

    def check_run_task_request(
        self,
        task_definition_str: str,
        overrides: dict[str, Any],
        started_by: str | None,
        tags: list[dict[str, str]],
    ) -> None:
        """RunTask's documented limits, the roles of its tasks, ECS's service-linked role."""
        limits.check_run_task(overrides, started_by, tags)
        definition = self.describe_task_definition(task_definition_str)
        for key, attribute in (
            ("executionRoleArn", "execution_role_arn"),
            ("taskRoleArn", "task_role_arn"),
        ):
            arn = overrides.get(key) or getattr(definition, attribute, None)
            if arn:
                iam.check_task_role(self.account_id, arn)
        # awsvpc tasks: ECS manages their network interfaces through this role.
        iam.check_service_linked_role(self.account_id)

    def check_run_task(
        self,
        cluster_str: str,
        task_definition_str: str,
        count: int,
        launch_type: str | None,
        networking_configuration: dict[str, Any] | None,
        capacity_provider_strategy: list[dict[str, Any]] | None,
    ) -> str | None:
        """Validate a RunTask as AWS does; return the capacity provider's name, if any."""
        if not 1 <= count <= fargate.RUN_TASK_MAX_COUNT:
            raise InvalidParameterException(
                f"Task count must be between 1 and {fargate.RUN_TASK_MAX_COUNT}."
            )
        if launch_type and capacity_provider_strategy:
            raise InvalidParameterException(
                "Specify either Launch Type or Capacity Provider Strategy, but not both."
            )
        cluster = self._get_cluster(cluster_str)
        strategy = capacity_provider_strategy
        if not launch_type and not strategy:
            strategy = cluster.default_capacity_provider_strategy
        provider = strategy[0]["capacityProvider"] if strategy else None
        if capacity_provider_strategy and provider not in (cluster.capacity_providers or []):
            raise InvalidParameterException(
                "The specified capacity provider strategy cannot contain a capacity provider "
                "that is not associated with the cluster. Associate the capacity provider "
                "with the cluster or specify a valid capacity provider and try again."
            )
        if launch_type != "FARGATE" and provider not in fargate.CAPACITY_PROVIDERS:
            raise InvalidParameterException(
                "The local Fargate runs Fargate tasks only: use launchType FARGATE or a "
                "FARGATE or FARGATE_SPOT capacity provider."
            )
        task_definition = self.describe_task_definition(task_definition_str)
        if "FARGATE" not in task_definition.compatibilities:
            raise InvalidParameterException("Task definition does not support launch_type FARGATE.")
        vpc_config = (networking_configuration or {}).get("awsvpcConfiguration") or {}
        if not vpc_config.get("subnets"):
            raise InvalidParameterException(
                "Network Configuration must be provided when networkMode 'awsvpc' is "
                "specified, with at least one subnet."
            )
        limits.check_network(ec2_backends[self.account_id][self.region_name], vpc_config)
        return provider

    def run_task(  # type: ignore[override]  # its tasks are LocalTasks
        self,
        cluster_str: str,
        task_definition_str: str,
        count: int,
        overrides: dict[str, Any] | None,
        started_by: str,
        tags: list[dict[str, str]] | None,
        launch_type: str | None,
        networking_configuration: dict[str, Any] | None = None,
        group: str | None = None,
        platform_version: str | None = None,
        capacity_provider_strategy: list[dict[str, Any]] | None = None,
    ) -> list[LocalTask]:
        provider = self.check_run_task(
            cluster_str,
            task_definition_str,
            count,
            launch_type,
            networking_configuration,
            capacity_provider_strategy,
        )
        cluster = self._get_cluster(cluster_str)
        task_definition = self.describe_task_definition(task_definition_str)
        tasks = [
            LocalTask(
                cluster,
                task_definition,
                self,
                metadata=self.controls.metadata,
                task_roles=self.controls.task_roles,
                timeline=self.controls.timeline,
                latency=lambda: self.controls.latency,
                network=_placed(networking_configuration or {}, next(self.controls.placements)),
                capacity_provider_name=provider,
                overrides=overrides or {},
                group=group or f"family:{task_definition.family}",
                started_by=started_by or "",
                tags=tags or [],
            )
            for _ in range(count)
        ]
        for task in tasks:  # launched by the response, once it has been written
            self.tasks.setdefault(cluster.name, {})[task.task_arn] = task
        return tasks

    def find_task(self, cluster_str: str, task_str: str) -> LocalTask | None:
        """The task of ``cluster_str`` with this ARN or id, if any."""
        cluster = self._get_cluster(cluster_str)
        task_id = task_str.split("/")[-1]
        # A copy: RunTask adds tasks from other request threads meanwhile.
        for task in list(self.tasks.get(cluster.name, {}).values()):
            if isinstance(task, LocalTask) and (task_str == task.task_arn or task_id == task.id):
                return task
        return None

    def describe_tasks(self, cluster_str: str, tasks: list[str]) -> list[Task]:
        if not tasks:
            raise InvalidParameterException("Tasks cannot be empty.")
        found = [self.find_task(cluster_str, task) for task in tasks]
        return [task for task in found if task is not None]

    def stop_task(self, cluster_str: str, task_str: str, reason: str) -> Task:
        task = self.find_task(cluster_str, task_str)
        if task is None:
            raise InvalidParameterException("The referenced task was not found.")
        task.stop(reason)
        return task


def _placed(network: dict[str, Any], i: int) -> dict[str, Any]:
    """The network of the ``i``-th task placed: Fargate spreads tasks over the subnets
    (and so zones) they were given; the task's ENI is in the first one listed here."""
    vpc_config = network.get("awsvpcConfiguration") or {}
    subnets = list(vpc_config.get("subnets") or [])
    if len(subnets) < 2:
        return network
    k = i % len(subnets)
    return {**network, "awsvpcConfiguration": {**vpc_config, "subnets": subnets[k:] + subnets[:k]}}


def _throttled() -> tuple[str, dict[str, Any]]:
    """AWS's throttling answer. Written by hand: ECS's API model lacks this error (AWS's
    common layer sends it), and moto would warn about serializing it."""
    body = json.dumps({"__type": "ThrottlingException", "message": "Rate exceeded"})
    return body, {"status": 400}


def _check_fargate_definition(kwargs: dict[str, Any]) -> None:
    """RegisterTaskDefinition's Fargate rules: awsvpc, and a valid task-level size."""
    network_mode = kwargs.get("network_mode")
    if network_mode not in (None, "awsvpc"):
        raise EcsClientException("Fargate only supports network mode 'awsvpc'.")
    cpu, memory = kwargs.get("cpu"), kwargs.get("memory")
    if not cpu or not memory:
        raise EcsClientException(
            "Fargate requires that 'cpu' and 'memory' be defined at the task level."
        )
    try:
        why = fargate.check_task_size(int(cpu), int(memory))
    except ValueError:
        why = f"cpu and memory must be numbers of CPU units and MiB, not {cpu!r}, {memory!r}"
    if why:
        raise EcsClientException(
            f"No Fargate configuration exists for given values: {cpu} CPU, {memory} memory. {why}."
        )


class LocalEcsResponse(EC2ContainerServiceResponse):
    """ECS API answers with real failures, AWS's defaults and limits, and counters."""

    @property
    def ecs_backend(self) -> LocalEcsBackend:
        backend = super().ecs_backend
        if not isinstance(backend, LocalEcsBackend):
            raise RuntimeError("the local Fargate is not running")
        return backend

    def call_action(self) -> Any:
        action = self._get_action()
        controls().count_call(action)
        launches = self._get_int_param("count", 1) if action == "RunTask" else 0
        if controls().account.throttled(action, launches):
            controls().throttled_calls += 1
            return 400, {"Content-Type": "application/x-amz-json-1.1"}, _throttled()[0]
        return super().call_action()

    def run_task(  # type: ignore[override]  # may answer with the written body and headers
        self,
    ) -> ActionResult | tuple[str | bytes, dict[str, Any]]:
        count = self._get_int_param("count", 1)
        controls().run_task_counts.append(count)
        fault = controls().next_fault()
        if fault == "throttle":
            return _throttled()
        cluster_str = self._get_param("cluster", "default")
        definition_str = self._get_param("taskDefinition")
        launch_type = self._get_param("launchType")
        network = self._get_param("networkConfiguration")
        strategy = self._get_param("capacityProviderStrategy")
        provider = self.ecs_backend.check_run_task(
            cluster_str, definition_str, count, launch_type, network, strategy
        )
        self.ecs_backend.check_run_task_request(
            definition_str,
            self._get_param("overrides") or {},
            self._get_param("startedBy"),
            self._get_param("tags") or [],
        )
        limits.check_platform_version(
            self.ecs_backend.describe_task_definition(definition_str).runtime_platform,
            self._get_param("platformVersion"),
        )
        if fault == "capacity":
            failures = [{"reason": limits.CAPACITY_UNAVAILABLE} for _ in range(count)]
            return ActionResult({"tasks": [], "failures": failures})
        overrides = self._get_param("overrides") or {}
        definition = self.ecs_backend.describe_task_definition(definition_str)
        cpu = overrides.get("cpu") or definition.cpu
        assert cpu is not None, "registering a Fargate task definition requires its cpu"
        vcpus = fargate.vcpus(int(cpu))
        account = controls().account
        with account.lock:  # admit and register at once, or two calls could share room
            admitted, reason = account.admit(
                provider or "FARGATE", vcpus, count, self.current_account
            )
            tasks = (
                self.ecs_backend.run_task(
                    cluster_str,
                    definition_str,
                    admitted,
                    overrides,
                    self._get_param("startedBy"),
                    self._get_param("tags"),
                    launch_type,
                    network,
                    self._get_param("group"),
                    self._get_param("platformVersion"),
                    strategy,
                )
                if admitted
                else []
            )
        failures = [{"reason": reason} for _ in range(count - admitted)]
        controls().quota_refusals += len(failures)
        # AWS answers with the tasks PROVISIONING: write the answer, then start them.
        status, headers, body = self.serialized(
            ActionResult({"tasks": tasks, "failures": failures})
        )
        for task in tasks:
            task.provision(controls().runtime.launch)
        return body, {**headers, "status": status}

    def describe_tasks(self) -> ActionResult:
        refs = self._get_param("tasks", [])
        controls().describe_task_sizes.append(len(refs))
        if len(refs) > fargate.DESCRIBE_TASKS_MAX:
            raise InvalidParameterException(
                f"Tasks cannot contain more than {fargate.DESCRIBE_TASKS_MAX} items."
            )
        result = super().describe_tasks()
        cluster = self._get_param("cluster", "default")
        result.result["failures"] = [  # type: ignore[index]
            {"arn": ref, "reason": "MISSING"}
            for ref in refs
            if self.ecs_backend.find_task(cluster, ref) is None
        ]
        return result

    def list_account_settings(self) -> ActionResult:
        """With ``effectiveSettings``, the defaults of the settings the account has not
        set, for its root user, as AWS answers (moto answers none)."""
        result = super().list_account_settings()
        if not self._get_bool_param("effectiveSettings", False):
            return result
        settings = [
            {"name": s.name, "value": s.value, "principalArn": self._root()}
            for s in result.result["settings"]  # type: ignore[index]
        ]
        name, value = self._get_param("name"), self._get_param("value")
        for default, default_value in sorted(DEFAULT_ACCOUNT_SETTINGS.items()):
            if default in {s["name"] for s in settings} or name not in (None, default):
                continue
            if value in (None, default_value):
                settings.append(
                    {"name": default, "value": default_value, "principalArn": self._root()}
                )
        return ActionResult({"settings": settings})

    def _root(self) -> str:
        return f"arn:aws:iam::{self.current_account}:root"

    def list_tasks(self) -> ActionResult:
        max_results = self._get_int_param("maxResults", fargate.LIST_TASKS_MAX)
        if not 1 <= max_results <= fargate.LIST_TASKS_MAX:
            raise InvalidParameterException(
                f"maxResults must be between 1 and {fargate.LIST_TASKS_MAX}."
            )
        tasks = self.ecs_backend.list_tasks(
            self._get_param("cluster", "default"),
            self._get_param("containerInstance"),
            self._get_param("family"),
            self._get_param("startedBy"),
            self._get_param("serviceName"),
            # AWS lists only tasks meant to run unless asked for stopped ones.
            self._get_param("desiredStatus") or "RUNNING",
        )
        token = self._get_param("nextToken") or "0"
        if not token.isdigit():
            raise InvalidParameterException("Invalid nextToken.")
        start = int(token)
        page = tasks[start : start + max_results]
        result: dict[str, Any] = {"taskArns": [task.task_arn for task in page]}
        if start + max_results < len(tasks):
            result["nextToken"] = str(start + max_results)
        return ActionResult(result)
