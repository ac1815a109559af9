"""Cost: prices, the billing formula, the running total, limits, the ledger and its command.

The cluster tests run on the local Fargate, which answers the Price List API with the
published table, so the same code path as on AWS is exercised.
"""

import datetime
import json
import logging
import os
import pickle
import signal
import subprocess
import sys
import time

import boto3
import dask
import psutil
import pytest
from click.testing import CliRunner
from distributed import Client
from distributed.core import Status
from helpers import wait_until

from starburst_dask import FargateCluster, fargate
from starburst_dask.cli import main as cli
from starburst_dask.cost.billing import utcnow
from starburst_dask.cost.limit import _err_unfinished_tasks
from starburst_dask.cost.prices import load, published
from starburst_dask.errors import ConfigurationError, CostLimitExceeded
from starburst_dask.format import format_usd
from starburst_dask.local import pricing

RATES = fargate.PUBLISHED_PRICES["us-east-1"]
SMALL = {
    "worker_cpu": 256,
    "worker_memory": 512,
    "scheduler_cpu": 256,
    "scheduler_memory": 512,
    "poll_interval": 0.5,
}
#: US dollars per hour of one 0.25 vCPU / 0.5 GB x86 task, by the published table.
SMALL_RATE = 0.25 * RATES["X86_64-vCPU"] + 0.5 * RATES["X86_64-GB"]


# Prices


def test_prices_come_from_the_price_list_api_and_are_cached(local_fargate):
    before = pricing.calls["GetProducts"]
    first = load("eu-west-1", spot_discount=0.5)
    assert first.source == "AWS Price List API"
    assert first.rates == RATES  # what the local Fargate publishes
    assert pricing.calls["GetProducts"] > before
    calls = pricing.calls["GetProducts"]
    second = load("eu-west-1", spot_discount=0.5)
    assert second.rates == RATES and second.source.startswith("AWS Price List API, cached")
    assert pricing.calls["GetProducts"] == calls  # from the cache
    assert load("eu-west-1", spot_discount=0.5, max_age=0).source == "AWS Price List API"


def test_price_list_answers_in_aws_format(local_fargate):
    client = local_fargate.client("pricing")
    answer = client.get_products(
        ServiceCode="AmazonECS",
        Filters=[
            {"Type": "TERM_MATCH", "Field": "usagetype", "Value": "USE1-Fargate-ARM-GB-Hours"}
        ],
    )
    [product] = [json.loads(p) for p in answer["PriceList"]]
    [term] = product["terms"]["OnDemand"].values()
    [dimension] = term["priceDimensions"].values()
    assert dimension["pricePerUnit"]["USD"] == f"{RATES['ARM64-GB']:.10f}"
    assert product["product"]["attributes"]["regionCode"] == "us-east-1"
    paged = client.get_products(ServiceCode="AmazonECS", MaxResults=3)
    assert len(paged["PriceList"]) == 3 and paged["NextToken"]


def test_published_table_when_the_api_is_unreachable(monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    got = load("ap-south-1", spot_discount=0.5, max_age=0)
    assert got.rates == RATES
    assert fargate.PUBLISHED_PRICES_DATE in got.source and "unavailable" in got.source
    assert "us-east-1" in published("ap-south-1", 0.5).source  # no table of its own


# Options


def test_cost_options_from_arguments_and_config(local_fargate):
    with pytest.raises(ConfigurationError, match="max_cost must be a positive number"):
        FargateCluster(n_workers=1, max_cost=-1)
    with pytest.raises(ConfigurationError, match="cost_alert=5 must be below max_cost=2"):
        FargateCluster(n_workers=1, max_cost=2, cost_alert=5)
    with (
        dask.config.set({"starburst.cost.max-hourly-cost": 0.001}),
        pytest.raises(ConfigurationError, match="max_hourly_cost=0.001"),
    ):
        FargateCluster(n_workers=1)
    with (
        dask.config.set({"starburst.cost.spot-discount": 1.5}),
        pytest.raises(ConfigurationError, match="spot-discount"),
    ):
        FargateCluster(n_workers=1)


def test_max_hourly_cost_refuses_to_start_and_creates_nothing(local_fargate):
    ecs = boto3.client("ecs")
    before = ecs.list_tasks(cluster="starburst-dask", desiredStatus="STOPPED")["taskArns"]
    local_fargate.reset_counters()
    estimate = SMALL_RATE + 4 * (1 * RATES["X86_64-vCPU"] + 4 * RATES["X86_64-GB"])
    with pytest.raises(ConfigurationError) as info:
        FargateCluster(n_workers=4, scheduler_cpu=256, scheduler_memory=512, max_hourly_cost=0.1)
    message = str(info.value)
    assert format_usd(estimate) in message and "max_hourly_cost=0.1" in message
    assert "Nothing was started" in message
    assert local_fargate.calls["RunTask"] == 0
    assert local_fargate.calls["RegisterTaskDefinition"] == 0
    assert ecs.list_tasks(cluster="starburst-dask")["taskArns"] == []
    assert ecs.list_tasks(cluster="starburst-dask", desiredStatus="STOPPED")["taskArns"] == before
    # A max_cost below what a minute of the smallest cluster costs is refused as well.
    with pytest.raises(ConfigurationError, match="bills a minute at least"):
        FargateCluster(n_workers=1, max_cost=0.0001, **SMALL)
    assert local_fargate.calls["RunTask"] == 0


# Clusters


def cluster_tasks(ecs, name):
    """Every task of cluster ``name`` as DescribeTasks reports it now."""
    arns = [
        arn
        for status in ("RUNNING", "STOPPED")
        for arn in ecs.list_tasks(cluster="starburst-dask", startedBy=name, desiredStatus=status)[
            "taskArns"
        ]
    ]
    return ecs.describe_tasks(cluster="starburst-dask", tasks=arns)["tasks"]


def expected_cost(described):
    """The formula, applied here to DescribeTasks' own timestamps."""
    total = 0.0
    for t in described:
        seconds = (t["stoppedAt"] - t["pullStartedAt"]).total_seconds()
        rate = (
            fargate.vcpus(int(t["cpu"])) * RATES["X86_64-vCPU"]
            + int(t["memory"]) / 1024 * RATES["X86_64-GB"]
        )
        total += rate * max(60, seconds) / 3600
    return total


def assert_no_task_left(aws, ecs, name):
    assert (
        ecs.list_tasks(cluster="starburst-dask", startedBy=name, desiredStatus="RUNNING")[
            "taskArns"
        ]
        == []
    )
    arns = {t["taskArn"] for t in cluster_tasks(ecs, name)}
    pids = [r["pid"] for r in aws.task_records() if r["arn"] in arns and r["pid"]]
    assert [
        p
        for p in pids
        if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE
    ] == []


def assert_listed_by_cost_command(name, cost, status):
    result = CliRunner().invoke(cli, ["cost"])
    assert result.exit_code == 0, result.output
    [line] = [line for line in result.output.splitlines() if name in line]
    assert format_usd(cost) in line and f"{status} (simulated)" in line
    assert "Today:" in result.output and "This month:" in result.output
    as_json = CliRunner().invoke(cli, ["cost", "--json"])
    assert as_json.exit_code == 0, as_json.output
    [row] = [c for c in json.loads(as_json.stdout)["clusters"] if c["name"] == name]
    assert row["cost"] == pytest.approx(cost) and row["status"] == status
    assert row["simulated"] is True


def test_cost_follows_the_tasks_own_timestamps(local_fargate):
    ecs = boto3.client("ecs")
    with FargateCluster(n_workers=2, **SMALL) as cluster, Client(cluster) as client:
        name = cluster.options.name
        assert cluster.cost.estimate_per_hour == pytest.approx(3 * SMALL_RATE)
        assert cluster.cost.prices.source.startswith("AWS Price List API")
        estimate = f"Estimated cost {format_usd(3 * SMALL_RATE)}/hour (AWS Price List API"
        [shown] = [line for _, line in cluster._cluster_manager_logs if estimate in line]
        assert "simulated on a local endpoint, not billed" in shown  # no AWS bill
        client.wait_for_workers(2, timeout=60)
        assert client.submit(sum, [1, 2, 3]).result() == 6
        wait_until(lambda: cluster.cost.rate == pytest.approx(3 * SMALL_RATE))
        assert cluster.cost.total >= 3 * SMALL_RATE / 60  # each task's minute, at least
        assert "cost=$" in repr(cluster) and "Cost:" in cluster._repr_html_()
        cluster.scale(1)  # one worker stops early: billed its minute
        wait_until(
            lambda: (
                len(cluster_tasks(ecs, name)) == 3
                and any(t["lastStatus"] == "STOPPED" for t in cluster_tasks(ecs, name))
            )
        )
    described = cluster_tasks(ecs, name)
    assert len(described) == 3 and {t["lastStatus"] for t in described} == {"STOPPED"}
    assert cluster.cost.total == pytest.approx(expected_cost(described), rel=0.01)
    # Every task ran less than a minute, so each was billed its one-minute minimum.
    assert all((t["stoppedAt"] - t["pullStartedAt"]).total_seconds() < 60 for t in described)
    assert cluster.cost.total == pytest.approx(3 * SMALL_RATE / 60, rel=0.01)
    assert cluster.cost.rate == 0
    assert cluster.cost.task_hours == pytest.approx(3 / 60, rel=0.01)
    [final] = [line for _, line in cluster._cluster_manager_logs if line.startswith("Closed")]
    assert "3 tasks" in final and format_usd(cluster.cost.total) in final
    assert "simulated on a local endpoint" in final
    assert_no_task_left(local_fargate, ecs, name)
    assert_listed_by_cost_command(name, cluster.cost.total, "closed")


def test_max_cost_closes_the_cluster_and_fails_pending_work(local_fargate, caplog):
    """The limit is just above the three tasks' one-minute minimums. Once work is under
    way, the meter's clock is moved past the minute: the alert and the limit come at its
    next check, in the middle of the work. What is billed still follows AWS's timestamps."""
    caplog.set_level(logging.WARNING, logger="starburst_dask")
    ecs = boto3.client("ecs")
    max_cost = round(SMALL_RATE * (180 + 15) / 3600, 6)
    alert = round(SMALL_RATE * (180 + 5) / 3600, 6)
    with (
        FargateCluster(n_workers=2, max_cost=max_cost, cost_alert=alert, **SMALL) as cluster,
        Client(cluster) as client,
    ):
        name = cluster.options.name
        client.wait_for_workers(2, timeout=60)
        futures = client.map(
            lambda x: time.sleep(0.5) or x,  # simulated work: 100 s
            range(400),
        )
        assert client.gather(futures[:4]) == [0, 1, 2, 3]  # gathered: stays with us
        assert cluster.status == Status.running and cluster.cost.total < alert
        # Every task now 90 s past its pull start: 270 task-seconds, past both.
        cluster.cost.clock = lambda: utcnow() + datetime.timedelta(seconds=90)
        wait_until(lambda: cluster.status == Status.closed, timeout=60)
        with pytest.raises(CostLimitExceeded) as info:
            futures[-1].result()
        error = info.value
        assert error.limit == max_cost and error.spent >= max_cost
        assert f"max_cost={max_cost:g}" in str(error) and format_usd(error.spent) in str(error)
        assert "higher max_cost" in str(error)
        assert isinstance(futures[-2].exception(), CostLimitExceeded)
    # distributed's Client.close() returns at once when the client closed itself because
    # its scheduler went away, leaving its event-loop thread running: upstream behaviour,
    # for any cluster that closes under its client. Stop the thread as close() would.
    assert client.status == "closed"
    client._loop_runner.stop()
    alerts = [r for r in caplog.records if "reached the alert" in r.getMessage()]
    assert len(alerts) == 1 and format_usd(alert) in alerts[0].getMessage()
    assert any("reached its cost limit" in r.getMessage() for r in caplog.records)
    assert_no_task_left(local_fargate, ecs, name)
    # The tasks really stopped; the total is what their own timestamps bill.
    described = cluster_tasks(ecs, name)
    assert len(described) == 3 and {t["lastStatus"] for t in described} == {"STOPPED"}
    assert cluster.cost.total == pytest.approx(expected_cost(described), rel=0.01)
    assert_listed_by_cost_command(name, cluster.cost.total, "cost limit")


def test_scheduler_side_function_needs_no_starburst_dask():
    """The function that errs tasks travels by value: a scheduler image has only dask."""
    code = (
        "import sys, pickle; sys.modules['starburst_dask'] = None; "
        "f = pickle.loads(sys.stdin.buffer.read()); print(f.__name__)"
    )
    from distributed.protocol.pickle import dumps

    result = subprocess.run(
        [sys.executable, "-c", code],
        input=dumps(_err_unfinished_tasks()),
        capture_output=True,
        check=True,
    )
    assert result.stdout.strip() == b"err_unfinished_tasks"
    error = pickle.loads(pickle.dumps(CostLimitExceeded("m", limit=1.5, spent=2.0)))
    assert (error.limit, error.spent, str(error)) == (1.5, 2.0, "m")


#: A client that starts a cluster and is killed without closing it.
DYING_CLIENT = """
import sys
from starburst_dask import FargateCluster
cluster = FargateCluster(n_workers=1, name="cost-dead-client", **SMALL)
print("STARTED", flush=True)
sys.stdin.read()
"""


def cost_row(name):
    result = CliRunner().invoke(cli, ["cost", "--json"])
    assert result.exit_code == 0, result.output
    [row] = [c for c in json.loads(result.stdout)["clusters"] if c["name"] == name]
    return row


def test_a_killed_clients_cluster_is_costed_from_ecs_after_cleanup(local_fargate):
    ecs, name = boto3.client("ecs"), "cost-dead-client"
    client = subprocess.Popen(
        [sys.executable, "-c", f"SMALL = {SMALL!r}\n{DYING_CLIENT}"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env={**os.environ, **local_fargate.env},
        text=True,
    )
    try:
        line = ""
        while line.strip() != "STARTED":  # after the cluster's own lines
            line = client.stdout.readline()
            assert line, "the client exited before its cluster started"
    finally:
        client.send_signal(signal.SIGKILL)
        client.wait()
        client.stdout.close()
        client.stdin.close()
    assert cost_row(name)["status"] == "running"  # its client never said otherwise

    done = CliRunner().invoke(cli, ["cleanup", "--cluster", name, "--yes"])
    assert done.exit_code == 0 and "Stopped 2 tasks" in done.output, done.output
    # SIGTERM, up to the stop timeout, then DEPROVISIONING.
    wait_until(
        lambda: {t["lastStatus"] for t in cluster_tasks(ecs, name)} == {"STOPPED"},
        timeout=fargate.STOP_TIMEOUT_DEFAULT + fargate.DEPROVISIONING_TYPICAL_MAX + 30,
    )
    described = cluster_tasks(ecs, name)
    assert len(described) == 2

    # Its tasks' own times, as DescribeTasks reports them, give its runtime and cost.
    row = cost_row(name)
    assert row["status"] == "stopped"
    assert row["cost"] == pytest.approx(expected_cost(described), rel=0.01)
    assert row["task_hours"] == pytest.approx(
        sum(max(60, (t["stoppedAt"] - t["pullStartedAt"]).total_seconds()) for t in described)
        / 3600,
        rel=0.01,
    )
    stopped_at = max(t["stoppedAt"] for t in described)
    started_at = datetime.datetime.fromisoformat(row["started_at"])
    assert datetime.datetime.fromisoformat(row["stopped_at"]) == stopped_at
    assert row["runtime_seconds"] == pytest.approx((stopped_at - started_at).total_seconds())
    first = min(t["createdAt"] for t in described)
    assert 0 <= (first - started_at).total_seconds() < 60  # recorded just before its tasks
    # A local Fargate's cost is AWS's prices applied, not a bill: said so.
    assert row["simulated"] is True and row["note"].startswith("simulated: AWS's prices")
    text = CliRunner().invoke(cli, ["cost"]).output
    [line] = [line for line in text.splitlines() if name in line]
    assert format_usd(row["cost"]) in line and "stopped (simulated)" in line
    assert "(simulated) simulated: AWS's prices applied" in text
