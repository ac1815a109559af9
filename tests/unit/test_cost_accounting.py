"""Cost as plain accounting: the billing formula, the meter's figures, its alert and hard
limit through callbacks, price loading off the event loop, the ledger and the formats.

No local Fargate: task descriptions are dicts shaped as DescribeTasks answers them, time
is an injected clock, and the cluster is a pair of callbacks.
"""

import asyncio
import datetime
import json
import sqlite3
import threading

import dask
import pytest

from starburst_dask import fargate
from starburst_dask.cost import limit, prices
from starburst_dask.cost.billing import billed_seconds, task_cost
from starburst_dask.cost.estimate import meter_for
from starburst_dask.cost.ledger import Ledger, report, summary
from starburst_dask.cost.meter import CostMeter
from starburst_dask.cost.prices import Prices
from starburst_dask.errors import ConfigurationError, CostLimitExceeded
from starburst_dask.format import format_duration, format_usd
from starburst_dask.options import ClusterOptions

UTC = datetime.timezone.utc
T0 = datetime.datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
RATES = fargate.PUBLISHED_PRICES["us-east-1"]
#: US dollars per hour of one 0.25 vCPU / 0.5 GB x86 task, by the published table.
SMALL_RATE = 0.25 * RATES["X86_64-vCPU"] + 0.5 * RATES["X86_64-GB"]
SMALL = {"cpu": "256", "memory": "512"}


def prices_(discount=0.5):
    return Prices("us-east-1", dict(RATES), discount, "test")


def at(seconds):
    return T0 + datetime.timedelta(seconds=seconds)


class Clock:
    """A clock the test moves: ``clock.seconds`` past T0."""

    def __init__(self, seconds=0.0):
        self.seconds = seconds

    def __call__(self):
        return at(self.seconds)


class Cluster:
    """What a meter reaches of its cluster: a log, a kept log and the hard limit."""

    def __init__(self):
        self.shown, self.kept, self.limits = [], [], []

    def log(self, line):
        self.shown.append(line)

    def keep(self, line):
        self.kept.append(line)

    async def on_limit(self, error):
        self.limits.append(error)


def meter(tasks, clock, **kwargs):
    kwargs = {
        "scheduler_size": (256, 512),
        "worker_size": (256, 512),
        "n_workers": 2,
        "name": "test-cluster",
        **kwargs,
    }
    return CostMeter(prices_(), tasks=lambda: tasks, clock=clock, **kwargs)


def three_tasks():
    """A scheduler and two workers, pulled at 0, 5 and 5 seconds, all running."""
    return [
        {"taskArn": "arn:s", **SMALL, "pullStartedAt": at(0)},
        {"taskArn": "arn:w1", **SMALL, "pullStartedAt": at(5)},
        {"taskArn": "arn:w2", **SMALL, "pullStartedAt": at(5)},
    ]


# The formula


def test_billed_per_second_from_pull_start_with_a_one_minute_minimum():
    task = {"pullStartedAt": at(0), "startedAt": at(20), "stoppedAt": at(95.5)}
    assert billed_seconds(task, now=at(500)) == 95.5
    assert billed_seconds({**task, "stoppedAt": at(10)}, now=at(500)) == 60  # the minimum
    running = {"pullStartedAt": at(0)}
    assert billed_seconds(running, now=at(30)) == 60  # the minimum is spent already
    assert billed_seconds(running, now=at(90)) == 90
    assert billed_seconds({"startedAt": at(5)}, now=at(100)) == 95  # no pull time known
    assert billed_seconds({"lastStatus": "PROVISIONING"}, now=at(100)) == 0


def test_a_deprovisioning_task_is_billed_until_it_is_stopped():
    # Its container exited at 100 (executionStoppedAt); AWS bills until the task stops.
    exited = {"pullStartedAt": at(0), "executionStoppedAt": at(100)}
    assert billed_seconds({**exited, "lastStatus": "DEPROVISIONING"}, now=at(130)) == 130
    assert billed_seconds({**exited, "stoppedAt": at(145)}, now=at(500)) == 145


def test_task_cost_formula():
    task = {"cpu": "1024", "memory": "2048", "pullStartedAt": at(0), "stoppedAt": at(3600)}
    assert task_cost(task, prices_(), at(0)) == pytest.approx(
        RATES["X86_64-vCPU"] + 2 * RATES["X86_64-GB"]
    )
    arm = {
        **task,
        "cpu": "2048",
        "memory": "4096",
        "attributes": [{"name": "ecs.cpu-architecture", "value": "arm64"}],
    }
    assert task_cost(arm, prices_(), at(0)) == pytest.approx(
        2 * RATES["ARM64-vCPU"] + 4 * RATES["ARM64-GB"]
    )
    spot = {**task, "capacityProviderName": "FARGATE_SPOT"}
    assert task_cost(spot, prices_(0.5), at(0)) == pytest.approx(
        0.5 * (RATES["X86_64-vCPU"] + 2 * RATES["X86_64-GB"])
    )
    storage = {**task, "ephemeralStorage": {"sizeInGiB": 50}}  # 30 GiB above the free 20
    assert task_cost(storage, prices_(), at(0)) - task_cost(
        task, prices_(), at(0)
    ) == pytest.approx(30 * RATES["storage-GB"])
    short = {**task, "stoppedAt": at(12)}
    assert task_cost(short, prices_(), at(0)) == pytest.approx(
        (RATES["X86_64-vCPU"] + 2 * RATES["X86_64-GB"]) / 60
    )


# Formats


def test_format_usd_one_rule_for_every_amount():
    assert format_usd(0) == "$0.00"
    assert format_usd(0.000617125) == "$0.000617"
    assert format_usd(0.0247) == "$0.0247"
    assert format_usd(0.5) == "$0.500"
    assert format_usd(3.14159) == "$3.14"
    assert format_usd(12345.678) == "$12,345.68"


def test_format_duration_in_its_two_largest_units():
    assert [format_duration(s) for s in (0, 42.9, 65, 3600 + 180, 3 * 86400 + 4 * 3600)] == [
        "0s",
        "42s",
        "1m05s",
        "1h03m",
        "3d04h",
    ]
    assert format_duration(-1) == "0s"


# The meter's figures


def test_total_rate_and_task_hours_follow_the_clock():
    clock = Clock(30)
    tasks = three_tasks()
    m = meter(tasks, clock)
    assert m.estimate_per_hour == pytest.approx(3 * SMALL_RATE)
    assert m.total == pytest.approx(3 * SMALL_RATE / 60)  # each task's minute, at once
    assert m.rate == pytest.approx(3 * SMALL_RATE)
    clock.seconds = 125  # the scheduler 125 s, the workers 120 s each
    assert m.total == pytest.approx(SMALL_RATE * 365 / 3600)
    assert m.task_hours == pytest.approx(365 / 3600)
    tasks[2]["stoppedAt"] = at(35)  # a worker stopped early: billed its minute, no rate
    assert m.total == pytest.approx(SMALL_RATE * (125 + 120 + 60) / 3600)
    assert m.rate == pytest.approx(2 * SMALL_RATE)
    assert "so far" in m.describe() and format_usd(m.total) in m.describe()


def test_new_workers_are_capped_by_the_projected_cost():
    tasks = [{"taskArn": "arn:s", **SMALL, "pullStartedAt": at(0)}]
    m = meter(tasks, Clock(0), n_workers=3, max_cost=4.5 * SMALL_RATE / 60)
    assert m.total == pytest.approx(SMALL_RATE / 60)  # the scheduler's minute
    # Within the next minute: the scheduler's minute plus one per new worker.
    assert m.allows(3) and not m.allows(4)
    assert m.affordable(10) == 3
    assert m.affordable(2) == 2
    assert meter(tasks, Clock(0)).allows(1000)  # no max_cost
    # A launched task not yet pulling counts its minute already.
    tasks.append({"taskArn": "arn:w", **SMALL, "lastStatus": "PROVISIONING"})
    assert m.affordable(10) == 2


# Alert and hard limit, through the callbacks


def test_alert_and_limit_fire_once_each_when_the_clock_crosses_them():
    async def run():
        clock, cluster = Clock(10), Cluster()
        alert, max_cost = SMALL_RATE * 200 / 3600, SMALL_RATE * 230 / 3600
        m = meter(
            three_tasks(), clock, cost_alert=alert, max_cost=max_cost, check_interval=3600
        )  # checked here, by hand
        m.start(cluster.log, cluster.on_limit, keep=cluster.keep)
        assert cluster.shown == [f"test-cluster: {m.describe_estimate()}"]
        assert "alert at" in cluster.shown[0] and "hard limit" in cluster.shown[0]
        m.check()
        assert (cluster.kept, cluster.limits) == ([], [])
        clock.seconds = 71  # 71 + 66 + 66 = 203 task-seconds: the alert
        m.check()
        m.check()
        [line] = cluster.kept
        assert "reached the alert at " + format_usd(alert) in line
        clock.seconds = 81  # 81 + 76 + 76 = 233: the limit
        m.check()
        m.check()
        await asyncio.sleep(0)  # on_limit runs as a task of its own
        [error] = cluster.limits
        assert isinstance(error, CostLimitExceeded)
        assert error.limit == max_cost and error.spent == pytest.approx(SMALL_RATE * 233 / 3600)
        assert f"max_cost={max_cost:g}" in str(error) and "higher max_cost" in str(error)
        assert cluster.kept[1] == f"test-cluster: {error}"
        assert not m.allows(1) and m.affordable(3) == 0  # no new worker past the limit
        clock.seconds = 90
        await m.finish(cluster.log)
        assert cluster.shown[-1].startswith("Closed test-cluster: ran 1m20s, 3 tasks")
        assert m.total == pytest.approx(SMALL_RATE * 260 / 3600)  # frozen at 90 s
        assert len(cluster.limits) == 1 and len(cluster.kept) == 2

    asyncio.run(run())


def test_the_meter_checks_by_itself_every_interval():
    async def run():
        clock, cluster = Clock(0), Cluster()
        m = meter(three_tasks(), clock, max_cost=SMALL_RATE * 200 / 3600, check_interval=0.01)
        m.start(cluster.log, cluster.on_limit)
        clock.seconds = 100
        while not cluster.limits:  # within the test's timeout
            await asyncio.sleep(0.01)
        assert cluster.shown[-1] == f"test-cluster: {cluster.limits[0]}"  # keep: the log
        await m.finish(cluster.log)

    asyncio.run(run())


def test_finish_freezes_the_figures_and_records_the_cluster(tmp_path):
    async def run():
        clock, cluster = Clock(0), Cluster()
        tasks = three_tasks()
        ledger = Ledger(tmp_path / "ledger.sqlite3")
        m = meter(tasks, clock, ledger=ledger, check_interval=3600)
        m.start(cluster.log, cluster.on_limit)
        clock.seconds = 100
        for task in tasks:
            task["stoppedAt"] = at(90)
        await m.finish(cluster.log)
        total = m.total
        clock.seconds = 1000
        assert m.total == total == pytest.approx(SMALL_RATE * (90 + 85 + 85) / 3600)
        assert m.rate == 0 and m.runtime == 100
        await m.finish(cluster.log)  # idempotent: one final line
        assert [line for line in cluster.shown if line.startswith("Closed")] == [
            f"Closed test-cluster: ran 1m40s, 3 tasks, 0.072 task-hours, cost "
            f"{format_usd(total)} (test)"
        ]
        [record] = ledger.recent()
        assert (record.name, record.status, record.cost) == ("test-cluster", "closed", total)
        assert [t["arn"] for t in record.tasks] == ["arn:s", "arn:w1", "arn:w2"]
        assert record.runtime == datetime.timedelta(seconds=100)

    asyncio.run(run())


def test_a_locked_ledger_does_not_hold_up_the_event_loop(tmp_path):
    """While another process holds the ledger locked, the loop runs on; the cluster's
    row is written once the lock is released (SQLite waits for it, in a thread)."""
    path = tmp_path / "ledger.sqlite3"
    ledger = Ledger(path)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")

    async def run():
        clock, cluster = Clock(0), Cluster()
        m = meter(three_tasks(), clock, ledger=ledger, check_interval=3600)
        m.start(cluster.log, cluster.on_limit)  # records the cluster: waits for the lock
        await asyncio.sleep(0.1)  # the loop runs other work meanwhile
        # Released from the loop itself: had the write blocked the loop, SQLite would
        # have given up first ("database is locked") and nothing would be recorded.
        holder.execute("COMMIT")
        clock.seconds = 70
        await m.finish(cluster.log)

    asyncio.run(run())
    holder.close()
    [record] = ledger.recent()
    assert record.status == "closed" and record.name == "test-cluster"


# Making a meter: prices loaded off the loop, refusals before anything starts


def options(**kwargs):
    return ClusterOptions.resolve(
        region="us-east-1",
        name="test-cluster",
        worker_cpu=256,
        worker_memory=512,
        scheduler_cpu=256,
        scheduler_memory=512,
        **kwargs,
    )


@pytest.fixture
def published_prices(monkeypatch):
    """Prices without the Price List API; records the thread they were loaded in."""
    threads = []

    def load(region, spot_discount):
        threads.append(threading.current_thread())
        return prices.published(region, spot_discount)

    monkeypatch.setattr(prices, "load", load)
    return threads


def test_create_loads_prices_in_a_thread_and_checks_the_limits(published_prices):
    async def create(**kwargs):
        return await meter_for(options(**kwargs), tuple)

    m = asyncio.run(create(n_workers=2, max_cost=1.0))
    assert published_prices and published_prices[0] is not threading.main_thread()
    assert m.estimate_per_hour == pytest.approx(3 * SMALL_RATE) and m.max_cost == 1.0
    assert m.name == "test-cluster"
    with pytest.raises(ConfigurationError) as info:
        asyncio.run(create(n_workers=4, max_hourly_cost=0.001))
    assert format_usd(5 * SMALL_RATE) in str(info.value)
    assert "max_hourly_cost=0.001" in str(info.value) and "Nothing was started" in str(info.value)
    with pytest.raises(ConfigurationError, match="bills a minute at least"):
        asyncio.run(create(n_workers=1, max_cost=0.0001))
    with (
        dask.config.set({"starburst.cost.spot-discount": 1.5}),
        pytest.raises(ConfigurationError, match="spot-discount must be below 1"),
    ):
        asyncio.run(create(n_workers=1))


# The hard limit's halt


def test_halt_closes_the_cluster_even_when_the_scheduler_cannot_err_tasks():
    class Unreachable:
        async def run_function(self, **kwargs):
            raise OSError("scheduler unreachable")

    async def run():
        closed = []

        async def close():
            closed.append(True)

        error = CostLimitExceeded("limit", limit=1.0, spent=1.5)
        await limit.halt(
            error,
            scheduler_comm=Unreachable(),
            scheduler_address="tcp://x:1",
            loop=asyncio.get_running_loop(),
            close=close,
        )
        await limit.halt(
            error,
            scheduler_comm=None,
            scheduler_address="tcp://x:1",
            loop=asyncio.get_running_loop(),
            close=close,
        )
        return closed

    assert asyncio.run(run()) == [True, True]


# The ledger


def test_ledger_totals_today_and_this_month(tmp_path, monkeypatch):
    ledger = Ledger(tmp_path / "ledger.sqlite3")
    now = datetime.datetime(2026, 11, 29, 15, 0, tzinfo=UTC)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    for name, started, cost in (
        ("today", now, 1.25),
        ("earlier", now.replace(day=3), 2.5),
        ("last-month", now.replace(month=10), 100.0),
    ):
        i = ledger.open_cluster(name, "us-east-1", 0.5, "test", started)
        ledger.update_cluster(
            i,
            cost=cost,
            task_hours=1.0,
            status="closed",
            stopped_at=started + datetime.timedelta(hours=1),
            tasks=[],
        )
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:5000")
    i = ledger.open_cluster("local-run", "us-east-1", 0.5, "test", now)
    ledger.update_cluster(
        i,
        cost=0.01,
        task_hours=0.1,
        status="closed",
        stopped_at=now,
        tasks=[{"arn": "a", "cost": 0.01}],
    )
    text = report(ledger=ledger, now=now)
    assert [line.split()[2] for line in text.splitlines()[1:5]] == [
        "local-run",
        "today",
        "earlier",
        "last-month",
    ]
    assert "1h00m" in text.splitlines()[2]  # runtime, in the one duration format
    assert "Today:       $1.25 on AWS (1 clusters); $0.0100 simulated" in text
    assert "This month:  $3.75 on AWS (2 clusters)" in text
    assert ledger.recent(1)[0].tasks == [{"arn": "a", "cost": 0.01}]
    assert "No clusters recorded" in report(ledger=Ledger(tmp_path / "empty.sqlite3"))


def test_cost_command_prints_the_ledger_as_json_and_refuses_a_bad_limit(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from starburst_dask.cli import main

    monkeypatch.setenv("STARBURST_DASK_DATA_DIR", str(tmp_path))

    async def run():
        clock, cluster = Clock(0), Cluster()
        m = meter(three_tasks(), clock, ledger=Ledger(), check_interval=3600)
        m.start(cluster.log, cluster.on_limit)
        clock.seconds = 100
        await m.finish(cluster.log)
        return m.total

    total = asyncio.run(run())
    result = CliRunner().invoke(main, ["cost", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    [row] = data["clusters"]
    assert (row["name"], row["status"], row["simulated"]) == ("test-cluster", "closed", False)
    assert row["cost"] == pytest.approx(total) and row["runtime_seconds"] == 100
    # The totals count by day of start (UTC); the test clock started this one at 0.
    started = datetime.datetime.fromisoformat(row["started_at"])
    totals = summary(now=started)["totals"]
    assert totals["today"]["aws"] == {"cost": pytest.approx(total), "clusters": 1}
    assert totals["month"]["simulated"] == {"cost": 0, "clusters": 0}

    refused = CliRunner().invoke(main, ["cost", "--limit", "-1"])
    assert refused.exit_code == 2 and "-1 is not in the range x>=1" in refused.output
