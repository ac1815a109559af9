"""The command's failures: one ``Error:`` line and exit code 1, the traceback on --debug."""

from __future__ import annotations

import os
import subprocess
import sys

import click
import pytest
from botocore.exceptions import ClientError, NoRegionError
from click.testing import CliRunner

from starburst_dask.cli.errors import ReportingGroup, describe
from starburst_dask.errors import ConfigurationError


def _failing(error: Exception) -> click.Group:
    @click.group(cls=ReportingGroup)
    @click.option("--debug", is_flag=True)
    def main(debug: bool) -> None:
        pass

    @main.command()
    def fail() -> None:
        raise error

    return main


@pytest.mark.parametrize(
    "error, line",
    [
        (ConfigurationError("subnet 'x' does not exist: fix it"), "subnet 'x' does not exist"),
        (
            ClientError(
                {"Error": {"Code": "AccessDeniedException", "Message": "not allowed"}}, "RunTask"
            ),
            "(AccessDeniedException) when calling the RunTask operation: not allowed",
        ),
        (NoRegionError(), "You must specify a region.: pass --region"),
        (OSError(98, "Address already in use"), "[Errno 98] Address already in use"),
        (KeyError("oops"), "KeyError: 'oops' (run with --debug for the traceback)"),
    ],
)
def test_an_error_is_one_line_and_exit_code_1(error, line):
    result = CliRunner().invoke(_failing(error), ["fail"])
    assert result.exit_code == 1
    assert result.output.count("\n") == 1, result.output
    assert result.output.startswith("Error: ") and line in result.output
    assert "Traceback" not in result.output


def test_debug_shows_the_traceback():
    result = CliRunner().invoke(_failing(KeyError("oops")), ["--debug", "fail"])
    assert isinstance(result.exception, KeyError)  # raised, so Python prints the traceback


def test_a_yaml_error_is_said_on_one_line():
    import yaml

    try:
        yaml.safe_load("region: [unclosed\n")
    except yaml.YAMLError as e:
        said = describe(e)
    assert "\n" not in said and "line 1, column 9" in said


def test_a_malformed_dask_config_file_is_named_without_a_traceback(tmp_path):
    (tmp_path / "broken.yaml").write_text("starburst:\n  region: [unclosed\n")
    run = subprocess.run(
        [sys.executable, "-c", "from starburst_dask.cli import main; main()", "doctor"],
        env={**os.environ, "DASK_CONFIG": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 1
    assert run.stderr.startswith("Error: A dask config file at ")
    assert "broken.yaml" in run.stderr and "malformed" in run.stderr
    assert "Traceback" not in run.stderr and run.stderr.count("\n") == 1
