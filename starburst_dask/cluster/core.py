"""FargateCluster: a dask cluster whose scheduler and workers are ECS Fargate tasks."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import math
import sys
import weakref
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from dask.utils import format_bytes, parse_bytes
from distributed.core import Status
from distributed.deploy.spec import ProcessInterface, SpecCluster
from distributed.utils import NoOpAwaitable

from .. import fargate
from ..aws.clients import AwsClients, client_config, preflight
from ..cost import limit
from ..cost.meter import CostMeter
from ..ecs import quota, tasks
from ..errors import (
    ConfigurationError,
    CostLimitExceeded,
    QuotaExceededError,
    StarburstError,
    TaskFailedError,
)
from ..images import resolve_cluster_image
from ..options import ClusterOptions
from . import lifetime
from .replacement import ReplacementPolicy

logger = logging.getLogger(__name__)


class FargateTask(ProcessInterface):
    """One ECS task of a cluster, seen by ``SpecCluster`` as a scheduler or worker.

    Parameters
    ----------
    cluster : FargateCluster
        The cluster the task belongs to (held weakly).
    task_arn : str, optional
        The task, when it was launched already (workers are launched in batches).
    """

    role = "task"

    def __init__(self, *args: Any, cluster: FargateCluster, task_arn: str | None = None,
                 **kwargs: Any) -> None:
        self._cluster = weakref.ref(cluster)
        self.task_arn = task_arn
        super().__init__()

    @property
    def cluster(self) -> FargateCluster:
        cluster = self._cluster()
        assert cluster is not None, "task outlived its cluster"
        return cluster

    async def close(self) -> None:
        """Stop the task and wait until ECS reports it STOPPED."""
        if self.task_arn is not None:
            await self.cluster._stop_tasks([self.task_arn], f"{self.role} closed by its cluster")
        await super().close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.task_arn}: status={self.status.name}>"


class FargateScheduler(FargateTask):
    """The scheduler task: launched on start, ready when its address is known."""

    role = "scheduler"

    async def start(self) -> None:
        cluster = self.cluster
        self.task_arn = await cluster._launch_scheduler()
        task = await cluster._watcher.running(self.task_arn, cluster.options.launch_timeout)
        private, public = await tasks.task_addresses(cluster._aws.ec2, task)
        # Workers, in the VPC, reach it at its private address; the client too when it is
        # in the VPC, else at its public address (SpecCluster connects to this one).
        self.address = f"tcp://{private}:{tasks.SCHEDULER_PORT}"
        if public and not cluster.options.inside_vpc:
            self.external_address = f"tcp://{public}:{tasks.SCHEDULER_PORT}"
        await super().start()


class FargateWorker(FargateTask):
    """A worker task, launched by the cluster in a batch; ready when it is RUNNING."""

    role = "worker"

    def __init__(self, scheduler: str, name: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.name = name

    async def start(self) -> None:
        await self.cluster._watcher.running(self.task_arn, self.cluster.options.launch_timeout)
        await super().start()


class FargateCluster(SpecCluster):
    """A dask cluster on AWS ECS Fargate: a scheduler task and worker tasks.

    Every option defaults to dask config ``starburst.*`` (see ``starburst.yaml``);
    arguments win.

    Parameters
    ----------
    n_workers : int
        Workers to start with.
    worker_cpu, worker_memory : int
        Worker task size in Fargate CPU units (1024 = 1 vCPU) and MiB.
    scheduler_cpu, scheduler_memory : int
        Scheduler task size.
    image : str
        Container image with dask and distributed matching the client's (checked
        before launch when its tag records them).
    software : str or path
        Instead of ``image``: an ``environment.yml``, a ``conda-lock.yml``, or
        ``"current"`` (this environment); its image is built once per content and kept
        in ECR (see ``starburst_dask.images``).
    region : str
        AWS region; default: the AWS SDK's configured region.
    cluster : str
        ECS cluster name or ARN.
    subnets, security_groups : list of str
        Task network; default: the default VPC's subnets and default security group.
    assign_public_ip : bool or "auto"
        Give tasks public IPs; ``"auto"`` (default): where the subnets route to an internet
        gateway, as tasks there need one to pull their image and send logs.
    inside_vpc : bool
        The client runs inside the tasks' VPC: connect to the scheduler's private IP
        (default: its public IP, when tasks have one).
    execution_role, task_role : str
        IAM role names or ARNs for pulling images and writing logs, and for the tasks.
    log_group : str
        CloudWatch Logs group for task output.
    environment : dict
        Extra environment variables for every task.
    tags : dict
        Extra tags for every task.
    scheduler_timeout : int
        Seconds the scheduler stays up with no client before it exits.
    name : str
        Cluster name, also every task's ``startedBy``; generated when omitted.
    asynchronous : bool
        Use from async code: ``async with FargateCluster(asynchronous=True) as cluster``.
    **options
        Further ``starburst.*`` options (``worker_death_timeout``, ``launch_timeout``,
        ``poll_interval``).

    Examples
    --------
    >>> from dask.distributed import Client
    >>> client = Client(FargateCluster(n_workers=4))  # doctest: +SKIP
    """

    def __init__(self, n_workers: int | None = None, *, asynchronous: bool = False,
                 **options: Any) -> None:
        self.options = ClusterOptions.resolve(n_workers=n_workers, **options)
        self._aws = AwsClients(self.options.region)
        self._aws.check_credentials()
        #: Cost: estimate, running total and rate, limits; made in _start (prices are I/O).
        self.cost: CostMeter | None = None
        # Before any task starts: the image for `software` (found or built in ECR), and
        # a clear error if the image's distributed is not the client's.
        self.options = resolve_cluster_image(self.options)
        self._requested = self.options.n_workers
        self._launch_lock = asyncio.Lock()
        self._watcher: tasks.TaskWatcher | None = None
        self._scheduler_lost = False
        #: Capacity providers for workers, in order of preference.
        self._worker_providers = {False: ("FARGATE",), True: ("FARGATE_SPOT",),
                                  "fallback": ("FARGATE_SPOT", "FARGATE")}[self.options.spot]
        #: The workers' vCPU quota as this cluster last saw it, with its running and
        #: waiting workers.
        self.quota = quota.QuotaStatus(self._worker_providers[0])
        self._quota_waiter: asyncio.Task | None = None
        self._quota_request: asyncio.Task | None = None  # auto-request files at most one
        self._room = asyncio.Event()  # set when one of our tasks stops
        #: Relaunching workers that stop: back off after failures, give up after many.
        self.replacement = ReplacementPolicy()
        self._joined: set[str] = set()  # names of workers that reached the scheduler
        #: Every task this cluster launched and has not yet seen STOPPED.
        self._live: set[str] = set()
        self._stopping: set[str] = set()
        self._vcpus: dict[str, tuple[str, float]] = {}  # capacity provider, vCPUs of each
        self._finalizer = weakref.finalize(self, _stop_leftovers, self.options, self._live)
        worker = {"cls": FargateWorker, "options": {
            "nthreads": self.options.worker_vcpus,
            "memory_limit": self.options.worker_memory_limit,
        }}
        try:
            super().__init__(
                scheduler={"cls": FargateScheduler, "options": {"cluster": self}},
                worker=worker,
                asynchronous=asynchronous,
                name=self.options.name,
            )
        except BaseException:
            if not asynchronous:  # _start failed: SpecCluster leaves its loop thread running
                self._loop_runner.stop()
            raise
        if not asynchronous and self.quota.waiting and not self.options.quota_auto_request \
                and sys.stdin is not None and sys.stdin.isatty():
            self._offer_quota_request()

    @property
    def quota_needed(self) -> int:
        """vCPUs the quota would need for every requested worker to run."""
        return math.ceil(self.quota.usage
                         + self.quota.waiting * fargate.vcpus(self.options.worker_cpu))

    def _offer_quota_request(self) -> None:
        """Ask, at a terminal, whether to file the quota increase that would fit everything."""
        self.sync(self._fits, self.options.worker_cpu, self.quota.capacity_provider)
        answer = input(f"Request quota increase to {self.quota_needed} vCPU? [y/N] ")
        if answer.strip().lower() in ("y", "yes"):
            self.sync(self._request_quota)

    async def _request_quota(self) -> None:
        provider = self.quota.capacity_provider
        try:
            await self._fits(self.options.worker_cpu, provider)  # usage now, not at launch
            request = await quota.request_increase(self._aws.quotas, provider,
                                                   self.quota_needed)
        except (ClientError, BotoCoreError, ConfigurationError) as e:
            logger.warning("could not request a quota increase: %s", e)
            return
        self._log(f"Requested a Fargate vCPU quota of {request['DesiredValue']:g}: "
                  f"{request['Status']}; waiting workers launch once it is approved")

    async def _start(self) -> None:
        if self.status != Status.created:
            return await super()._start()
        try:
            await self._start_tasks()
        except BaseException as e:
            self.status = Status.failed
            await self._close()
            # SpecCluster wraps a failed scheduler start; show users our own error.
            if isinstance(e.__cause__, StarburstError):
                raise e.__cause__ from None
            raise

    async def _start_tasks(self) -> None:
        self._lock = asyncio.Lock()  # SpecCluster makes it later; _close needs it sooner
        # Refuses over max_hourly_cost, before anything is created.
        self.cost = await CostMeter.create(
            self.options, lambda: self._watcher.tasks.values() if self._watcher else ())
        await self._aws.open()
        found = await preflight(self._aws, self.options)
        definition = await tasks.ensure_task_definition(self._aws.ecs, self.options, found)
        self._launcher = tasks.TaskLauncher(
            self._aws.ecs, found["cluster_arn"], definition,
            subnets=found["subnets"], security_groups=found["security_groups"],
            assign_public_ip=found["assign_public_ip"], started_by=self.options.name,
            deadline=self.options.launch_deadline,
        )
        self._watcher = tasks.TaskWatcher(self._aws.ecs, found["cluster_arn"],
                                          self.options.poll_interval, self._on_stopped)
        self._governor = quota.QuotaGovernor(self._aws.quotas, self._aws.cloudwatch)
        self._log(
            f"Launching {self.options.name}: scheduler {_size(self.options, 'scheduler')}, "
            f"{self._requested} workers {_size(self.options, 'worker')}"
        )
        self.cost.start(self._log, self._halt, keep=self._keep_log)  # max_cost, cost_alert
        await super()._start()
        await self._launch_workers()
        while self._requested and not self.worker_spec and self._quota_waiter:
            # Not one worker fits: wait, within the deadline.
            await asyncio.wait([self._quota_waiter], timeout=self.options.poll_interval)
            if self._quota_waiter.done():
                self._quota_waiter.result()  # raises QuotaExceededError

    async def _launch(self, count: int, role: str, provider: str = "FARGATE",
                      retry_capacity: bool = True) -> tasks.Launch:
        """Start ``count`` scheduler or worker tasks; every one started is tracked."""
        o = self.options
        if role == "scheduler":
            command, cpu, memory = tasks.scheduler_command(o), o.scheduler_cpu, o.scheduler_memory
            command += lifetime.scheduler_args(o)  # idle clients, max lifetime
        else:
            command = tasks.worker_command(o, self.scheduler.address)
            command += lifetime.worker_args(o)
            cpu, memory = o.worker_cpu, o.worker_memory
        try:
            launch = await self._launcher.run(count, command=command, cpu=cpu, memory=memory,
                                              environment=o.environment,
                                              tags=tasks.task_tags(o, role),
                                              capacity_provider=provider,
                                              retry_capacity=retry_capacity)
        except TaskFailedError as e:
            self._track(e.arns, cpu, provider)  # type: ignore[attr-defined]
            raise
        self._track(launch.arns, cpu, provider)
        return launch

    def _record_usage(self) -> None:
        for provider in fargate.QUOTA_CODES:
            self._governor.record(provider, sum(
                v for p, v in map(self._vcpus.get, self._live) if p == provider))

    async def _fits(self, cpu: int, provider: str = "FARGATE") -> int:
        """How many tasks of ``cpu`` units fit under a quota now; refreshes ``quota``."""
        status = await self._governor.status(provider)
        if provider == self.quota.capacity_provider:
            self.quota.quota, self.quota.usage = status.quota, status.usage
        return quota.fits(status, fargate.vcpus(cpu))

    async def _launch_scheduler(self) -> str:
        """Launch the scheduler task once the quota has room for it."""
        deadline = quota.Deadline(self.options.launch_deadline)
        while True:
            if await self._fits(self.options.scheduler_cpu):
                launch = await self._launch(1, role="scheduler")
                if launch.arns:
                    return launch.arns[0]
            if deadline.expired:
                raise QuotaExceededError(quota.quota_error(
                    "FARGATE", fargate.vcpus(self.options.scheduler_cpu), self.quota,
                    deadline.elapsed))
            self._log(f"No room for the scheduler under the quota: {self.quota}")
            await asyncio.sleep(min(self.options.quota_interval, deadline.remaining))

    def _track(self, arns: list[str], cpu: int, provider: str) -> None:
        self._live.update(arns)
        self._vcpus.update(dict.fromkeys(arns, (provider, fargate.vcpus(cpu))))
        self._record_usage()
        self._watcher.watch(arns)

    async def _launch_workers(self) -> None:
        """Launch what ``scale`` asked for and the quota allows, in batches; the rest wait."""
        async with self._launch_lock:
            missing = self._requested - len(self.worker_spec)
            assert self.cost is not None  # made in _start, before any launch
            missing = self.cost.affordable(missing)  # none that would pass max_cost
            if (missing <= 0 or self._scheduler_lost
                    or self.status not in (Status.starting, Status.running)):
                self._set_waiting(0)
                return
            launched: list[str] = []
            for provider in self._worker_providers:  # Spot first, if asked for
                want = missing - len(launched)
                fit = min(want, await self._fits(self.options.worker_cpu, provider))
                if not fit:
                    continue
                try:
                    launch = await self._launch(
                        fit, role="worker", provider=provider,
                        retry_capacity=provider == self._worker_providers[-1])
                except TaskFailedError as e:
                    self._add_workers(e.arns)  # type: ignore[attr-defined]
                    if provider == self._worker_providers[-1] or not _provider_missing(e):
                        raise
                    # Spot is not on this ECS cluster at all: On-Demand from now on.
                    self._log(f"ECS cluster {self.options.cluster!r} has no {provider} "
                              f"capacity provider; workers run on "
                              f"{self._worker_providers[-1]} instead")
                    self._worker_providers = self._worker_providers[-1:]
                    self.quota.capacity_provider = self._worker_providers[0]
                    continue
                self._add_workers(launch.arns)
                launched += launch.arns
            self._set_waiting(missing - len(launched), launching=len(launched))
        await self._correct_state()

    def _set_waiting(self, waiting: int, launching: int = 0) -> None:
        """Record the workers waiting for quota; say the plan when it changes."""
        changed = waiting != self.quota.waiting
        self.quota.waiting, self.quota.running = waiting, len(self.worker_spec)
        if not waiting:
            return
        if changed:
            vcpus = fargate.vcpus(self.options.worker_cpu)
            self._log(
                f"Requested {self._requested} workers ({self._requested * vcpus:g} vCPU); the "
                f"{self.quota.quota:g} vCPU Fargate quota ({self.quota.usage:g} in use) allows "
                f"{len(self.worker_spec)} now; launching {launching}, {waiting} waiting for quota"
            )
        if self._quota_waiter is None or self._quota_waiter.done():
            self._quota_waiter = asyncio.ensure_future(self._wait_for_quota())
            if self.options.quota_auto_request and self._quota_request is None:
                self._quota_request = asyncio.ensure_future(self._request_quota())

    async def _wait_for_quota(self) -> None:
        """Launch waiting workers as room appears: our tasks stop, others' usage drops, or
        the quota is raised. Gives up when no worker at all could run by the deadline."""
        deadline = quota.Deadline(self.options.launch_deadline)
        while self.quota.waiting and self.status in (Status.starting, Status.running):
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._room.wait(),
                                       min(self.options.quota_interval, deadline.remaining))
            self._room.clear()
            before = len(self.worker_spec)
            try:
                await self._launch_workers()
            except TaskFailedError as e:
                logger.error("launching workers: %s", e)
            if len(self.worker_spec) > before:
                deadline = quota.Deadline(self.options.launch_deadline)
            elif not self.worker_spec and deadline.expired:
                self._requested = 0
                self._set_waiting(0)
                error = QuotaExceededError(quota.quota_error(
                    self.quota.capacity_provider, fargate.vcpus(self.options.worker_cpu),
                    self.quota,
                    deadline.elapsed))
                if self.status == Status.starting:
                    raise error  # FargateCluster() raises it
                logger.error("giving up on waiting workers: %s", error)

    def _add_workers(self, arns: list[str]) -> None:
        for arn in arns:
            self.worker_spec[tasks.task_id(arn)] = {
                "cls": FargateWorker,
                "options": {"cluster": self, "task_arn": arn, **self.new_spec["options"]},
            }

    async def _stop_tasks(self, arns: list[str], reason: str) -> None:
        """Stop tasks and wait until ECS reports them STOPPED."""
        arns = [a for a in arns if a in self._live]
        self._stopping.update(arns)
        await tasks.stop_tasks(self._aws.ecs, self._watcher.cluster_arn, arns, reason)
        timeout = fargate.STOP_TIMEOUT_DEFAULT + 4 * self.options.poll_interval
        for arn in arns:
            if await self._watcher.stopped(arn, timeout) is None:
                logger.warning("task %s did not report STOPPED within %d s", arn, timeout)

    def _on_stopped(self, task: dict[str, Any]) -> None:
        """A watched task reached STOPPED: forget it; if a worker died, drop it from the spec."""
        arn = task["taskArn"]
        self._live.discard(arn)
        self._record_usage()
        self._room.set()
        if arn in self._stopping:
            self._stopping.discard(arn)
            return
        if arn == getattr(self.scheduler, "task_arn", None):
            self._scheduler_lost = True
            # Nothing left to retire workers through or to terminate: close() must not
            # wait on connections to a scheduler that is gone (e.g. its max lifetime).
            self.scheduler.status = Status.closed
            self.shutdown_scheduler = False
            logger.error("scheduler %s", tasks.describe_stop(task))
        elif self.worker_spec.pop(tasks.task_id(arn), None) is not None:
            logger.warning("worker %s", tasks.describe_stop(task))
            if not self._scheduler_lost:
                self.loop.add_callback(self._replace_worker, task)

    async def _replace_worker(self, task: dict[str, Any]) -> None:
        """Relaunch a worker that stopped by itself, unless workers keep failing."""
        name = tasks.task_id(task["taskArn"])
        joined = name in self._joined
        reason = tasks.describe_stop(task)
        if not joined:
            lines = await tasks.last_log_lines(self._aws.logs, self.options.log_group,
                                               task["taskArn"])
            if lines:
                reason += "; its last log lines:\n  " + "\n  ".join(lines)
        self.replacement.stopped(joined, reason)
        if self.replacement.exhausted:
            self._requested = len(self.worker_spec)
            self._set_waiting(0)
            logger.error(self.replacement.error())
            return
        delay = self.replacement.delay
        self._log(f"Launching a replacement for worker {name}"
                  + (f" in {delay:g} s ({self.replacement.failures} failed in a row)"
                     if delay else ""))
        await asyncio.sleep(delay)  # backoff before the next try
        try:
            await self._launch_workers()
        except TaskFailedError as e:  # its stop comes back through _on_stopped
            logger.info("replacement worker: %s", e)

    def _update_worker_status(self, op: str, msg: Any) -> None:
        if op == "add":  # remember who joined: a worker that never did has failed
            self._joined.update(str(w.get("name")) for w in msg["workers"].values())
        super()._update_worker_status(op, msg)

    def scale(self, n: int = 0, memory: str | None = None, cores: int | None = None) -> Any:
        """Scale to ``n`` workers (or enough for ``memory`` bytes or ``cores`` threads).

        New workers are launched together, in RunTask calls of up to ten tasks.
        """
        if memory is not None:
            n = max(n, math.ceil(parse_bytes(memory) / self._memory_per_worker()))
        if cores is not None:
            n = max(n, math.ceil(cores / self._threads_per_worker()))
        self._requested = n
        if self.replacement.exhausted:  # the user asks again: try again
            self.replacement.failures = 0
        if n < len(self.worker_spec):
            super().scale(n)
        elif self.status == Status.running:
            self.loop.add_callback(self._launch_workers)
        if self.asynchronous:
            return NoOpAwaitable()

    async def scale_down(self, workers: Any) -> None:
        """Retire these workers (``adapt`` calls this); workers waiting for quota are
        no longer wanted either."""
        names = {self.scheduler_info["workers"].get(w, {}).get("name", w) for w in workers}
        self._requested = len(set(self.worker_spec) - names)
        await super().scale_down(workers)

    async def _close(self) -> None:
        if self.status == Status.closed:
            return
        self._requested = 0
        if self._quota_waiter is not None:
            self._quota_waiter.cancel()
        try:
            await super()._close()
        finally:
            if self._watcher is not None:
                await self._stop_tasks(list(self._live), "cluster closed")
                await self._watcher.close()
                if self.cost is not None:  # the final cost line, and the ledger
                    await self.cost.finish(self._log)
            await self._aws.close()
            self._finalizer.detach()

    def __repr__(self) -> str:
        workers = self.scheduler_info.get("workers", {})
        return (
            f"{type(self).__name__}({self.options.name!r}, {self.scheduler_address!r}, "
            f"workers={len(workers)}/{self._requested}, region={self.options.region!r}, "
            f"status={self.status.name}, "
            f"cost={self.cost.describe() if self.cost else 'not started'})"
        )

    def _repr_html_(self, cluster_status: str | None = None) -> str:
        return super()._repr_html_((cluster_status or "")
                                   + (self.cost.html_row() if self.cost else ""))

    def _keep_log(self, line: str) -> None:
        """Keep a line in the cluster's logs without printing it (it is logged already)."""
        self._cluster_manager_logs.append((datetime.datetime.now(), line))

    async def _halt(self, error: CostLimitExceeded) -> None:
        """At max_cost: fail unfinished work with ``error``, then close."""
        await limit.halt(error, scheduler_comm=self.scheduler_comm,
                         scheduler_address=self.scheduler_address, loop=self.loop,
                         close=self._close)


def _provider_missing(error: TaskFailedError) -> bool:
    """Whether RunTask refused a capacity provider the ECS cluster does not have."""
    return fargate.PROVIDER_NOT_ON_CLUSTER in str(error)


def _size(options: ClusterOptions, role: str) -> str:
    cpu, memory = getattr(options, f"{role}_cpu"), getattr(options, f"{role}_memory")
    return f"{fargate.vcpus(cpu):g} vCPU / {format_bytes(memory * 2**20)}"


def _stop_leftovers(options: ClusterOptions, live: set[str]) -> None:
    """Stop tasks of a cluster that was garbage-collected or left open at exit."""
    if not live:
        return
    import boto3

    ecs = boto3.client("ecs", region_name=options.region, config=client_config())
    for arn in list(live):
        try:
            ecs.stop_task(cluster=options.cluster, task=arn, reason="cluster was not closed")
        except Exception as e:  # noqa: BLE001 - best effort at shutdown
            logger.debug("StopTask %s: %s", arn, e)
