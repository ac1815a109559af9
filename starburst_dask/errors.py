"""Errors a user of starburst-dask may see. Each message names the problem and the fix."""

from __future__ import annotations


class StarburstError(Exception):
    """Base class of every starburst-dask error."""


class ConfigurationError(StarburstError, ValueError):
    """An option is invalid; raised before any AWS call is made."""


class ConfirmationError(StarburstError):
    """An expensive cluster was declined, or could not be confirmed (no terminal); nothing
    was started."""


class MissingResourceError(StarburstError):
    """An AWS resource the cluster needs does not exist; nothing was created."""


class TaskFailedError(StarburstError, RuntimeError):
    """An ECS task stopped before it ran, or could not be launched.

    ``arns`` are the tasks of the same launch that did start (they still run).
    """

    def __init__(self, message: str, arns: list[str] | None = None) -> None:
        super().__init__(message)
        self.arns: list[str] = list(arns or [])


class QuotaExceededError(TaskFailedError):
    """No room under the Fargate vCPU quota within the launch deadline."""


class CostLimitExceeded(StarburstError, RuntimeError):
    """The cluster reached its hard cost limit (``max_cost``): it closed every task, and
    work that had not finished failed with this error.

    Attributes
    ----------
    limit, spent : float
        The limit and the cost reached, in US dollars.
    """

    def __init__(self, message: str, limit: float = 0.0, spent: float = 0.0) -> None:
        super().__init__(message)
        self.limit = limit
        self.spent = spent

    def __reduce__(self) -> tuple:
        # Pickled to travel through the scheduler to clients: keep the attributes.
        return type(self), (self.args[0], self.limit, self.spent)


class SchedulerLostError(StarburstError, RuntimeError):
    """The cluster's scheduler task stopped by itself (a crash, a kill, its lifetime): the
    cluster failed, its workers were stopped, and unfinished work failed with this error.

    Attributes
    ----------
    task_id : str
        The scheduler task's id.
    reason : str
        Why it stopped, in ECS's words (stop code, stopped reason, exit code).
    """

    def __init__(self, message: str, task_id: str = "", reason: str = "") -> None:
        super().__init__(message)
        self.task_id = task_id
        self.reason = reason

    def __reduce__(self) -> tuple:
        # Pickled to reach each future's waiter: keep the attributes.
        return type(self), (self.args[0], self.task_id, self.reason)
