"""Where each ``secrets=`` reference lives, what IAM authorizes, and the network it needs."""

from starburst_dask.aws.secret_access import PARAMETER_ACTION, SECRET_ACTION, references, services
from starburst_dask.ecs import network

SECRET = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:app/db-AbCdEf"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/app:1"


def test_references_name_the_resource_iam_authorizes():
    found = references(
        {
            "DB": f"{SECRET}:password::",
            "BY_NAME": "/app/password",
            "FLAT": "flat",
            "BY_ARN": "arn:aws:ssm:us-west-2:210987654321:parameter/team/key",
        },
        "us-east-1",
        "123456789012",
    )
    by_name = {r.name: r for r in found}
    assert (by_name["DB"].action, by_name["DB"].resource) == (SECRET_ACTION, SECRET)
    assert (by_name["DB"].region, by_name["DB"].service_id) == ("eu-west-1", SECRET)
    assert by_name["BY_NAME"].action == PARAMETER_ACTION
    assert by_name["BY_NAME"].resource == (
        "arn:aws:ssm:us-east-1:123456789012:parameter/app/password"
    )
    assert by_name["BY_NAME"].service_id == "/app/password"
    assert by_name["FLAT"].resource == "arn:aws:ssm:us-east-1:123456789012:parameter/flat"
    assert by_name["FLAT"].service_id == "flat"
    assert (by_name["BY_ARN"].region, by_name["BY_ARN"].service_id) == ("us-west-2", "/team/key")
    assert by_name["BY_ARN"].resource == "arn:aws:ssm:us-west-2:210987654321:parameter/team/key"


def test_services_the_secrets_are_read_from():
    assert services({}) == ()
    assert services({"A": SECRET}) == ("secretsmanager",)
    assert services({"A": SECRET, "B": "/p"}) == ("secretsmanager", "ssm")


def test_private_subnets_need_the_secrets_endpoints_too():
    ecr_only = frozenset(network.ECR_ENDPOINTS)
    routes = network.Routes({"subnet-1": None}, {"subnet-1": ecr_only})
    assert network.problems(routes, False, IMAGE, "us-east-1") == []
    [problem] = network.problems(routes, False, IMAGE, "us-east-1", ("secretsmanager",))
    assert "com.amazonaws.us-east-1.secretsmanager" in problem
    served = network.Routes({"subnet-1": None}, {"subnet-1": ecr_only | {"secretsmanager"}})
    assert network.problems(served, False, IMAGE, "us-east-1", ("secretsmanager",)) == []
    nat = network.Routes({"subnet-1": network.NAT}, {"subnet-1": frozenset()})
    assert network.problems(nat, False, IMAGE, "us-east-1", ("secretsmanager", "ssm")) == []
