"""The local Fargate: an AWS endpoint on 127.0.0.1 whose ECS tasks are local processes."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import shlex
import signal
import socket
import threading
from collections import Counter
from collections.abc import Iterator
from importlib import resources
from types import TracebackType
from typing import Any

import boto3
import dask.config
import yaml
from botocore.exceptions import ClientError
from moto.core.base_backend import BackendDict
from moto.moto_server.threaded_moto_server import MotoRequestHandler
from moto.server import ThreadedMotoServer

from .. import fargate
from ..admin import roles
from ..ecs import boot
from . import (
    checkip,
    codebuild,
    docker_hub,
    ec2_rules,
    ecs,
    iam,
    missing,
    pricing,
    pull_through,
    quotas,
    recorder,
    regions,
    simulate,
    task_role,
    validation,
    vpc,
)
from .firewall import Firewall
from .latency import PROFILES, Latency, LatencySpec
from .latency import resolve as resolve_latency
from .outage import Endpoint
from .runtime import Runtime
from .task import LocalTask, TaskRecord

DEFAULT_REGION = "us-east-1"
#: A file to which each local Fargate appends the project's calls when it stops.
AUDIT_VAR = "STARBURST_DASK_LOCAL_AUDIT"
#: Seconds a task without a route to its registry or logs stays PENDING before it
#: stops: AWS retries its pulls for tens of seconds (see ``reach.py``).
NETWORK_FAILURE_DELAY = 30.0
logger = logging.getLogger(__name__)
#: Variables that would mix another account's settings into the local one's.
_FOREIGN = ("AWS_PROFILE", "AWS_SESSION_TOKEN")
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
#: Points other processes' clusters at the security group prepare() makes.
_GROUPS_VAR = "DASK_STARBURST__SECURITY_GROUPS"
#: Points setup's --allow-my-ip at the local public-address service.
_CHECKIP_VAR = "DASK_STARBURST__SETUP__CHECKIP_URL"


class LocalFargate:
    """A local AWS endpoint (moto's server) where Fargate tasks run as local processes.

    Use it as a context manager, which starts it, prepares what a cluster needs and
    points this process's AWS clients at it (environment variables), then stops every
    task and restores the environment. Only one can run in a process at a time.

    Parameters
    ----------
    port : int
        Port on 127.0.0.1; 0 picks a free one.
    region : str
        The region clients are configured for.
    prepare : bool
        Call :meth:`prepare` on start.
    vcpu_quota : float
        The account's On-Demand and Spot vCPU quotas, as a new AWS account has them.
    throttling : bool
        Enforce AWS's API rate limits (``ThrottlingException``).
    iam_propagation : float
        Seconds after a role is created, or its trust policy changed, before ECS can use
        it (IAM is eventually consistent); :meth:`prepare`'s roles are usable at once.
    network_failure_delay : float
        Seconds before a task that cannot reach its registry or CloudWatch Logs stops
        (AWS takes tens of seconds; tests may shorten it).
    docker_hub_pulls : int
        Docker Hub's anonymous pulls allowed per source address (a task's public IP, or
        its NAT gateway's) in ``docker_hub_window`` seconds; more stop the task with
        ``toomanyrequests``, as on AWS (tests may lower it).
    docker_hub_window : float
        Seconds over which Docker Hub counts those pulls.
    latency : str, Latency, mapping or None
        How long each phase of a task's lifecycle takes (PROVISIONING: its ENI created
        and attached; PENDING: its image pulled; DEPROVISIONING), drawn per task:
        ``"aws"``, as AWS takes them; ``"fast"``, sub-second, for test suites; a
        :class:`~.latency.Latency`; or a mapping of some of its ranges over ``"aws"``'s.
        ``None`` (the default): the profile config ``starburst.local.latency`` names
        (``"aws"`` unless set; ``DASK_STARBURST__LOCAL__LATENCY=fast``). Settable while
        running (:attr:`latency`). See ``docs/local-fargate.md``.
    deprovisioning : (float, float), optional
        Range of seconds a task stays DEPROVISIONING after its container exits, before
        STOPPED, instead of ``latency``'s. Settable while running (:attr:`deprovisioning`).

    Examples
    --------
    >>> with LocalFargate() as aws:  # doctest: +SKIP
    ...     boto3.client("ecs").list_clusters()
    """

    def __init__(
        self,
        port: int = 0,
        region: str = DEFAULT_REGION,
        prepare: bool = True,
        vcpu_quota: float = fargate.QUOTA_DEFAULT,
        throttling: bool = True,
        iam_propagation: float = iam.PROPAGATION_DEFAULT,
        network_failure_delay: float = NETWORK_FAILURE_DELAY,
        docker_hub_pulls: int = fargate.DOCKER_HUB_ANONYMOUS_PULLS,
        docker_hub_window: float = fargate.DOCKER_HUB_WINDOW_SECONDS,
        latency: LatencySpec = None,
        deprovisioning: tuple[float, float] | None = None,
    ):
        self.port = port
        chosen = resolve_latency(latency)
        if deprovisioning is not None:
            chosen = dataclasses.replace(chosen, deprovisioning=deprovisioning)
        self._latency = chosen
        self._docker_hub = (docker_hub_pulls, docker_hub_window)
        self._network_failure_delay = network_failure_delay
        self._firewall: Firewall | None = None
        self._security_group: str | None = None
        self._saved_config: list[Any] = []  # dask.config.set contexts, undone at stop
        self.region = region
        self._prepare = prepare
        self._vcpu_quota = vcpu_quota
        self._throttling = throttling
        self._iam_propagation = iam_propagation
        self._server: ThreadedMotoServer | None = None
        self._controls: ecs.Controls | None = None
        self._validation: validation.ValidationMiddleware | None = None
        self._recorder: recorder.RecordingMiddleware | None = None
        self._endpoint: Endpoint | None = None
        self._saved_env: dict[str, str | None] = {}
        self._saved_log_level = logging.NOTSET

    @property
    def endpoint_url(self) -> str:
        """The endpoint every AWS service answers on."""
        if self._server is None:
            raise RuntimeError("the local Fargate is not running")
        host, port = self._server.get_host_and_port()
        return f"http://{host}:{port}"

    @property
    def env(self) -> dict[str, str]:
        """Environment variables that point AWS clients (of any process) here, setup's
        public-address service (``--allow-my-ip``) at :mod:`.checkip`, and clusters at the
        security group :meth:`prepare` made (when it has)."""
        env = {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
            _CHECKIP_VAR: self.endpoint_url + checkip.PATH,
        }
        if self._security_group:
            env[_GROUPS_VAR] = json.dumps([self._security_group])
        return env

    @property
    def project_calls(self) -> Counter[tuple[str, str]]:
        """``(service, operation)`` of the requests the project's own clients sent.

        With ``STARBURST_DASK_LOCAL_AUDIT`` set to a file, :meth:`stop` appends them to
        it as JSON lines: a record of what the project calls, for its IAM policy.
        """
        if self._validation is None:
            raise RuntimeError("the local Fargate is not running")
        return self._validation.project_calls

    @property
    def calls(self) -> Counter[str]:
        """ECS actions received, by name (``calls["RunTask"]``)."""
        return self._running().calls

    @property
    def run_task_counts(self) -> list[int]:
        """``count`` of each RunTask call, in order."""
        return self._running().run_task_counts

    @property
    def describe_task_sizes(self) -> list[int]:
        """Number of tasks asked for by each DescribeTasks call, in order."""
        return self._running().describe_task_sizes

    @property
    def quota_refusals(self) -> int:
        """Tasks RunTask refused for lack of room under the vCPU quota."""
        return self._running().quota_refusals

    @property
    def throttled_calls(self) -> int:
        """Calls answered with ThrottlingException for exceeding AWS's rate limits."""
        return self._running().throttled_calls

    def start(self) -> LocalFargate:
        """Start the endpoint, set this process's environment, prepare (if asked)."""
        if self._server is not None:
            return self
        account = quotas.FargateAccount(ecs.task_usage, self._vcpu_quota, self._throttling)
        controls = ecs.Controls(Runtime(), account, self._latency)
        try:
            ecs.install(controls)
        except RuntimeError:  # another one is running
            controls.close()
            account.close()
            raise
        quotas.install(account)
        iam.install(iam.RoleClock(self._iam_propagation))
        ec2_rules.install()
        docker_hub.install(docker_hub.PullLimit(*self._docker_hub))
        simulate.install()
        codebuild.install()  # builds run as CodeBuild runs them, and push to the local ECR
        self._controls = controls
        try:
            self._start_network()
            werkzeug_log = logging.getLogger("werkzeug")  # one line per request otherwise
            self._saved_log_level = werkzeug_log.level
            werkzeug_log.setLevel(logging.WARNING)
            if self.port:
                _check_free(self.port)
            # AWS's endpoints keep connections alive (HTTP/1.1); werkzeug's HTTP/1.0 would
            # make every call open a connection, slowing a burst of calls on a busy machine.
            MotoRequestHandler.protocol_version = "HTTP/1.1"
            self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
            self._server.start()
            assert self._server._server is not None  # the werkzeug server, serving
            self._endpoint = Endpoint(self._server._server)
            missing.install(self._server)  # moto's services whose packages are not installed
            pricing.install(self._server)  # moto has no Price List API
            pull_through.install(self._server)  # nor pull through cache rules
            checkip.install(self._server)  # nor AWS's public-address service
            # Every request meets its model, where AWS has an endpoint for its region.
            self._validation = validation.install(self._server)
            # Requests signed with a task's role credentials: as its policies allow.
            task_role.install(self._server, controls.task_roles)
            regions.install(self._server)
            self._recorder = recorder.install(self._server)  # sees what arrives, refused too
            self._set_env()
            self._saved_config.append(
                dask.config.set({"starburst.setup.checkip-url": self.env[_CHECKIP_VAR]})
            )
            if self._prepare:
                self.prepare()
        except BaseException:
            self.stop()
            raise
        return self

    def _start_network(self) -> None:
        """The VPCs' address plan, and the firewall enforcing security groups if it can."""
        self._firewall = firewall = Firewall()
        if firewall.enabled:
            firewall.start()
        else:
            logger.warning(
                "security groups are not enforced (%s): every connection to a "
                "task is admitted and a task's public IP is its private one; see "
                "docs/local-fargate.md",
                firewall.reason,
            )
        vpc.install(vpc.Network(self._network_failure_delay, firewall.enabled, firewall.sync))

    @property
    def firewall(self) -> Firewall:
        """The firewall: ``enabled``, else ``reason`` why security groups are not enforced."""
        if self._firewall is None:
            raise RuntimeError("the local Fargate is not running")
        return self._firewall

    def stop(self) -> None:
        """Stop every task and wait for it, stop the endpoint, restore the environment."""
        if self._controls is not None:
            self._controls.close()
        if self._firewall is not None:
            vpc.uninstall()  # first: no change may rebuild the rules once they are gone
            self._firewall.stop()
            self._firewall = None
        if self._endpoint is not None:
            self._endpoint.restore()  # the server's thread must be polling to stop
            self._endpoint = None
        if self._server is not None:
            self._server.stop()
            self._server = None
        if self._validation is not None:
            _audit(self._validation.project_calls)
            self._validation = None
        self._recorder = None
        if self._controls is not None:
            ecs.uninstall()
            quotas.uninstall()
            iam.uninstall()
            ec2_rules.uninstall()
            docker_hub.uninstall()
            pull_through.reset()
            simulate.uninstall()
            codebuild.uninstall()
            BackendDict.reset()  # the next start begins from a fresh account
            self._controls = None
            logging.getLogger("werkzeug").setLevel(self._saved_log_level)
        while self._saved_config:
            self._saved_config.pop().__exit__(None, None, None)
        self._security_group = None
        for name, value in self._saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved_env = {}

    def __enter__(self) -> LocalFargate:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def client(self, service: str, **kwargs: Any) -> Any:
        """A boto3 client for ``service`` on this endpoint, whatever the environment."""
        env = self.env
        return boto3.client(
            service,
            endpoint_url=env["AWS_ENDPOINT_URL"],
            region_name=self.region,
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
            **kwargs,
        )

    def prepare(self) -> None:
        """Create what a cluster needs, under the default names of ``starburst.yaml``.

        The ECS service-linked role, the ECS cluster (with the Fargate capacity
        providers), the execution and task roles (the execution role reading the
        project's own secrets, the task role describing the cluster's tasks, as setup
        allows them), the log group, the CodeBuild project
        that builds images where no Docker engine runs, and the security group
        ``starburst-dask setup --allow-cidr 127.0.0.1/32`` would make (the default VPC's
        default group admits only its own members, not this machine), which this
        process's clusters then use (dask config, and :attr:`env` for other processes).
        The default VPC and subnets exist already. This stands for an account set up
        earlier: its roles have propagated already. Idempotent.
        """
        names = _default_names()
        iam_client = self.client("iam")
        account = self.client("sts").get_caller_identity()["Account"]
        _ignore(
            "InvalidInput", iam_client.create_service_linked_role, AWSServiceName=iam.ECS_SERVICE
        )
        iam.clock().backdate(account, iam.ECS_SERVICE_LINKED_ROLE)
        self.client("ecs").create_cluster(
            clusterName=names["ecs-cluster"],
            capacityProviders=list(fargate.CAPACITY_PROVIDERS),
            defaultCapacityProviderStrategy=[{"capacityProvider": "FARGATE", "weight": 1}],
        )
        for role in (names["execution-role"], names["task-role"]):
            _ignore(
                "EntityAlreadyExists",
                iam_client.create_role,
                RoleName=role,
                AssumeRolePolicyDocument=json.dumps(roles.TRUST_ECS_TASKS),
            )
            iam.clock().backdate(account, role.rsplit("/", 1)[-1])
        # As setup leaves them: the execution role reads the project's own secrets, the
        # task role lets workers find their scheduler.
        iam_client.put_role_policy(
            RoleName=names["execution-role"].rsplit("/", 1)[-1],
            PolicyName=roles.SECRETS_POLICY,
            PolicyDocument=json.dumps(roles.secrets_policy(self.region, account)),
        )
        cluster = f"arn:aws:ecs:{self.region}:{account}:cluster/{names['ecs-cluster']}"
        iam_client.put_role_policy(
            RoleName=names["task-role"].rsplit("/", 1)[-1],
            PolicyName=roles.FIND_SCHEDULER_POLICY,
            PolicyDocument=json.dumps(boot.find_scheduler_policy(cluster)),
        )
        _ignore(
            "ResourceAlreadyExistsException",
            self.client("logs").create_log_group,
            logGroupName=names["log-group"],
        )
        self._use_security_group(self._client_security_group())
        codebuild.prepare(
            boto3.session.Session(region_name=self.region), account, names["image-build-project"]
        )

    @property
    def security_group(self) -> str | None:
        """The security group :meth:`prepare` made: its tasks and this machine admitted."""
        return self._security_group

    def _client_security_group(self) -> str:
        """The security group setup makes in the default VPC, admitting this machine."""
        # The product's own setup: this is what users get.
        from ..admin.managed import DEFAULT_NAME
        from ..admin.security_group import ensure_security_group
        from ..aws.clients import SyncClients

        vpcs = self.client("ec2").describe_vpcs(
            Filters=[{"Name": "is-default", "Values": ["true"]}]
        )["Vpcs"]
        group, _ = ensure_security_group(
            SyncClients(self.region),
            DEFAULT_NAME,
            vpcs[0]["VpcId"],
            [f"{vpc.CLIENT_ADDRESS}/32"],
        )
        return group

    def _use_security_group(self, group: str) -> None:
        """Point this process's clusters (config) and :attr:`env` at ``group``."""
        self._security_group = group
        os.environ.update(self.env)
        self._saved_config.append(dask.config.set({"starburst.security-groups": [group]}))

    @property
    def latency(self) -> Latency:
        """How long each phase of a task's lifecycle takes; settable (as ``latency=``)."""
        return self._latency

    @latency.setter
    def latency(self, spec: LatencySpec) -> None:
        self._latency = resolve_latency(spec)
        if self._controls is not None:
            self._controls.latency = self._latency

    @property
    def deprovisioning(self) -> tuple[float, float]:
        """Range of seconds a task stays DEPROVISIONING before STOPPED; settable."""
        return self._latency.deprovisioning

    @deprovisioning.setter
    def deprovisioning(self, delays: tuple[float, float]) -> None:
        self.latency = dataclasses.replace(self._latency, deprovisioning=delays)

    def kill_task(self, task_arn: str) -> None:
        """SIGKILL a task's process (and all it started); the task stops with code 137."""
        self._task(task_arn).process.kill()

    def freeze_task(self, task_arn: str) -> None:
        """Freeze a task's processes (SIGSTOP), as a hung container: it stays RUNNING,
        its connections open and silent. StopTask then ends it with SIGKILL at its
        stopTimeout (SIGTERM waits behind the stop)."""
        self._task(task_arn).process.freeze()

    def interrupt_spot(self, task_arn: str) -> None:
        """Interrupt a FARGATE_SPOT task as AWS reclaims capacity: ``stopCode``
        ``SpotInterruption``, AWS's ``stoppedReason``, SIGTERM now and SIGKILL after the
        container's ``stopTimeout``.

        Raises
        ------
        ValueError
            The task does not run on FARGATE_SPOT.
        """
        self._task(task_arn).interrupt_spot()

    def outage(self, seconds: float | None = None) -> None:
        """Make the endpoint unreachable, as an AWS outage looks to a client.

        Its port refuses connections (botocore raises ``EndpointConnectionError`` once its
        retries are spent) and connections open now are closed, for ``seconds`` (``None``:
        until :meth:`end_outage`); then it answers again at the same address. Tasks keep
        running and changing state meanwhile. Returns once connections are refused.
        """
        self._reach().cut(seconds)

    def end_outage(self) -> None:
        """End the outage now; return once the endpoint accepts connections."""
        self._reach().restore()

    def wait_reachable(self, timeout: float | None = None) -> bool:
        """Wait until the endpoint accepts connections (an outage ended); whether it does."""
        return self._reach().wait_reachable(timeout)

    @contextlib.contextmanager
    def unreachable(self) -> Iterator[None]:
        """The endpoint unreachable while in the ``with`` block (see :meth:`outage`)."""
        self.outage()
        try:
            yield
        finally:
            self.end_outage()

    def _reach(self) -> Endpoint:
        if self._endpoint is None:
            raise RuntimeError("the local Fargate is not running")
        return self._endpoint

    def fail_next_run_task(self, n: int = 1, kind: str = "throttle") -> None:
        """Make the next ``n`` RunTask calls fail.

        Parameters
        ----------
        n : int
            Number of calls to fail. Clients retry throttling by default: each retry
            is a call.
        kind : {"throttle", "capacity"}
            ``"throttle"``: ThrottlingException "Rate exceeded" (HTTP 400).
            ``"capacity"``: no task starts; one ``failures`` entry per requested task
            with reason :data:`starburst_dask.fargate.CAPACITY_UNAVAILABLE`.
        """
        self._running().fail_next_run_task(n, kind)

    @property
    def account(self) -> quotas.FargateAccount:
        """The account's limits: ``quotas`` (settable), ``approval_delay``, ``throttling``."""
        return self._running().account

    def set_quota(self, vcpus: float, capacity_provider: str = "FARGATE") -> None:
        """Set a vCPU quota now, as an approved increase (or a decrease) would."""
        with self.account.lock:
            self.account.quotas[capacity_provider] = float(vcpus)

    def recorded(self) -> list[recorder.Exchange]:
        """Every ECS request this endpoint received, with the answer it gave, as text
        (oldest first): what crossed the wire, for tests that look for what must not."""
        if self._recorder is None:
            raise RuntimeError("the local Fargate is not running")
        return self._recorder.exchanges

    def log_events(self) -> list[str]:
        """Every CloudWatch Logs event stored, in every group and stream (its message)."""
        logs = self.client("logs")
        messages = []
        for groups in logs.get_paginator("describe_log_groups").paginate():
            for group in groups["logGroups"]:
                pages = logs.get_paginator("filter_log_events").paginate(
                    logGroupName=group["logGroupName"]
                )
                messages += [e["message"] for page in pages for e in page["events"]]
        return messages

    def task_records(self) -> list[TaskRecord]:
        """Every task as the emulator sees it (process id, address, times)."""
        return [task.record() for task in ecs.local_tasks()]

    def reset_counters(self) -> None:
        """Clear :attr:`calls`, :attr:`run_task_counts` and :attr:`describe_task_sizes`."""
        self._running().reset_counters()

    def _running(self) -> ecs.Controls:
        if self._controls is None:
            raise RuntimeError("the local Fargate is not running")
        return self._controls

    def _task(self, task_arn: str) -> LocalTask:
        for task in ecs.local_tasks():
            if task.task_arn == task_arn:
                return task
        raise KeyError(f"no such task: {task_arn}")

    def _set_env(self) -> None:
        foreign = [*_FOREIGN, *(n for n in os.environ if n.startswith("AWS_ENDPOINT_URL_"))]
        for name in [*self.env, _GROUPS_VAR, *foreign]:
            self._saved_env.setdefault(name, os.environ.get(name))
        for name in foreign:
            os.environ.pop(name, None)
        os.environ.update(self.env)


def serve(
    port: int = 0,
    region: str = DEFAULT_REGION,
    quota: float | None = None,
    latency: LatencySpec = None,
) -> None:
    """Run a local Fargate until SIGINT or SIGTERM, printing how to point a shell at it.

    Parameters
    ----------
    port : int
        Port on 127.0.0.1; 0 picks a free one.
    region : str
        The region clients are configured for.
    quota : float, optional
        The On-Demand Fargate vCPU quota (default: a new account's).
    latency : str, optional
        The tasks' latency profile (``"aws"``, ``"fast"``; default: config
        ``starburst.local.latency``).
    """
    stop = threading.Event()
    handlers = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in _STOP_SIGNALS}
    try:
        with LocalFargate(port=port, region=region, latency=latency) as aws:
            if quota is not None:
                aws.set_quota(quota)
            print(
                f"# Local Fargate running on {aws.endpoint_url} (Fargate quota "
                f"{aws.account.quotas['FARGATE']:g} vCPU, {_profile(aws.latency)} task "
                "latencies). In another shell:"
            )
            for name, value in aws.env.items():
                print(f"export {name}={shlex.quote(value)}")
            print(f"# Stop with Ctrl-C here, or: kill {os.getpid()}", flush=True)
            stop.wait()
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)


def _profile(chosen: Latency) -> str:
    """The name of the latency profile ``chosen`` is, else "explicit"."""
    return next((name for name, p in PROFILES.items() if p == chosen), "explicit")


def _audit(calls: Counter[tuple[str, str]]) -> None:
    """Append the project's calls to ``$STARBURST_DASK_LOCAL_AUDIT``, if set."""
    path = os.environ.get(AUDIT_VAR)
    if path and calls:
        lines = "".join(
            json.dumps({"service": s, "operation": o, "count": n}) + "\n"
            for (s, o), n in sorted(calls.items())
        )
        # One appending write: local Fargates in other processes may append at once.
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, lines.encode())
        finally:
            os.close(fd)


def _check_free(port: int) -> None:
    """Raise OSError if ``port`` is taken: ThreadedMotoServer would wait forever."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as werkzeug does
        probe.bind(("127.0.0.1", port))


def _default_names() -> dict[str, str]:
    text = resources.files("starburst_dask").joinpath("starburst.yaml").read_text()
    return yaml.safe_load(text)["starburst"]


def _ignore(code: str, call: Any, **kwargs: Any) -> None:
    """Call ``call``, ignoring the AWS error ``code`` (already exists)."""
    try:
        call(**kwargs)
    except ClientError as error:
        if error.response["Error"]["Code"] != code:
            raise
