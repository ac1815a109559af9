"""Clusters whose client died, brought up to date in the ledger from their tasks' own
times; costs on an endpoint that is not AWS's labelled simulated."""

import datetime

import pytest

from starburst_dask import fargate
from starburst_dask.aws.names import aws_endpoint
from starburst_dask.cost.ledger import Ledger, report, summary
from starburst_dask.cost.prices import Prices
from starburst_dask.cost.reconcile import from_tasks, reconcile

UTC = datetime.timezone.utc
T0 = datetime.datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
RATES = fargate.PUBLISHED_PRICES["us-east-1"]
SMALL_RATE = 0.25 * RATES["X86_64-vCPU"] + 0.5 * RATES["X86_64-GB"]
LOCAL = "http://127.0.0.1:5000"


def at(seconds):
    return T0 + datetime.timedelta(seconds=seconds)


def task(arn, cluster, created, stopped=None):
    """One of the project's tasks as DescribeTasks gives it with its tags (its image pull
    starts a second after it is created)."""
    described = {
        "taskArn": arn,
        "cpu": "256",
        "memory": "512",
        "lastStatus": "STOPPED" if stopped is not None else "RUNNING",
        "createdAt": at(created),
        "pullStartedAt": at(created + 1),
        "tags": [
            {"key": "starburst-dask:cluster", "value": cluster},
            {"key": "starburst-dask:role", "value": "worker"},
        ],
    }
    return {**described, "stoppedAt": at(stopped)} if stopped is not None else described


@pytest.fixture
def ledger(tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", LOCAL)
    return Ledger(tmp_path / "ledger.sqlite3")


def rates():
    return Prices("us-east-1", dict(RATES), 0.5, "AWS Price List API")


def test_a_dead_clients_cluster_is_billed_from_its_tasks_and_stopped_at_the_last(ledger):
    dead = ledger.open_cluster("dead", "us-east-1", 0.1, "AWS Price List API", at(0))
    found = [task("arn:s", "dead", 2, stopped=603), task("arn:w", "dead", 3, stopped=1204)]
    assert reconcile(found, rates(), ledger, now=at(2000)) == ["dead"]
    [row] = ledger.recent()
    assert row.id == dead and row.status == "stopped" and row.stopped_at == at(1204)
    assert row.cost == pytest.approx(SMALL_RATE * (600 + 1200) / 3600)
    assert row.task_hours == pytest.approx((600 + 1200) / 3600)
    assert row.runtime == datetime.timedelta(seconds=1204)
    assert {t["arn"] for t in row.tasks} == {"arn:s", "arn:w"}


def test_a_cluster_with_a_task_still_running_stays_running_at_its_cost_so_far(ledger):
    ledger.open_cluster("alive", "us-east-1", 0.1, "test", at(0))
    found = [task("arn:s", "alive", 2), task("arn:w", "alive", 3, stopped=33)]
    reconcile(found, rates(), ledger, now=at(303))
    [row] = ledger.recent()
    assert (row.status, row.stopped_at) == ("running", None)
    assert row.cost == pytest.approx(SMALL_RATE * (300 + 60) / 3600)  # 60: the minimum


def test_only_the_rows_tasks_of_this_region_and_endpoint_count(ledger, monkeypatch):
    first = ledger.open_cluster("again", "us-east-1", 0.1, "test", at(0))
    second = ledger.open_cluster("again", "us-east-1", 0.1, "test", at(1000))
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:6000")
    other = ledger.open_cluster("again", "us-east-1", 0.1, "test", at(0))
    monkeypatch.setenv("AWS_ENDPOINT_URL", LOCAL)
    old_task = {"arn": "arn:gone", "billed_seconds": 60.0, "cost": 0.5}  # ECS forgot it
    ledger.update_cluster(
        first, cost=0.5, task_hours=1 / 60, status="running", stopped_at=None, tasks=[old_task]
    )
    found = [task("arn:1", "again", 10, stopped=70), task("arn:2", "again", 1010, stopped=1131)]
    reconcile(found, rates(), ledger, now=at(2000))
    rows = {r.id: r for r in ledger.recent()}
    assert rows[first].cost == pytest.approx(0.5 + SMALL_RATE * 60 / 3600)
    assert rows[first].stopped_at == at(70)
    assert rows[second].cost == pytest.approx(SMALL_RATE * 120 / 3600)
    assert rows[other].status == "running" and rows[other].cost == 0  # another endpoint's


def test_nothing_running_here_is_no_work(ledger):
    ledger.open_cluster("closed", "us-east-1", 0.1, "test", at(0))
    ledger.update_cluster(1, cost=1.0, task_hours=1, status="closed", stopped_at=at(9), tasks=[])
    # No running row: the region's prices are not even loaded.
    assert from_tasks([task("arn:x", "closed", 1, stopped=2)], "us-east-1", ledger) is None
    assert ledger.recent()[0].cost == 1.0


def test_simulated_costs_say_so_in_text_and_json(ledger):
    ledger.open_cluster("local-run", "us-east-1", 0.1, "AWS Price List API", at(0))
    [row] = summary(ledger=ledger, now=at(10))["clusters"]
    assert (row["simulated"], row["endpoint"]) == (True, LOCAL)
    assert row["note"].startswith("simulated: AWS's prices applied")
    text = report(ledger=ledger, now=at(10))
    assert "running (simulated)" in text and "AWS bills nothing for them" in text


@pytest.mark.parametrize(
    ("url", "aws"),
    [
        (None, True),
        ("https://ecs.us-east-1.amazonaws.com", True),
        ("https://ecs-fips.us-gov-west-1.amazonaws.com", True),
        ("https://ecs.cn-north-1.amazonaws.com.cn", True),
        ("https://ecs.us-east-1.api.aws", True),
        ("http://127.0.0.1:5000", False),
        ("http://localhost:4566", False),
        ("https://amazonaws.com.example.org", False),
    ],
)
def test_which_endpoints_are_aws(url, aws):
    assert aws_endpoint(url) is aws


def test_cost_reports_the_ledger_when_ecs_cannot_be_reached(tmp_path, monkeypatch):
    import json

    from click.testing import CliRunner

    from starburst_dask.cli import main

    monkeypatch.setenv("STARBURST_DASK_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("STARBURST_DASK_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    Ledger().open_cluster("left", "us-east-1", 0.1, "test", at(0))
    result = CliRunner().invoke(main, ["cost", "--json"])
    assert result.exit_code == 0, result.output
    [row] = json.loads(result.stdout)["clusters"]
    assert (row["name"], row["status"]) == ("left", "running")  # as recorded
    assert result.stderr.startswith("Warning: the cost ledger could not be brought up to date")
    assert "Traceback" not in result.stderr
