"""The hard cost limit: fail unfinished work with CostLimitExceeded, then close the cluster.

Closing alone would leave users with ``CancelledError`` ("lost the connection to the
scheduler"), which does not say why. So first the scheduler marks every unfinished task
erred with the :class:`~starburst_dask.errors.CostLimitExceeded` (its dependents follow,
and every client is told, as for an exception raised in a task); then the in-process
clients detach those futures, since a client cancels all its futures when its scheduler
goes away; then every task of the cluster is stopped. Results already gathered stay
with the user.
"""

from __future__ import annotations

import asyncio
import logging
import pickle
from collections.abc import Awaitable, Callable
from typing import Any

from distributed.protocol.pickle import dumps
from tornado.ioloop import IOLoop

from .. import futures
from ..errors import CostLimitExceeded

logger = logging.getLogger(__name__)

#: Seconds to wait for the scheduler to err the unfinished tasks.
ERR_TIMEOUT = 10.0


async def halt(
    error: CostLimitExceeded,
    *,
    scheduler_comm: Any,
    scheduler_address: str,
    loop: IOLoop | None,
    close: Callable[[], Awaitable[None]],
) -> None:
    """Fail a cluster's unfinished work with ``error``, then close the cluster.

    Parameters
    ----------
    error : CostLimitExceeded
        What unfinished work fails with.
    scheduler_comm : distributed.core.rpc, optional
        The cluster's connection to its scheduler (``None``: nothing to fail there).
    scheduler_address : str
        The scheduler's address, as this process's clients know it.
    loop : tornado.ioloop.IOLoop
        The cluster's event loop.
    close : async callable
        Closes the cluster: stops every task.
    """
    exception = pickle.dumps(error)
    try:
        if scheduler_comm is not None:
            erred = await asyncio.wait_for(
                scheduler_comm.run_function(
                    function=dumps(_err_unfinished_tasks()),
                    args=dumps((exception, repr(error))),
                    kwargs=dumps({}),
                    wait=True,
                ),
                ERR_TIMEOUT,
            )
            logger.info("cost limit: %s unfinished tasks erred", erred.get("result"))
    except Exception as e:  # noqa: BLE001 - closing matters more than the error's type
        logger.warning("cost limit: could not fail the unfinished tasks: %s", e)
    futures.fail_pending(scheduler_address, loop, exception)
    await close()


def _err_unfinished_tasks() -> Any:
    """A function for the scheduler that errs every unfinished task.

    Defined in a function, so cloudpickle sends it by value: the scheduler's image needs
    dask, not starburst-dask. ``exception`` stays pickled there; clients unpickle it.
    """

    def err_unfinished_tasks(exception: bytes, text: str, dask_scheduler: Any) -> int:
        from distributed.metrics import time

        scheduler = dask_scheduler
        stimulus_id = f"cost-limit-{time()}"
        # Tasks that could run; waiting tasks depend on them and follow them to erred.
        keys = [
            ts.key
            for ts in scheduler.tasks.values()
            if ts.state in ("processing", "queued", "no-worker")
        ]
        for key in keys:
            ts = scheduler.tasks.get(key)
            if ts is None or ts.state not in ("processing", "queued", "no-worker"):
                continue
            recommendations, client_msgs, worker_msgs = scheduler._transition(
                key,
                "erred",
                stimulus_id,
                cause=key,
                exception=exception,
                traceback=None,
                exception_text=text,
                traceback_text="",
            )
            scheduler._transitions(recommendations, client_msgs, worker_msgs, stimulus_id)
            scheduler.send_all(client_msgs, worker_msgs)
        return len(keys)

    return err_unfinished_tasks
