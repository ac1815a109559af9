"""The live-AWS suite: setup, doctor, a cluster computing from outside the VPC, cleanup,
teardown, on a real AWS account.

Run by maintainers with credentials: ``STARBURST_DASK_LIVE_AWS=1 pytest -m aws`` (see
``docs/live-aws.md``). Skipped otherwise, saying why. Its cost is printed first.
"""

import json
import os
import urllib.request

import botocore.session
import dask.config
import pytest

from starburst_dask import fargate

pytestmark = pytest.mark.aws

#: The cluster the suite starts: a scheduler and two workers of the default sizes.
WORKERS = 2
#: Upper bound of the suite's task time (minutes): setup to teardown.
MINUTES = 15


def _why_skip() -> str | None:
    if os.environ.get("STARBURST_DASK_LIVE_AWS") != "1":
        return (
            "live AWS suite: set STARBURST_DASK_LIVE_AWS=1 (it creates resources and costs money)"
        )
    if os.environ.get("AWS_ENDPOINT_URL"):
        return "live AWS suite: AWS_ENDPOINT_URL is set, so this would not be AWS"
    if botocore.session.get_session().get_credentials() is None:
        return "live AWS suite: no AWS credentials found"
    return None


if (_reason := _why_skip()) is not None:
    pytest.skip(_reason, allow_module_level=True)

from click.testing import CliRunner  # noqa: E402  (only when the suite runs)
from distributed import Client  # noqa: E402

from starburst_dask import FargateCluster  # noqa: E402
from starburst_dask.cli import main  # noqa: E402


def expected_cost() -> float:
    """The suite's most expensive case: every task running for :data:`MINUTES`."""
    prices = fargate.PUBLISHED_PRICES["us-east-1"]
    vcpu = 1 + WORKERS  # 1024 CPU units each
    gib = 2 + 4 * WORKERS
    return (vcpu * prices["X86_64-vCPU"] + gib * prices["X86_64-GB"]) * MINUTES / 60


def caller_cidr() -> str:
    """This machine's public address as AWS sees it (checkip), as a /32."""
    if cidr := os.environ.get("STARBURST_DASK_LIVE_ALLOW_CIDR"):
        return cidr
    with urllib.request.urlopen("https://checkip.amazonaws.com", timeout=10) as answer:
        return answer.read().decode().strip() + "/32"


@pytest.fixture(scope="module")
def account(tmp_path_factory):
    """setup on the account (its config in a directory of our own), teardown after."""
    print(f"\nlive AWS suite: expected cost under ${expected_cost():.2f}")
    directory = tmp_path_factory.mktemp("dask-config")
    saved = os.environ.get("DASK_CONFIG")
    os.environ["DASK_CONFIG"] = str(directory)
    dask.config.paths.append(str(directory))
    runner = CliRunner()
    try:
        result = runner.invoke(main, ["setup", "--allow-cidr", caller_cidr(), "--json"])
        assert result.exit_code == 0, result.output
        dask.config.refresh()
        yield runner
    finally:
        result = runner.invoke(main, ["teardown", "--yes"])
        print(result.output)
        dask.config.paths.remove(str(directory))
        if saved is None:
            os.environ.pop("DASK_CONFIG", None)
        else:
            os.environ["DASK_CONFIG"] = saved
        dask.config.refresh()


def test_setup_is_idempotent_and_doctor_passes(account):
    again = account.invoke(main, ["setup", "--json"])
    assert again.exit_code == 0, again.output
    doctor = account.invoke(main, ["doctor", "--json"])
    assert doctor.exit_code == 0, doctor.output


def test_cluster_from_outside_the_vpc_computes_and_leaves_nothing(account):
    import dask.dataframe as dd
    import pandas as pd

    frame = pd.DataFrame({"key": [i % 7 for i in range(10_000)], "value": range(10_000)})
    expected = frame.groupby("key")["value"].sum()
    with FargateCluster(n_workers=WORKERS) as cluster, Client(cluster) as client:
        client.wait_for_workers(WORKERS, timeout=600)
        result = dd.from_pandas(frame, npartitions=8).groupby("key")["value"].sum()
        pd.testing.assert_series_equal(result.compute().sort_index(), expected)
        name = cluster.name
    listing = account.invoke(main, ["ls", "--json"])
    assert listing.exit_code == 0, listing.output
    assert name not in {c["name"] for c in json.loads(listing.output or "[]")}
    cleanup = account.invoke(main, ["cleanup", "--older-than", "0s", "--yes"])
    assert cleanup.exit_code == 0, cleanup.output
