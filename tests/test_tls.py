"""TLS by default, on the local Fargate: mutual TLS with each cluster's own certificates.

Only the cluster's client gets in; the tasks' key reaches them through a per-cluster
Secrets Manager secret, never through anything the ECS API or the logs show; what a
cluster created for it is gone once it closes, or once cleanup finds its client died.
"""

import asyncio
import http.client
import json
import os
import signal
import ssl
import subprocess
import sys
import textwrap
import urllib.error
import urllib.request

import boto3
import pytest
from click.testing import CliRunner
from distributed import Client
from distributed.comm import connect
from distributed.security import Security
from helpers import wait_until

from starburst_dask import FargateCluster
from starburst_dask.cli import main
from starburst_dask.errors import ConfigurationError

FAST = {"poll_interval": 0.5}
#: What every PEM private key's text begins with (PKCS#8, EC or RSA).
KEY_MARKER = "PRIVATE KEY-----"


@pytest.fixture(scope="module")
def cluster(local_fargate):
    with FargateCluster(n_workers=1, name="tls-default", **FAST) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def client(cluster):
    with Client(cluster) as client:
        client.wait_for_workers(1, timeout=120)
        yield client


def refused(address, security=None, **args):
    """Why connecting to ``address`` (and asking its identity) failed; None if it worked."""

    async def attempt():
        extra = security.get_connection_args("client") if security else {}
        comm = await connect(address, timeout=5, **{**extra, **args})
        try:
            await comm.write({"op": "identity"})
            await comm.read()
        finally:
            await comm.close()

    try:
        asyncio.run(attempt())
    except OSError as e:  # distributed's CommClosedError and timeouts are OSErrors
        return f"{type(e).__name__}: {e}"
    return None


def as_tcp(address):
    return "tcp://" + address.split("://", 1)[1]


def test_the_scheduler_speaks_tls_and_only_to_the_clusters_client(cluster, client):
    assert cluster.scheduler_address.startswith("tls://")
    assert client.scheduler_info()["address"].startswith("tls://")
    assert client.submit(sum, [1, 2, 3]).result() == 6
    # The same address: reachable, but not without the cluster's certificates. Each
    # refusal comes from the scheduler's side of a connection made, not a timeout.
    assert refused(cluster.scheduler_address, cluster.security) is None
    assert "CommClosedError" in refused(as_tcp(cluster.scheduler_address), require_encryption=False)
    assert "CommClosedError" in refused(cluster.scheduler_address, Security.temporary())
    # Knowing the cluster's CA certificate (not secret) is not enough: a client
    # certificate the cluster's CA did not sign is refused.
    assert "CommClosedError" in refused(cluster.scheduler_address, forged(cluster.security))


def forged(security):
    """A client trusting ``security``'s CA, with a certificate another CA signed."""
    other = Security.temporary()
    return Security(
        require_encryption=True,
        tls_ca_file=security.tls_ca_file,
        tls_client_cert=other.tls_client_cert,
        tls_client_key=other.tls_client_key,
    )


def _probe(worker, other_ca):
    """On the scheduler (in the VPC, which reaches the workers): connect to ``worker``
    with plain TCP, and with TLS and a CA that is not the cluster's."""

    async def attempt(address, **args):
        from distributed.comm import connect

        try:
            comm = await connect(address, timeout=5, **args)
            await comm.write({"op": "identity"})
            await comm.read()
            await comm.close()
        except OSError as e:
            return f"{type(e).__name__}: {e}"
        return None

    async def probe(dask_scheduler):
        from distributed.security import Security

        tcp = "tcp://" + worker.split("://", 1)[1]
        ours = dask_scheduler.security
        own = ours.get_connection_args("scheduler")
        other = Security(**other_ca).get_connection_args("client")
        forged = Security(**{**other_ca, "tls_ca_file": ours.tls_ca_file})
        return {
            "own": await attempt(worker, **own),
            "tcp": await attempt(tcp, require_encryption=False),
            "other CA": await attempt(worker, **other),
            "forged": await attempt(worker, **forged.get_connection_args("client")),
        }

    return probe


def test_a_worker_refuses_plain_tcp_and_another_ca(client):
    [worker] = client.scheduler_info()["workers"]
    assert worker.startswith("tls://")
    other = Security.temporary()  # a throwaway CA's, as PEM text
    other_ca = {
        "require_encryption": True,
        "tls_ca_file": other.tls_ca_file,
        "tls_client_cert": other.tls_client_cert,
        "tls_client_key": other.tls_client_key,
    }
    results = client.run_on_scheduler(_probe(worker, other_ca))
    assert results["own"] is None  # reachable with the cluster's certificate
    for attempt in ("tcp", "other CA", "forged"):  # refused on a connection made
        assert "CommClosedError" in results[attempt], results


def test_the_dashboard_answers_over_https_only(cluster, client):
    link = cluster.dashboard_link
    assert link.startswith("https://")
    context = ssl.create_default_context(cadata=json.loads(_secret_text(cluster))["ca"])
    context.check_hostname = False  # an IP address; the cluster's CA is what is checked
    with urllib.request.urlopen(link.replace("/status", "/health"), context=context) as r:
        assert r.status == 200 and r.read() == b"ok"
    with pytest.raises((urllib.error.URLError, ConnectionError, http.client.HTTPException)):
        urllib.request.urlopen(link.replace("https://", "http://", 1), timeout=10)

    # Its certificate and key, written for it from the task's environment: private.
    def modes():  # nested: sent by value, the scheduler cannot import this module
        import os
        import stat

        prefix = "DASK_DISTRIBUTED__SCHEDULER__DASHBOARD__TLS__"
        paths = [os.environ[prefix + part] for part in ("CERT", "KEY")]
        paths.append(os.path.dirname(paths[0]))
        return [stat.S_IMODE(os.stat(path).st_mode) for path in paths]

    assert client.run_on_scheduler(modes) == [0o600, 0o600, 0o700]


def test_a_workers_http_server_answers_over_https_only(cluster, client):
    """Reached from inside the VPC (the scheduler): the security group admits only the
    cluster's tasks to a worker's ports."""
    [worker] = client.scheduler_info()["workers"].values()
    host, port = worker["host"], worker["services"]["dashboard"]
    ca = json.loads(_secret_text(cluster))["ca"]

    def fetch(url, ca):  # nested: sent by value, the scheduler cannot import this module
        import ssl
        import urllib.request

        context = ssl.create_default_context(cadata=ca)
        context.check_hostname = False
        try:
            with urllib.request.urlopen(url, context=context, timeout=10) as r:
                return r.status, r.read()
        except Exception as e:  # noqa: BLE001 - what failed is the answer
            return type(e).__name__, None

    assert port == 8790
    assert client.run_on_scheduler(fetch, f"https://{host}:{port}/health", ca) == (200, b"ok")
    refused = client.run_on_scheduler(fetch, f"http://{host}:{port}/health", ca)
    assert refused[0] != 200, refused


def _secret_text(cluster):
    """The tasks' secret, read as the execution role reads it at task start."""
    secrets = boto3.client("secretsmanager")
    return secrets.get_secret_value(SecretId=cluster.tls.secret_arn)["SecretString"]


def test_no_private_key_in_what_ecs_shows_or_the_logs(local_fargate, cluster, client):
    assert client.submit(lambda: 1).result() == 1
    keys = json.loads(_secret_text(cluster))["key"], cluster.security.tls_client_key
    exchanges = local_fargate.recorded()
    operations = {e.operation for e in exchanges}
    assert {"RegisterTaskDefinition", "RunTask", "DescribeTasks"} <= operations
    for exchange in exchanges:
        for text in (exchange.request, exchange.answer):
            assert KEY_MARKER not in text, exchange.operation
            assert not any(_body(k) in text.replace("\\n", "\n") for k in keys)
    events = local_fargate.log_events()
    assert events and not any(KEY_MARKER in e for e in events)
    # The task definition references the secret: ECS reads it, the API never shows it.
    definition = boto3.client("ecs").describe_task_definition(
        taskDefinition=cluster.registry.definition
    )["taskDefinition"]
    [container] = definition["containerDefinitions"]
    assert {s["valueFrom"].rsplit(":", 3)[0] for s in container["secrets"]} == {
        cluster.tls.secret_arn
    }


def _body(pem):
    """A PEM's base64 lines: the key itself, however it is wrapped."""
    return "\n".join(pem.strip().splitlines()[1:-1])


def test_close_deletes_the_secret_and_retires_the_task_definition(local_fargate):
    secrets, ecs = boto3.client("secretsmanager"), boto3.client("ecs")
    with FargateCluster(n_workers=0, name="tls-closing", **FAST) as cluster:
        secret, definition = cluster.tls.secret_arn, cluster.registry.definition
        assert secrets.describe_secret(SecretId=secret)["Name"] == "starburst-dask/tls-closing/tls"
        tags = {t["Key"]: t["Value"] for t in secrets.describe_secret(SecretId=secret)["Tags"]}
        assert tags["starburst-dask:cluster"] == "tls-closing"
    with pytest.raises(secrets.exceptions.ResourceNotFoundException):
        secrets.describe_secret(SecretId=secret)
    try:
        status = ecs.describe_task_definition(taskDefinition=definition)["taskDefinition"]
        assert status["status"] in ("INACTIVE", "DELETE_IN_PROGRESS")
    except ecs.exceptions.ClientException as e:  # deleted for good
        assert "Unable to describe task definition" in str(e)
    listed = ecs.list_task_definitions(familyPrefix="starburst-dask")["taskDefinitionArns"]
    assert definition not in listed


def test_security_false_runs_plain_tcp_and_says_so_once(local_fargate):
    with pytest.warns(UserWarning, match="security=False") as warned:
        cluster = FargateCluster(n_workers=1, security=False, name="plain", **FAST)
    with cluster, Client(cluster) as client:
        assert cluster.scheduler_address.startswith("tcp://")
        assert cluster.dashboard_link.startswith("http://")
        assert client.submit(sum, [1, 2]).result() == 3
        assert cluster.tls is None
        definition = boto3.client("ecs").describe_task_definition(
            taskDefinition=cluster.registry.definition
        )["taskDefinition"]
        assert "secrets" not in definition["containerDefinitions"][0]
    assert len([w for w in warned if "security=False" in str(w.message)]) == 1


@pytest.mark.parametrize("value", [Security.temporary(), "yes", 1])
def test_a_security_of_another_type_is_refused(local_fargate, value):
    secrets = boto3.client("secretsmanager")
    before = secrets.list_secrets()["SecretList"], local_fargate.calls["RunTask"]
    with pytest.raises(ConfigurationError, match="security must be True or False"):
        FargateCluster(n_workers=0, security=value)
    # Nothing was created.
    assert (secrets.list_secrets()["SecretList"], local_fargate.calls["RunTask"]) == before


#: A client that starts a TLS cluster and is killed without closing it.
DYING_CLIENT = textwrap.dedent(
    """
    import sys
    from starburst_dask import FargateCluster
    cluster = FargateCluster(n_workers=0, name="tls-dead-client", poll_interval=0.5)
    print("LEFT", cluster.tls.secret_arn, cluster.registry.definition, flush=True)
    sys.stdin.read()
    """
)


def test_cleanup_removes_the_secret_of_a_cluster_whose_client_died(local_fargate):
    secrets, ecs = boto3.client("secretsmanager"), boto3.client("ecs")
    client = subprocess.Popen(
        [sys.executable, "-c", DYING_CLIENT],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env={**os.environ, **local_fargate.env},
        text=True,
    )
    try:
        line = ""
        while not line.startswith("LEFT "):  # after the cluster's own lines
            line = client.stdout.readline()
            assert line, "the client exited before its cluster started"
        secret, definition = line.split()[1:]
    finally:
        client.send_signal(signal.SIGKILL)
        client.wait()
        client.stdout.close()
        client.stdin.close()
    assert secrets.describe_secret(SecretId=secret)  # left behind
    runner = CliRunner()
    dry = runner.invoke(main, ["cleanup", "--cluster", "tls-dead-client"])
    assert dry.exit_code == 0, dry.output
    assert "starburst-dask/tls-dead-client/tls" in dry.output and "Dry run" in dry.output
    assert secrets.describe_secret(SecretId=secret)  # a dry run removes nothing
    done = runner.invoke(main, ["cleanup", "--cluster", "tls-dead-client", "--yes"])
    assert done.exit_code == 0, done.output
    assert "removed 2 left behind" in done.output
    with pytest.raises(secrets.exceptions.ResourceNotFoundException):
        secrets.describe_secret(SecretId=secret)
    assert definition not in ecs.list_task_definitions()["taskDefinitionArns"]
    wait_until(
        lambda: (
            not ecs.list_tasks(cluster="starburst-dask", startedBy="tls-dead-client")["taskArns"]
        ),
        timeout=60,
    )


def test_a_second_cluster_of_the_same_name_is_refused_and_takes_nothing(cluster, client):
    before = _secret_text(cluster)
    with pytest.raises(ConfigurationError, match="the secret starburst-dask/tls-default/tls"):
        FargateCluster(n_workers=0, name="tls-default", **FAST)
    assert _secret_text(cluster) == before  # the running cluster's, untouched
    assert client.submit(sum, [2, 2]).result() == 4


def test_an_execution_role_that_may_not_read_the_secret_is_refused_before_any_task(
    local_fargate,
):
    from starburst_dask.admin import roles

    iam, secrets = boto3.client("iam"), boto3.client("secretsmanager")
    role = "starburst-dask-execution"
    allowed = iam.get_role_policy(RoleName=role, PolicyName=roles.SECRETS_POLICY)
    iam.delete_role_policy(RoleName=role, PolicyName=roles.SECRETS_POLICY)
    launched = local_fargate.calls["RunTask"]
    try:
        with pytest.raises(ConfigurationError, match="Run `starburst-dask setup` again"):
            FargateCluster(n_workers=0, name="tls-unreadable", **FAST)
    finally:
        iam.put_role_policy(
            RoleName=role,
            PolicyName=roles.SECRETS_POLICY,
            PolicyDocument=json.dumps(allowed["PolicyDocument"]),
        )
    assert local_fargate.calls["RunTask"] == launched
    names = [s["Name"] for s in secrets.list_secrets()["SecretList"]]
    assert "starburst-dask/tls-unreadable/tls" not in names  # deleted again
