"""The project's AWS clients: a cluster's async clients, and the command line's sync ones.

Endpoints, credentials and profiles come from standard AWS configuration
(``AWS_ENDPOINT_URL``, ``AWS_PROFILE``, ...), so the same code talks to AWS and to the
local Fargate.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Any

import boto3
import botocore.session
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.config import Config

from ..errors import ConfigurationError

#: Every client the project makes names it in its user agent (``app/starburst-dask``), so
#: AWS's request logs, and the local Fargate's record of the project's calls, show them.
APP_ID = "starburst-dask"


def client_config(**options: Any) -> Config:
    """The botocore client configuration of every client the project makes."""
    # botocore-stubs lack Config's user_agent_appid (botocore has it since 1.31).
    return Config(user_agent_appid=APP_ID, **options)  # type: ignore[call-arg]


def aio_client_config(**options: Any) -> AioConfig:
    """:func:`client_config` for the async (aiobotocore) clients."""
    return AioConfig(user_agent_appid=APP_ID, **options)


#: The command line's clients fail fast where nothing can work (an endpoint that is down
#: or unreachable): seconds to connect, and botocore's standard retries (throttling and
#: transient errors) at most this many attempts; a cluster's clients keep botocore's
#: defaults and outlive outages themselves (``ecs/watcher.py``).
COMMAND_CLIENT_OPTIONS: dict[str, Any] = {
    "connect_timeout": 3,
    "retries": {"mode": "standard", "max_attempts": 3},
}


def command_config(**options: Any) -> Config:
    """:func:`client_config` for a command's client (:data:`COMMAND_CLIENT_OPTIONS`)."""
    return client_config(**{**COMMAND_CLIENT_OPTIONS, **options})


def aio_command_config() -> AioConfig:
    """:func:`command_config` for a command's async clients."""
    return aio_client_config(**COMMAND_CLIENT_OPTIONS)


#: Client attribute -> AWS service.
_SERVICES = {
    "ecs": "ecs",
    "ec2": "ec2",
    "iam": "iam",
    "logs": "logs",
    "quotas": "service-quotas",
    "cloudwatch": "cloudwatch",
    "secrets": "secretsmanager",
}


class AwsClients:
    """The async AWS clients of one cluster (ECS, EC2, IAM, Logs, Service Quotas, CloudWatch,
    Secrets Manager).

    Parameters
    ----------
    region : str
        AWS region the clients talk to.
    """

    def __init__(self, region: str) -> None:
        self.region = region
        self._session = get_session()
        self._stack = contextlib.AsyncExitStack()
        self.ecs: Any = None
        self.ec2: Any = None
        self.iam: Any = None
        self.logs: Any = None
        self.quotas: Any = None
        self.cloudwatch: Any = None
        self.secrets: Any = None

    def check_credentials(self) -> None:
        """Raise :class:`ConfigurationError` when no credentials can be found (no AWS call)."""
        # The sync botocore lookup: reads env, files and metadata endpoints; no AWS API call.
        if botocore.session.get_session().get_credentials() is None:
            raise ConfigurationError(
                "no AWS credentials found; run `aws configure`, set AWS_PROFILE or "
                "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or start the local Fargate "
                "with `starburst-dask local`"
            )

    async def open(self) -> None:
        """Create the clients."""
        for name, service in _SERVICES.items():
            # botocore's pool of 10 connections, kept alive: a close's StopTask calls
            # (one per task, all at once) share them. Ten calls in flight keep up with
            # StopTask's sustained 40 a second (fargate.RATE_LIMITS) while a call takes
            # under 0.25 s; a connection per task would open 100 at once for a 100-worker
            # close, a handshake each, and measured slower on the local Fargate.
            client = self._session.create_client(
                service, region_name=self.region, config=aio_client_config()
            )
            setattr(self, name, await self._stack.enter_async_context(client))

    async def close(self) -> None:
        """Close the clients and their connections."""
        await self._stack.aclose()


class SyncClients:
    """The synchronous (boto3) clients of one region, for the command line; each is made
    on first use.

    Parameters
    ----------
    region : str
        AWS region the clients talk to.
    """

    def __init__(self, region: str) -> None:
        self.region = region
        self.session = boto3.session.Session(region_name=region)

    def client(self, service: str, **options: Any) -> Any:
        """A new client of ``service`` (options: :func:`command_config`'s)."""
        return self.session.client(service, config=command_config(**options))

    @functools.cached_property
    def ec2(self) -> Any:
        """EC2: VPCs, subnets, route tables, security groups."""
        return self.client("ec2")

    @functools.cached_property
    def ecs(self) -> Any:
        """ECS: the cluster and its tasks."""
        return self.client("ecs")

    @functools.cached_property
    def iam(self) -> Any:
        """IAM: roles, and the policy simulator."""
        return self.client("iam")

    @functools.cached_property
    def logs(self) -> Any:
        """CloudWatch Logs: the tasks' log group."""
        return self.client("logs")

    @functools.cached_property
    def ecr(self) -> Any:
        """ECR: repositories and the pull through cache rule."""
        return self.client("ecr")

    @functools.cached_property
    def secrets(self) -> Any:
        """Secrets Manager: the clusters' TLS secrets."""
        return self.client("secretsmanager")

    @functools.cached_property
    def sts(self) -> Any:
        """STS: the caller's identity."""
        return self.client("sts")

    @functools.cached_property
    def codebuild(self) -> Any:
        """CodeBuild: the project that builds images."""
        return self.client("codebuild")

    @functools.cached_property
    def quotas(self) -> Any:
        """Service Quotas, asked once: a quota it cannot tell at once is reported unknown."""
        return self.client("service-quotas", retries={"mode": "standard", "max_attempts": 1})
