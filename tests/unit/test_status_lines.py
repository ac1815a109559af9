"""Status lines through logging, the launch counts, and the widget's rows."""

import logging
import math

import click
import pytest
from click.testing import CliRunner

from starburst_dask import status
from starburst_dask.cli import main
from starburst_dask.cluster import widget
from starburst_dask.cluster.progress import LaunchCounts
from starburst_dask.ecs.quota import QuotaStatus


def test_without_logging_configured_status_lines_go_to_stderr_once(monkeypatch, capsys):
    status.show()
    status.show()  # idempotent: one handler
    monkeypatch.setattr(logging.getLogger(), "handlers", [])  # an unconfigured application
    status.cluster.info("Launching x")
    assert capsys.readouterr() == ("", "Launching x\n")


def test_the_fallback_steps_aside_when_the_application_logs(monkeypatch, capsys):
    status.show()
    shown = []
    handler = logging.Handler()
    handler.emit = lambda record: shown.append(record.getMessage())
    monkeypatch.setattr(logging.getLogger(), "handlers", [handler])
    status.cluster.info("Launching y")
    assert shown == ["Launching y"]
    assert capsys.readouterr() == ("", "")


def test_the_command_shows_status_lines_on_stderr_and_data_on_stdout():
    @click.command("say")
    def say():
        status.cluster.info("a status line")
        click.echo('{"data": 1}')

    main.add_command(say)
    try:
        result = CliRunner().invoke(main, ["say"])
    finally:
        main.commands.pop("say")
    assert result.exit_code == 0
    assert (result.stdout, result.stderr) == ('{"data": 1}\n', "a status line\n")
    assert not [
        h for h in logging.getLogger("starburst_dask").handlers if type(h) is status.StderrHandler
    ]


@pytest.mark.parametrize(
    "counts, settled",
    [
        (LaunchCounts(4, scheduler="PENDING"), False),
        (LaunchCounts(4, provisioning=2, running=2, connected=2), False),
        (LaunchCounts(4, waiting=2, running=2, connected=2), True),
        (LaunchCounts(4, running=4, connected=4), True),
        (LaunchCounts(2, running=4, connected=4), True),  # scaled down
    ],
)
def test_the_bar_closes_once_every_worker_is_connected_or_waits_for_quota(counts, settled):
    assert counts.settled is settled


def test_the_counts_in_words():
    counts = LaunchCounts(8, waiting=4, provisioning=1, running=3, connected=2, quota=9, usage=9)
    assert counts.postfix() == (
        "requested 8, provisioning 1, running 3, waiting for quota 4, quota 9 vCPU (9 in use)"
    )
    assert LaunchCounts(2, scheduler="starting").postfix().startswith("scheduler starting, ")
    assert "quota" not in LaunchCounts(2, quota=math.inf).postfix().replace("for quota", "")


def test_widget_rows_show_quota_usage_waiting_workers_and_providers():
    quota = QuotaStatus("FARGATE_SPOT", quota=16, usage=12.5, running=5, waiting=3)
    quota.providers = {"FARGATE_SPOT": 3, "FARGATE": 2}
    html = widget.rows(quota, 8, None)
    assert "<strong>Quota:</strong> 16 vCPU Spot, 12.5 in use" in html
    assert "8 requested, 5 running (3 on Spot, 2 On-Demand), 3 waiting for quota" in html
    unknown = widget.rows(QuotaStatus("FARGATE"), 1, None)
    assert "unknown On-Demand" in unknown and "0 waiting for quota" in unknown
