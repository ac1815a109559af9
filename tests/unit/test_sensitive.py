"""Credentials kept out of ``environment=``, and ``secrets=`` references ECS reads."""

import pytest

from starburst_dask import sensitive
from starburst_dask.errors import ConfigurationError
from starburst_dask.options import ClusterOptions

SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:app/db-AbCdEf"
PARAMETER = "arn:aws:ssm:us-east-1:123456789012:parameter/app/password"
# Built from parts so that no scanner takes this file for a leak.
ACCESS_KEY_ID = "AKIA" + "IOSFODNN7EXAMPLE"
GITHUB = "ghp_" + "a" * 36


def resolve(**kwargs):
    return ClusterOptions.resolve(region="us-east-1", **kwargs)


@pytest.mark.parametrize(
    "name, kind",
    [
        ("AWS_SECRET_ACCESS_KEY", "AWS credentials"),
        ("aws_session_token", "AWS credentials"),
        ("GITHUB_TOKEN", "a token"),
        ("DB_PASSWORD", "a password"),
        ("MYSQL_ROOT_PASSWD", "a password"),
        ("CLIENT_SECRET", "a secret"),
        ("OPENAI_API_KEY", "a key"),
        ("SERVICE_PRIVATE_KEY", "a key"),
    ],
)
def test_names_that_say_credential(name, kind):
    assert sensitive.credential_kind(name, "x") == f"{kind} (by its name)"


@pytest.mark.parametrize(
    "value, kind",
    [
        (ACCESS_KEY_ID, "an AWS access key id"),
        ("ASIA" + "Y34FZKBOKMUTVV7A", "an AWS access key id"),
        ("-----BEGIN RSA PRIVATE KEY-----\nMIIE...", "a private key"),
        ("-----BEGIN PRIVATE KEY-----", "a private key"),
        (GITHUB, "a GitHub token"),
        ("github_pat_" + "A1" * 20, "a GitHub token"),
        ("xoxb-" + "1234567890-abcdef", "a Slack token"),
        ("sk_live_" + "0123456789abcdefABCD", "a Stripe key"),
    ],
)
def test_values_that_are_credentials(value, kind):
    assert sensitive.credential_kind("SETTING", value) == f"{kind} (by its value)"


@pytest.mark.parametrize(
    "name, value",
    [
        ("TOKENIZERS_PARALLELISM", "false"),
        ("MALLOC_TRIM_THRESHOLD_", "0"),
        ("EXTRA_PIP_PACKAGES", "s3fs"),
        ("KEY_COUNT", "AKIA"),  # too short to be a key id
        ("NOTE", "the word -----BEGIN CERTIFICATE----- is not a key"),
    ],
)
def test_ordinary_settings_pass(name, value):
    assert sensitive.credential_kind(name, value) is None
    assert resolve(environment={name: value}).environment == {name: value}


def test_a_credential_in_environment_is_refused_without_echoing_it():
    with pytest.raises(ConfigurationError) as refused:
        resolve(environment={"UPLOAD_KEY_ID": ACCESS_KEY_ID})
    message = str(refused.value)
    assert "UPLOAD_KEY_ID" in message and "an AWS access key id" in message
    assert "secrets={'UPLOAD_KEY_ID': '<secret ARN>'}" in message
    assert ACCESS_KEY_ID not in message
    with pytest.raises(ConfigurationError, match="DB_PASSWORD looks like a password"):
        resolve(environment={"DB_PASSWORD": "hunter2"})


@pytest.mark.parametrize(
    "value_from",
    [
        SECRET,
        f"{SECRET}:password::",
        f"{SECRET}::AWSPREVIOUS:",
        f"{SECRET}:password::9d4cb84b-ad69-40c0-a0ab-cead3EXAMPLE",
        "arn:aws:secretsmanager:eu-west-1:123456789012:secret:app/db",  # partial ARN
        PARAMETER,
        "/app/password",
        "plain_name.v2",
    ],
)
def test_references_ecs_reads(value_from):
    assert sensitive.reference_problem(value_from) is None
    assert resolve(secrets={"VALUE": value_from}).secrets == {"VALUE": value_from}


@pytest.mark.parametrize(
    "secrets, words",
    [
        ({"1ST": SECRET}, ["'1ST' is not an environment variable name"]),
        ({"MY-VAR": SECRET}, ["'MY-VAR' is not an environment variable name"]),
        ({"A": f"{SECRET}:password"}, ["is not a secret reference ECS reads", "json-key"]),
        ({"A": f"{SECRET}:k:AWSCURRENT:abc"}, ["both a version stage and a version id"]),
        ({"A": "arn:aws:s3:::bucket/key"}, ["is not a secret reference ECS reads"]),
        ({"A": "my secret"}, ["is not a secret reference ECS reads"]),
        ({"A": ""}, ["is not a secret reference ECS reads"]),
    ],
)
def test_bad_secrets_are_refused(secrets, words):
    with pytest.raises(ConfigurationError) as refused:
        resolve(secrets=secrets)
    for word in words:
        assert word in str(refused.value)


def test_a_name_in_both_environment_and_secrets_is_refused():
    with pytest.raises(ConfigurationError, match="DB_URL is in both environment= and secrets="):
        resolve(environment={"DB_URL": "x"}, secrets={"DB_URL": SECRET})


def test_secrets_come_from_config_too():
    import dask.config

    with dask.config.set({"starburst.secrets": {"DB": PARAMETER}}):
        assert resolve().secrets == {"DB": PARAMETER}
