"""FargateCluster: a dask cluster whose scheduler and workers are ECS Fargate tasks.

Only the ``SpecCluster`` glue lives here. Its ECS tasks are kept by its
:class:`~.registry.TaskRegistry`, the workers it wants launched by its
:class:`~.provisioner.WorkerProvisioner`; the scheduler and worker objects
(:mod:`.processes`) own their tasks' lifecycles through the registry.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import math
import warnings
import weakref
from typing import Any

from dask.utils import parse_bytes
from distributed.core import Status
from distributed.deploy.spec import SpecCluster
from distributed.security import Security
from distributed.utils import NoOpAwaitable

from .. import status
from ..aws.clients import AwsClients
from ..cost import limit
from ..cost.confirm import ScaleGuard, confirm_launch
from ..cost.estimate import meter_for
from ..cost.meter import CostMeter
from ..ecs import quota
from ..errors import CostLimitExceeded, SchedulerLostError, StarburstError
from ..format import format_task_size
from ..images import resolve_cluster_image
from ..options import ClusterOptions
from ..values import Origin, checked
from . import progress as launch_progress
from . import shutdown, tls, widget
from .departures import Departures
from .processes import FargateScheduler, FargateWorker
from .provisioner import Capacity, WorkerProvisioner
from .registry import TaskRegistry
from .tls import INSECURE, ClusterTls


class FargateCluster(SpecCluster):
    """A dask cluster on AWS ECS Fargate: a scheduler task and worker tasks.

    Every option defaults to dask config ``starburst.*`` (``docs/configuration.md`` lists
    them); arguments win.

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
    ecs_cluster : str
        ECS cluster name or ARN the tasks run in (``cluster=`` is accepted as an alias).
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
        Extra environment variables for every task (no credentials: see ``secrets``).
    secrets : dict
        Environment variable -> Secrets Manager secret ARN or SSM parameter ARN or name.
    tags : dict
        Extra tags for every task.
    security : bool
        Mutual TLS with certificates made for this cluster, dashboard over HTTPS (default);
        ``False``: plain TCP, which anyone who reaches the ports can use (warned).
    scheduler_timeout : int
        Seconds the scheduler stays up with no client before it exits.
    name : str
        Cluster name, also every task's ``startedBy``; generated when omitted.
    asynchronous : bool
        Use from async code: ``async with FargateCluster(asynchronous=True) as cluster``.
    quiet : bool
        No status lines (INFO records of ``starburst_dask.cluster``) and no progress bar.
    progress : bool or None
        The launch progress bar: in a terminal or notebook (``None``), always, or never.
    confirm : bool
        ``True`` (default): a cluster over ``starburst.confirm.hourly-cost`` or
        ``starburst.confirm.vcpus`` asks at a terminal first, and is refused without one;
        ``False``: start it without asking.
    running_timeout : float
        Seconds a launched task may take to reach RUNNING before it is an error (formerly
        ``launch_timeout``, accepted as an alias).
    launch_retry_timeout : float
        Seconds to keep retrying throttled launches, or waiting for the first room under
        the Fargate quota, before raising an error (formerly ``launch_deadline``, accepted
        as an alias).
    **options
        Further ``starburst.*`` options by name (``worker_death_timeout``,
        ``poll_interval``, ``spot``, ``max_cost``, ...; see ``docs/configuration.md``).

    Examples
    --------
    >>> from dask.distributed import Client
    >>> client = Client(FargateCluster(n_workers=4))  # doctest: +SKIP
    """

    def __init__(
        self,
        n_workers: int | None = None,
        *,
        asynchronous: bool = False,
        quiet: bool = False,
        progress: bool | None = None,
        confirm: bool = True,
        **options: Any,
    ) -> None:
        # Options are checked here; everything remote or blocking happens in _start.
        self.options = ClusterOptions.resolve(n_workers=n_workers, **options)
        self._quiet = bool(quiet)  # distributed's Cluster sets quiet=False before _start
        status.show()
        self._confirm = checked({"type": "boolean", "default": True}, confirm, Origin("confirm"))
        self._aws = AwsClients(self.options.region)
        #: Every ECS task of this cluster, from launch to STOPPED.
        self.registry = TaskRegistry(self._aws, self.options)
        #: Launches the workers ``scale`` and ``adapt`` ask for, as the quota allows.
        self.provisioner: WorkerProvisioner | None = None
        #: Cost: estimate, running total and rate, limits (from the prices, on start).
        self.cost: CostMeter | None = None
        self.guard: ScaleGuard | None = None  #: what scale and adapt may do unasked
        #: Why the cluster failed, once its scheduler task stopped by itself.
        self.failure: SchedulerLostError | None = None
        #: The launch progress bar (tqdm), drawn while workers are on their way.
        self.progress = launch_progress.of_cluster(self, show=False if quiet else progress)
        #: Workers the scheduler removed while wanted: gone unless they come back.
        self.departures: Departures | None = None
        self._tasks_stopping = False  # close() has begun stopping the tasks
        self._finalizer = weakref.finalize(
            self, shutdown.stop_leftovers, self.options, self.registry.live
        )
        #: Its certificates, and the secret that delivers the tasks' (``None``: plain TCP).
        self.tls = ClusterTls(self.options) if self.options.security else None
        if self.tls is None:
            warnings.warn(INSECURE, UserWarning, stacklevel=2)
        worker = {
            "cls": FargateWorker,
            "options": {
                "registry": self.registry,
                "nthreads": self.options.worker_vcpus,
                "memory_limit": self.options.worker_memory_limit,
            },
        }
        try:
            super().__init__(
                scheduler={
                    "cls": FargateScheduler,
                    "options": {"registry": self.registry, "on_lost": self._scheduler_lost},
                },
                worker=worker,
                asynchronous=asynchronous,
                name=self.options.name,
                security=self.tls.security if self.tls is not None else Security(),
            )
        except BaseException:
            if not asynchronous:  # _start failed: SpecCluster leaves its loop thread running
                self._loop_runner.stop()
            raise
        self.quiet = self._quiet

    @property
    def quota(self) -> quota.QuotaStatus:
        """The workers' vCPU quota as last seen, with running and waiting workers."""
        if self.provisioner is None:
            return quota.QuotaStatus(Capacity.for_spot(self.options.spot).value[0])
        return self.provisioner.quota

    def request_quota_increase(self) -> Any:
        """File the Fargate vCPU quota increase that lets every requested worker run.

        Returns the request (``DesiredValue``, ``Status``), or ``None`` when Service
        Quotas refused it (the reason is logged). Waiting workers launch once AWS
        approves it.
        """
        assert self.provisioner is not None, "the cluster has not started"
        return self.sync(self.provisioner.request_quota_increase)

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
        self.progress.start()
        await asyncio.to_thread(self._aws.check_credentials)
        # Before anything is created: the estimate (refused over max_hourly_cost), asked
        # about at a terminal if expensive, and the account's read-only checks.
        self.cost = await meter_for(self.options, self.registry.descriptions)
        await asyncio.to_thread(confirm_launch, self.cost, self.options, confirm=self._confirm)
        self.guard = ScaleGuard(self.cost, self.options, self._confirm)
        await self.registry.check()
        # The image for `software`, found or built in ECR (its distributed checked).
        self.options = self.registry.options = await asyncio.to_thread(
            resolve_cluster_image, self.options, self._log
        )
        # The route to the image, the secret with the tasks' certificates, the definition.
        await self.registry.open(tls=self.tls)
        self.provisioner = WorkerProvisioner(
            self.options,
            self.registry,
            worker_spec=self.worker_spec,
            worker=self.new_spec,
            correct_state=self._reconcile,
            affordable=self.cost.affordable,
            on_demand_premium=self.cost.on_demand_premium,
            log=self._log,
        )
        self.departures = Departures(
            lambda: self.scheduler_info["workers"],
            wanted=lambda name: name in self.worker_spec and self.status == Status.running,
            scheduler_events=lambda **kw: self.scheduler_comm.events(**kw),
            gone=self.provisioner.worker_gone,
        )
        o = self.options
        self._log(
            f"Launching {o.name}: scheduler {format_task_size(o.scheduler_cpu, o.scheduler_memory)}"
            f", {o.n_workers} workers {format_task_size(o.worker_cpu, o.worker_memory)}"
        )
        self.cost.start(self._log, self._halt, keep=self._keep_log)  # max_cost, cost_alert
        # Workers launch with the scheduler (they look its address up); the client waits.
        self.scheduler = scheduler = self.scheduler_spec["cls"](**self.scheduler_spec["options"])
        await scheduler  # a scheduler that fails is still the cluster's to close
        self.provisioner.scheduler_task = scheduler.task_arn
        await self.provisioner.launch()
        await scheduler.addressed()
        await scheduler.listening(self.security.get_connection_args("client"))
        await super()._start()
        await self.provisioner.wait_for_first()
        if self.failure is not None:  # the scheduler stopped while the first workers waited
            raise self.failure

    async def _reconcile(self) -> None:
        """SpecCluster's reconcile, once connected (its start reconciles what came before)."""
        if self.scheduler_comm is not None:
            await self._correct_state()

    def _update_worker_status(self, op: str, msg: Any) -> None:
        if op == "add" and self.provisioner is not None:  # a worker that never joined failed
            self.provisioner.replacement.join(str(w.get("name")) for w in msg["workers"].values())
        if op == "remove" and self.departures is not None:
            self.departures.removed(msg)  # not retired by the cluster: gone unless it returns
        if op != "remove" or msg in self.scheduler_info["workers"]:  # else SpecCluster raises
            super()._update_worker_status(op, msg)

    def scale(self, n: int = 0, memory: str | None = None, cores: int | None = None) -> Any:
        """Scale to ``n`` workers (or enough for ``memory`` bytes or ``cores`` threads).

        New workers are launched together, in RunTask calls of up to ten tasks; those
        the vCPU quota has no room for wait, and launch as room appears. Past
        ``starburst.confirm.*`` it is confirmed as the launch was.
        """
        if memory is not None:
            n = max(n, math.ceil(parse_bytes(memory) / self._memory_per_worker()))
        if cores is not None:
            n = max(n, math.ceil(cores / self._threads_per_worker()))
        if self.guard is not None:  # never a question from the event loop (adapt's calls)
            self.guard.scale(n, from_loop=self.asynchronous)
        if self.provisioner is not None:
            self.provisioner.scale(n)
        if n < len(self.worker_spec):
            super().scale(n)
        elif self.status == Status.running and self.provisioner is not None:
            assert self.loop is not None  # a running cluster has its event loop
            self.loop.add_callback(self.provisioner.launch)
        if self.asynchronous:
            return NoOpAwaitable()

    def adapt(self, *args: Any, **kwargs: Any) -> Any:
        """As ``SpecCluster.adapt``; past ``starburst.confirm.*`` as ``ScaleGuard`` says."""
        if self.guard is not None:
            kwargs["maximum"] = self.guard.adapt_maximum(
                kwargs.get("maximum", math.inf), self._log, from_loop=self.asynchronous
            )
        return super().adapt(*args, **kwargs)

    async def scale_down(self, workers: Any) -> None:
        """Retire these workers (``adapt`` calls this); those waiting for quota go too."""
        names = {self.scheduler_info["workers"].get(w, {}).get("name", w) for w in workers}
        if self.provisioner is not None:
            self.provisioner.requested = len(set(self.worker_spec) - names)
        await super().scale_down(workers)

    async def _close(self) -> None:
        if self.status == Status.closed:
            return
        await self.progress.close()
        if self.departures is not None:
            self.departures.close()
        if self.provisioner is not None:
            await self.provisioner.close()
        self.shutdown_scheduler = False  # its task is stopped, by shutdown.stop_tasks
        if getattr(self.scheduler, "lost", False):
            # close() must not wait on connections to a scheduler that is gone.
            await self.scheduler.close()  # only ends the report of its loss
        try:
            if not self._tasks_stopping:  # once, before SpecCluster's close says "closed"
                self._tasks_stopping = True
                async with self._lock:  # no worker is left for SpecCluster's close to retire
                    self.worker_spec.clear()
                    await shutdown.stop_tasks(self.registry, self.scheduler, self.workers)
            await super()._close()
        finally:
            if self.registry.opened:  # what is left (a failure above) stopped, then watched
                await self.registry.close("cluster closed")
            if self.tls is not None:  # its task definition revision and secret
                await self.tls.retire(self._aws.ecs, self._aws.secrets, self.registry.definition)
            if self.cost is not None and self.registry.opened:
                await self.cost.finish(self._log)  # the final cost line, and the ledger
            await self._aws.close()
            self._finalizer.detach()

    async def _scheduler_lost(self, error: SchedulerLostError) -> None:
        """The scheduler task stopped by itself: the cluster failed, and its workers stop
        now (not at their death timeout)."""
        if self.status != Status.running:
            return  # still starting (its start fails by itself), or closing already
        self.status, self.failure = Status.failed, error
        self._keep_log(str(error))
        with contextlib.suppress(AttributeError):
            self._adaptive.stop()
        self.scheduler_info["workers"].clear()  # none has a scheduler any more
        if self.provisioner is not None:
            await self.provisioner.stop_workers("its scheduler task stopped")

    @property
    def dashboard_link(self) -> str:
        """The dashboard's address: ``https://`` with TLS (the scheduler's configuration
        says so, not this process's, which distributed reads)."""
        link = super().dashboard_link
        if link and self.tls is not None:
            link = tls.dashboard_link(self.scheduler_info, self.scheduler_address)
        return link

    def __repr__(self) -> str:
        workers = self.scheduler_info.get("workers", {})
        requested = self.provisioner.requested if self.provisioner else self.options.n_workers
        cost = self.cost.describe() if self.cost is not None else "not started"
        return (
            f"{type(self).__name__}({self.options.name!r}, {self.scheduler_address!r}, "
            f"workers={len(workers)}/{requested}, region={self.options.region!r}, "
            f"status={self.status.name}, cost={cost})"
        )

    def _repr_html_(self, cluster_status: str | None = None) -> str:
        requested = self.provisioner.requested if self.provisioner else self.options.n_workers
        rows = widget.rows(self.quota, requested, self.cost)
        return super()._repr_html_((cluster_status or "") + rows)

    def _log(self, log: str) -> None:
        """A status line: kept in the cluster's logs, and logged (INFO) unless quiet."""
        self._keep_log(log)
        if not self._quiet:
            status.cluster.info(log)

    def _keep_log(self, line: str) -> None:
        """Keep a line in the cluster's logs without printing it (it is logged already)."""
        self._cluster_manager_logs.append((datetime.datetime.now(), line))

    async def _halt(self, error: CostLimitExceeded) -> None:
        """At max_cost: fail unfinished work with ``error``, then close."""
        await limit.halt(
            error,
            scheduler_comm=self.scheduler_comm,
            scheduler_address=self.scheduler_address,
            loop=self.loop,
            close=self._close,
        )
