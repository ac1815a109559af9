"""``starburst-dask local``: a local Fargate from the command line."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys

import boto3
from click.testing import CliRunner

from starburst_dask.cli import main


def test_local_serves_with_the_quota_and_latencies_given_and_says_how_to_stop_it():
    command = "from starburst_dask.cli import main; main()"
    # --latency aws over the test session's configured fast profile.
    server = subprocess.Popen(
        [
            sys.executable,
            "-c",
            command,
            "local",
            "--port",
            "0",
            "--quota",
            "12",
            "--latency",
            "aws",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        header = server.stdout.readline()
        assert "Fargate quota 12 vCPU, aws task latencies" in header, header
        env = {}
        while not (line := server.stdout.readline()).startswith("# Stop"):
            name, value = line.removeprefix("export ").strip().split("=", 1)
            env[name] = value.strip("'")
        assert f"kill {server.pid}" in line
        quotas = boto3.client(
            "service-quotas",
            endpoint_url=env["AWS_ENDPOINT_URL"],
            region_name=env["AWS_DEFAULT_REGION"],
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        )
        quota = quotas.get_service_quota(ServiceCode="fargate", QuotaCode="L-3032A538")
        assert quota["Quota"]["Value"] == 12
    finally:
        os.kill(server.pid, signal.SIGTERM)
        server.communicate(timeout=60)
    assert server.returncode == 0


def test_local_on_a_port_in_use_is_one_clear_error():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(main, ["local", "--port", str(port)])
    assert result.exit_code == 1
    assert result.output.startswith(f"Error: cannot serve on 127.0.0.1:{port} (")
    assert "pass another --port" in result.output and "Traceback" not in result.output


def test_local_refuses_a_port_out_of_range():
    result = CliRunner().invoke(main, ["local", "--port", "70000"])
    assert result.exit_code == 2 and "70000 is not in the range 0<=x<=65535" in result.output
