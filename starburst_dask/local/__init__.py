"""A local Fargate: an AWS endpoint where ECS Fargate tasks are local processes.

For tests and demos without an AWS account. See :class:`LocalFargate` and :func:`serve`.
"""

from .latency import PROFILES, Latency
from .server import LocalFargate, serve
from .task import TaskRecord

__all__ = ["PROFILES", "Latency", "LocalFargate", "TaskRecord", "serve"]
