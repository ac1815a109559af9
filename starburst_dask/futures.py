"""This process's futures of a cluster: failed with an error that says why, and kept so.

When a cluster's scheduler goes away, a client cancels every future it holds
(``CancelledError``, which does not say why). Work that failed for a known reason (the
cost limit, a lost scheduler task) is failed here first with that reason, and detached from
its client: a future whose state the client no longer holds keeps its error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from distributed import Client
from tornado.ioloop import IOLoop

#: Seconds between sweeps of a lost scheduler's clients for new work to fail.
SWEEP_INTERVAL = 0.2


def fail_pending(address: str, loop: IOLoop | None, exception: bytes) -> None:
    """Fail the unfinished futures of this process's clients of ``address``.

    Parameters
    ----------
    address : str
        The scheduler's address, as this process's clients know it.
    loop : tornado.ioloop.IOLoop
        The caller's event loop: clients on another loop are failed on theirs.
    exception : bytes
        The pickled exception the futures fail with (unpickled by each future).
    """
    for client in list(Client._instances):
        scheduler = getattr(client, "scheduler", None)
        if scheduler is None or getattr(scheduler, "address", None) != address:
            continue
        if client.loop is loop:
            _detach(client, exception)
        elif client.loop is not None:
            client.loop.add_callback(_detach, client, exception)


def _detach(client: Client, exception: bytes) -> None:
    for key, state in list(client.futures.items()):
        if state.status in ("pending", "lost"):  # not yet told by the scheduler
            state.set_error(exception, None)
        if state.status == "error":
            client.futures.pop(key, None)


async def keep_failing(
    address: str, loop: IOLoop | None, exception: bytes, while_: Callable[[], bool]
) -> None:
    """Fail the unfinished futures of ``address``'s clients now, and again every
    :data:`SWEEP_INTERVAL` seconds while ``while_()`` holds.

    For a scheduler that is gone. Its clients cancelled what they held the moment the
    connection broke, before anyone could say why; then each retries connecting for its
    connect timeout (``distributed.comm.timeouts.connect``), and new work submitted
    meanwhile waits in its buffer, to be cancelled without a reason when it gives up and
    closes. distributed has no hook on either, and patching it is not ours to do: so new
    work is failed with ``exception`` within a sweep instead. Once a client has given up
    and closed, a submit raises distributed's ``ClosedClientError`` at once.
    """
    while while_():
        fail_pending(address, loop, exception)
        await asyncio.sleep(SWEEP_INTERVAL)
