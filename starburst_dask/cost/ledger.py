"""A local record of what clusters cost: one SQLite file in the user's data directory.

Each cluster is recorded when it starts, updated while it runs and when it closes, with
its tasks; ``starburst-dask cost`` reads it back, after :mod:`.reconcile` brought clusters
whose client died up to date from ECS. Clusters that ran against an endpoint that is not
AWS's (a local Fargate) are marked simulated, and kept out of the AWS totals.

SQLite waits up to :data:`TIMEOUT` seconds for a database another process has locked, so
a running cluster writes its row through :class:`LedgerEntry`, in a thread of its own:
an event loop never waits for the ledger.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import datetime
import json
import logging
import os
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ..aws.names import aws_endpoint
from ..format import format_duration, format_usd

logger = logging.getLogger(__name__)

#: Environment variable that overrides the data directory (tests use it).
DATA_DIR_VAR = "STARBURST_DASK_DATA_DIR"
#: Seconds SQLite waits for a database another process has locked.
TIMEOUT = 10.0
#: The status of a cluster whose client has not recorded it closed (yet, or ever).
RUNNING = "running"
#: What a simulated cost is, in the report and in ``cost --json``.
SIMULATED_NOTE = (
    "simulated: AWS's prices applied to the tasks of an endpoint that is not AWS's "
    "(a local Fargate); AWS bills nothing for them"
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS clusters (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    region TEXT,
    endpoint TEXT,
    started_at TEXT NOT NULL,
    stopped_at TEXT,
    updated_at TEXT,
    estimate_per_hour REAL,
    cost REAL NOT NULL DEFAULT 0,
    task_hours REAL NOT NULL DEFAULT 0,
    status TEXT NOT NULL,
    price_source TEXT,
    tasks TEXT NOT NULL DEFAULT '[]'
);
"""


def endpoint() -> str | None:
    """The endpoint this process talks to (``AWS_ENDPOINT_URL``), as clusters are recorded."""
    return os.environ.get("AWS_ENDPOINT_URL")


def data_dir() -> Path:
    """``$STARBURST_DASK_DATA_DIR``, else the user's data directory."""
    if os.environ.get(DATA_DIR_VAR):
        return Path(os.environ[DATA_DIR_VAR])
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "starburst-dask"


@dataclasses.dataclass(frozen=True)
class ClusterRecord:
    """One cluster as the ledger has it."""

    id: int
    name: str
    region: str
    endpoint: str | None
    started_at: datetime.datetime
    stopped_at: datetime.datetime | None
    updated_at: datetime.datetime | None
    estimate_per_hour: float
    cost: float
    task_hours: float
    status: str
    price_source: str
    tasks: list[dict[str, Any]]

    @property
    def simulated(self) -> bool:
        """Whether it ran against an endpoint that is not AWS's (a local Fargate): its cost
        is AWS's prices applied to its tasks, not a bill."""
        return not aws_endpoint(self.endpoint)

    @property
    def runtime(self) -> datetime.timedelta:
        """From start to close, or to the last update (a process that died leaves it
        recorded as running)."""
        return (self.stopped_at or self.updated_at or self.started_at) - self.started_at


class Ledger:
    """The ledger file; every method opens it briefly, so processes can share it.

    Parameters
    ----------
    path : path, optional
        The SQLite file; default ``ledger.sqlite3`` in :func:`data_dir`.
    """

    def __init__(self, path: str | Path | None = None) -> None:
        self._path = Path(path) if path else None

    @property
    def path(self) -> Path:
        """The SQLite file (resolved when used, so the environment may change meanwhile)."""
        return self._path or data_dir() / "ledger.sqlite3"

    @contextlib.contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=TIMEOUT)
        try:
            db.executescript(_SCHEMA)
            with db:
                yield db
        finally:
            db.close()

    def open_cluster(
        self,
        name: str,
        region: str,
        estimate_per_hour: float,
        price_source: str,
        started_at: datetime.datetime,
    ) -> int | None:
        """Record a starting cluster; its id, or ``None`` if the ledger cannot be written."""
        try:
            with self._db() as db:
                cursor = db.execute(
                    "INSERT INTO clusters (name, region, endpoint, started_at, updated_at, "
                    "estimate_per_hour, status, price_source) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        name,
                        region,
                        endpoint(),
                        started_at.isoformat(),
                        started_at.isoformat(),
                        estimate_per_hour,
                        RUNNING,
                        price_source,
                    ),
                )
                return cursor.lastrowid
        except (OSError, sqlite3.Error) as e:  # the ledger must never stop a cluster
            logger.warning("cannot write the cost ledger %s: %s", self.path, e)
            return None

    def update_cluster(
        self,
        cluster_id: int,
        *,
        cost: float,
        task_hours: float,
        status: str,
        stopped_at: datetime.datetime | None,
        tasks: list[dict[str, Any]],
    ) -> None:
        """Update a cluster's cost, status and tasks."""
        try:
            with self._db() as db:
                db.execute(
                    "UPDATE clusters SET cost = ?, task_hours = ?, status = ?, "
                    "stopped_at = ?, updated_at = ?, tasks = ? WHERE id = ?",
                    (
                        cost,
                        task_hours,
                        status,
                        stopped_at.isoformat() if stopped_at else None,
                        datetime.datetime.now(datetime.timezone.utc).isoformat(),
                        json.dumps(tasks),
                        cluster_id,
                    ),
                )
        except (OSError, sqlite3.Error) as e:
            logger.warning("cannot write the cost ledger %s: %s", self.path, e)

    def recent(self, limit: int = 20) -> list[ClusterRecord]:
        """The latest ``limit`` clusters, newest first."""
        return self._select("ORDER BY started_at DESC, id DESC LIMIT ?", (limit,))

    def records(self, status: str) -> list[ClusterRecord]:
        """Clusters recorded with ``status``, oldest first."""
        return self._select("WHERE status = ? ORDER BY started_at", (status,))

    def running(self, region: str, endpoint: str | None) -> list[ClusterRecord]:
        """Clusters recorded running in ``region`` against ``endpoint``, oldest first."""
        return [r for r in self.records(RUNNING) if (r.region, r.endpoint) == (region, endpoint)]

    def named(self, names: set[str]) -> list[ClusterRecord]:
        """Every cluster recorded under one of ``names``, oldest first."""
        marks = ", ".join("?" * len(names))
        return self._select(f"WHERE name IN ({marks}) ORDER BY started_at", tuple(names))

    def since(self, start: datetime.datetime) -> list[ClusterRecord]:
        """Every cluster started at or after ``start``."""
        return self._select("WHERE started_at >= ? ORDER BY started_at", (start.isoformat(),))

    def _select(self, clause: str, params: tuple) -> list[ClusterRecord]:
        if not self.path.exists():
            return []
        with self._db() as db:
            rows = db.execute(
                "SELECT id, name, region, endpoint, started_at, stopped_at, updated_at, "
                "estimate_per_hour, cost, task_hours, status, price_source, tasks "
                f"FROM clusters {clause}",
                params,
            ).fetchall()
        return [
            ClusterRecord(
                id=r[0],
                name=r[1],
                region=r[2] or "",
                endpoint=r[3],
                started_at=datetime.datetime.fromisoformat(r[4]),
                stopped_at=datetime.datetime.fromisoformat(r[5]) if r[5] else None,
                updated_at=datetime.datetime.fromisoformat(r[6]) if r[6] else None,
                estimate_per_hour=r[7] or 0.0,
                cost=r[8],
                task_hours=r[9],
                status=r[10],
                price_source=r[11] or "",
                tasks=json.loads(r[12]),
            )
            for r in rows
        ]


class LedgerEntry:
    """One running cluster's row, written in a thread of its own, in the order asked.

    :meth:`open` and :meth:`update` return at once; :meth:`close` waits for the last
    write without blocking the event loop. A write that fails is logged, never raised:
    the ledger must never stop a cluster.

    Parameters
    ----------
    ledger : Ledger
        The ledger to write to.
    """

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        #: The row's id once written (``None`` before, or if the ledger cannot be written).
        self.id: int | None = None
        # One thread: writes land in order, and a locked database holds up no one else.
        self._writer = concurrent.futures.ThreadPoolExecutor(
            1, thread_name_prefix="starburst-ledger"
        )

    def open(
        self,
        name: str,
        region: str,
        estimate_per_hour: float,
        price_source: str,
        started_at: datetime.datetime,
    ) -> None:
        """Record a starting cluster (see :meth:`Ledger.open_cluster`)."""

        def write() -> None:
            self.id = self.ledger.open_cluster(
                name, region, estimate_per_hour, price_source, started_at
            )

        self._submit(write)

    def update(self, **fields: Any) -> None:
        """Update the row (see :meth:`Ledger.update_cluster` for the fields)."""
        self._submit(self._update, fields)

    async def close(self, **fields: Any) -> None:
        """The last update, once every earlier write is done; then the thread ends."""
        written = self._submit(self._update, fields)
        try:
            if written is not None:
                await asyncio.wrap_future(written)
        finally:
            self._writer.shutdown(wait=True)  # idle by now: returns at once

    def _update(self, fields: dict[str, Any]) -> None:
        if self.id is not None:
            self.ledger.update_cluster(self.id, **fields)

    def _submit(self, write: Callable[..., None], *args: Any) -> concurrent.futures.Future | None:
        try:
            return self._writer.submit(_logged, write, *args)
        except RuntimeError:  # the interpreter is exiting (a cluster closed at exit): no threads
            _logged(write, *args)
            return None


def _logged(write: Callable[..., None], *args: Any) -> None:
    try:
        write(*args)
    except Exception:  # noqa: BLE001 - the ledger must never stop a cluster
        logger.warning("cannot write the cost ledger", exc_info=True)


def summary(
    limit: int = 20, ledger: Ledger | None = None, now: datetime.datetime | None = None
) -> dict[str, Any]:
    """``starburst-dask cost --json``: recent clusters, and today's and this month's totals
    (UTC days), on AWS and simulated on a local endpoint apart."""
    ledger = ledger or Ledger()
    now = now or datetime.datetime.now(datetime.timezone.utc)
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    totals = {}
    for label, start in (("today", today), ("month", today.replace(day=1))):
        records = ledger.since(start)
        totals[label] = {
            where: {
                "cost": sum(r.cost for r in records if r.simulated == simulated),
                "clusters": sum(1 for r in records if r.simulated == simulated),
            }
            for where, simulated in (("aws", False), ("simulated", True))
        }
    return {
        "clusters": [
            {
                "name": r.name,
                "region": r.region,
                "started_at": r.started_at.isoformat(),
                "stopped_at": r.stopped_at.isoformat() if r.stopped_at else None,
                "runtime_seconds": r.runtime.total_seconds(),
                "task_hours": r.task_hours,
                "cost": r.cost,
                "status": r.status,
                "simulated": r.simulated,
                "endpoint": r.endpoint,
                "price_source": r.price_source,
                "note": SIMULATED_NOTE if r.simulated else None,
            }
            for r in ledger.recent(limit)
        ],
        "totals": totals,
        "ledger": str(ledger.path),
    }


def report(
    limit: int = 20, ledger: Ledger | None = None, now: datetime.datetime | None = None
) -> str:
    """The text of ``starburst-dask cost``: :func:`summary`, as a table and two lines."""
    data = summary(limit, ledger, now)
    if not data["clusters"]:
        return f"No clusters recorded yet (ledger: {data['ledger']})."
    lines = [
        f"{'started (UTC)':<19}  {'cluster':<28} {'region':<14} {'runtime':>9} "
        f"{'task-h':>8} {'cost':>11}  status"
    ]
    for r in data["clusters"]:
        started = datetime.datetime.fromisoformat(r["started_at"])
        status = r["status"] + (" (simulated)" if r["simulated"] else "")
        lines.append(
            f"{started:%Y-%m-%d %H:%M:%S}  {r['name'][:28]:<28} {r['region'][:14]:<14} "
            f"{format_duration(r['runtime_seconds']):>9} {r['task_hours']:>8.3f} "
            f"{format_usd(r['cost']):>11}  {status}"
        )
    lines.append("")
    if any(r["simulated"] for r in data["clusters"]):
        lines.append(f"(simulated) {SIMULATED_NOTE}.")
    for label, key in (("Today", "today"), ("This month", "month")):
        aws, local = data["totals"][key]["aws"], data["totals"][key]["simulated"]
        line = f"{label + ':':<12} {format_usd(aws['cost'])} on AWS ({aws['clusters']} clusters)"
        if local["clusters"]:
            line += (
                f"; {format_usd(local['cost'])} simulated on a local "
                f"endpoint ({local['clusters']} clusters)"
            )
        lines.append(line)
    lines.append(f"Ledger: {data['ledger']}")
    return "\n".join(lines)
