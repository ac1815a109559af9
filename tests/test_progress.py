"""Status lines, quiet=, the launch progress bar and the widget, on a real small cluster."""

import logging

import boto3
import pytest
from distributed import Client
from helpers import wait_until

from starburst_dask import FargateCluster

SMALL = {"n_workers": 2, "worker_cpu": 1024, "worker_memory": 2048, "poll_interval": 0.5}
STATUS = "starburst_dask.cluster"


@pytest.fixture
def info(caplog):
    caplog.set_level(logging.INFO, logger="starburst_dask")
    return caplog


def running_workers(ecs, cluster):
    arns = ecs.list_tasks(cluster="starburst-dask", startedBy=cluster.options.name)["taskArns"]
    tasks = ecs.describe_tasks(cluster="starburst-dask", tasks=arns, include=["TAGS"])["tasks"]
    return [
        t
        for t in tasks
        if t["lastStatus"] == "RUNNING"
        and {"key": "starburst-dask:role", "value": "worker"} in t["tags"]
    ]


def test_status_lines_are_log_records_and_no_bar_without_a_terminal(local_fargate, info, capsys):
    with FargateCluster(**SMALL) as cluster, Client(cluster) as client:
        client.wait_for_workers(2, timeout=120)
        name = cluster.options.name
    status = [r for r in info.records if r.name == STATUS]
    assert all(r.levelno == logging.INFO for r in status)
    lines = [r.getMessage() for r in status]
    assert any(line.startswith(f"Launching {name}: ") for line in lines)
    assert any(line.startswith(f"Closed {name}: ") for line in lines)
    # The same lines kept in the cluster's logs, once each.
    assert lines == [line for _, line in cluster._cluster_manager_logs]
    out, err = capsys.readouterr()
    assert out == ""  # nothing printed to stdout
    assert "connected |" not in err  # stderr is no terminal here: no bar


def test_quiet_emits_no_status_line_and_no_bar(local_fargate, info, capsys):
    with FargateCluster(quiet=True, progress=True, **SMALL) as cluster:
        assert cluster.quiet is True
        assert cluster.quota.running == 2
    assert not [r for r in info.records if r.name == STATUS]
    assert capsys.readouterr() == ("", "")
    # Kept for cluster.get_logs() all the same.
    assert any(line.startswith("Closed ") for _, line in cluster._cluster_manager_logs)


def test_progress_bar_counts_until_every_worker_is_connected(local_fargate, capsys):
    ecs = boto3.client("ecs")
    with FargateCluster(progress=True, **SMALL) as cluster, Client(cluster) as client:
        client.wait_for_workers(2, timeout=120)
        wait_until(lambda: cluster.progress.counts().settled, timeout=60)
        workers = running_workers(ecs, cluster)
        html = cluster._repr_html_()
    frames = [f.strip() for f in capsys.readouterr().err.replace("\n", "\r").split("\r") if f]
    bars = [f for f in frames if " connected |" in f]
    name = cluster.options.name
    assert bars[0].startswith(f"{name}: 0/2 connected |")
    assert "scheduler " in bars[0]  # the scheduler's status first, until it runs
    final = bars[-1]
    assert final.startswith(f"{name}: 2/2 connected |")
    assert "requested 2, provisioning 0, running 2, waiting for quota 0" in final
    assert len(workers) == 2  # as ECS reports them
    # The widget: the quota, its usage, the workers by capacity provider, the cost.
    assert "<strong>Quota:</strong>" in html and "On-Demand" in html
    assert "2 requested, 2 running (2 On-Demand), 0 waiting for quota" in html
    assert "<strong>Cost:</strong>" in html
