"""A cluster's certificates, and how cleanup recognizes what a cluster left behind."""

import datetime
import json

import pytest
from cryptography import x509

from starburst_dask.admin import leftovers
from starburst_dask.cluster import security, tls

ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:starburst-dask/c-1/tls-AbCdEf"


def load(pem):
    return x509.load_pem_x509_certificate(pem.encode())


@pytest.mark.parametrize(
    "lifetime, at_least",
    [(3600.0, datetime.timedelta(hours=1)), (None, security.UNLIMITED_VALIDITY)],
)
def test_both_certificates_are_signed_by_the_clusters_ca_for_its_lifetime(lifetime, at_least):
    now = datetime.datetime.now(datetime.timezone.utc)
    made = security.make("c-1", lifetime)
    ca = load(made.ca)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    for pem in (made.task_cert, made.client_cert):
        cert = load(pem)
        cert.verify_directly_issued_by(ca)
        assert cert.not_valid_before_utc <= now  # usable at once, despite clock skew
        assert cert.not_valid_after_utc >= now + at_least
    assert load(security.make("c-1", lifetime).ca) != ca  # a new CA every time


def test_the_tasks_secret_holds_the_tasks_key_only_and_nothing_prints_a_key():
    made = security.make("c-1", 60)
    secret = json.loads(made.secret_string())
    assert secret == {"ca": made.ca, "cert": made.task_cert, "key": made.task_key}
    assert made.client_key not in made.secret_string()
    assert "PRIVATE KEY" not in repr(made)
    client = made.security()
    assert client.require_encryption
    assert client.tls_client_key == made.client_key  # PEM text, in memory: no file
    assert client.tls_scheduler_key is None and client.tls_worker_key is None


def test_every_task_setting_comes_from_a_key_of_the_secret():
    assert set(security.TASK_SECRETS.values()) <= set(security.SECRET_KEYS)
    assert {n.rsplit("__", 1)[1] for n in security.TASK_SECRETS} == {"CA_FILE", "CERT", "KEY"}


def test_secret_names_and_the_revisions_that_reference_them_name_their_cluster():
    assert tls.secret_name("c-1") == "starburst-dask/c-1/tls"
    assert tls.secret_cluster("starburst-dask/c-1/tls") == "c-1"
    assert tls.secret_cluster("starburst-dask/app-token") is None
    assert tls.secret_cluster("other/c-1/tls") is None
    definition = {
        "containerDefinitions": [{"secrets": [{"name": "X", "valueFrom": ARN + ":ca::"}]}]
    }
    assert leftovers.definition_cluster(definition) == "c-1"
    user = {"containerDefinitions": [{"secrets": [{"name": "X", "valueFrom": "/app/token"}]}]}
    assert leftovers.definition_cluster(user) is None


def test_only_the_leftovers_of_clusters_without_tasks_past_the_grace_are_orphans():
    NOW = datetime.datetime.now(datetime.timezone.utc)  # noqa: N806 - the time judged at
    old, young = NOW - datetime.timedelta(hours=1), NOW - datetime.timedelta(minutes=1)
    found = [
        leftovers.Leftover("secret", "dead", ARN, old),
        leftovers.Leftover("secret", "live", ARN, old),
        leftovers.Leftover("task definition", "starting", "arn:td/starburst-dask:3", young),
    ]
    assert [x.cluster for x in leftovers.orphaned(found, {"live"}, 7200, NOW)] == ["dead"]
    # --older-than shorter than the grace: it decides.
    assert [x.cluster for x in leftovers.orphaned(found, {"live"}, 0, NOW)] == ["dead", "starting"]
    assert found[2].name == "starburst-dask:3" and found[0].name.startswith("starburst-dask/c-1")
