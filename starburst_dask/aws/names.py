"""How AWS writes names and addresses: ECR registries and image URIs, ARNs, its endpoints.
No AWS call.

One place for these formats, read by the cluster (which images VPC endpoints can serve),
images (an ECR image's platforms, the pull through cache's URIs) and setup.
"""

from __future__ import annotations

import dataclasses
import re
import urllib.parse

#: An image in an ECR registry: ``<account>.dkr.ecr.<region>.amazonaws.com/<repository>``,
#: then ``:<tag>`` and/or ``@<digest>`` ("Amazon ECR private registry", ECR user guide).
ECR_IMAGE = re.compile(
    r"^(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com/"
    r"(?P<repository>[^:@]+)(?::(?P<tag>[^@]+))?(?:@(?P<digest>.+))?$"
)
#: A Secrets Manager secret ARN, by part (its resource name: ``secret:<name>-<6 chars>``).
SECRET_ARN = re.compile(
    r"arn:aws[\w-]*:secretsmanager:(?P<region>[a-z0-9-]+):"
    r"(?P<account>\d{12}):secret:(?P<name>.+)"
)

#: The name prefix of the project's own Secrets Manager secrets.
SECRET_PREFIX = "starburst-dask/"


def trust_policy(service: str) -> dict[str, object]:
    """The trust policy that lets one AWS service assume a role.

    Parameters
    ----------
    service
        The service principal, such as ``"ecs-tasks.amazonaws.com"``.
    """
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}
        ],
    }


@dataclasses.dataclass(frozen=True)
class EcrImage:
    """The parts of an ECR image URI."""

    account: str
    region: str
    repository: str
    tag: str | None
    digest: str | None


def ecr_registry(account: str, region: str) -> str:
    """The address of ``account``'s ECR registry in ``region``."""
    return f"{account}.dkr.ecr.{region}.amazonaws.com"


def ecr_image(image: str) -> EcrImage | None:
    """``image``'s parts when it is in an ECR registry, else None."""
    match = ECR_IMAGE.match(image)
    return EcrImage(**match.groupdict()) if match else None


def role_name(role: str) -> str:
    """An IAM role's name, from its name or its ARN (``arn:...:role/<path>/<name>``)."""
    return role.rsplit("/", 1)[-1]


def iam_prefix(arn: str) -> str:
    """``arn:<partition>:iam::<account>`` of an IAM user or role ARN."""
    return arn.split(":role/")[0].split(":user/")[0]


#: The domains of AWS's own service endpoints ("AWS service endpoints", AWS General
#: Reference: ``<service>.<region>.amazonaws.com``, ``.amazonaws.com.cn`` in China, and
#: the dual-stack ``.api.aws``).
AWS_ENDPOINT_DOMAINS = (".amazonaws.com", ".amazonaws.com.cn", ".api.aws")


def aws_endpoint(url: str | None) -> bool:
    """Whether ``url`` (an endpoint URL, as in ``AWS_ENDPOINT_URL``; ``None``: the SDK's
    own) is AWS's, not another endpoint such as a local Fargate."""
    if not url:
        return True
    host = urllib.parse.urlsplit(url).hostname or ""
    return host.endswith(AWS_ENDPOINT_DOMAINS)
