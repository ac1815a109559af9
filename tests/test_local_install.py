"""The local Fargate on the default install: moto without ``moto[server]``'s packages."""

import sys

import pytest
from botocore.exceptions import ClientError

from starburst_dask.local import LocalFargate


def test_a_moto_service_whose_module_is_missing_names_it_and_the_fix(monkeypatch):
    """Cognito needs joserfc, which only ``moto[server]`` installs: one clear error, no
    retried HTTP 500s, and the local Fargate's own services answer as before."""
    monkeypatch.setitem(sys.modules, "joserfc", None)  # import fails, as on the default install
    for name in [m for m in sys.modules if m.split(".")[:2] == ["moto", "cognitoidp"]]:
        monkeypatch.delitem(sys.modules, name)
    with LocalFargate(prepare=False) as aws:
        with pytest.raises(ClientError) as info:
            aws.client("cognito-idp").list_user_pools(MaxResults=10)
        clusters = aws.client("ecs").list_clusters()["clusterArns"]
    response = info.value.response
    assert response["Error"]["Code"] == "NotImplemented"
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 501
    assert response["ResponseMetadata"]["RetryAttempts"] == 0
    message = response["Error"]["Message"]
    assert "module joserfc" in message and "pip install 'moto[server]'" in message
    assert clusters == []
