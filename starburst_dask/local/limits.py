"""AWS's documented limits that the API models leave out, as the local Fargate enforces them.

One table of figures and texts, each with its AWS source, and the checks that apply them.
Each check raises the exception the service answers with (moto's exception classes, which
serialize as AWS's error codes); the ECS response and the EC2/Pricing hooks call them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from typing import Any

from moto.ec2.exceptions import EC2ClientError
from moto.ecs.exceptions import EcsClientException, ECSException, InvalidParameterException

from .. import fargate

# --- ECS RunTask -------------------------------------------------------------------------
#: "A total of 8192 characters are allowed for overrides. This limit includes the JSON
#: formatting characters of the override structure." (ECS API reference, RunTask,
#: ``overrides``). AWS's answer: ``InvalidParameterException`` "Container Overrides length
#: must be at most 8192" (reported verbatim: convox/rack#1906, Netflix/metaflow#1482).
OVERRIDES_MAX_CHARS = 8192
OVERRIDES_TOO_LONG = f"Container Overrides length must be at most {OVERRIDES_MAX_CHARS}"

#: "Up to 128 letters (uppercase and lowercase), numbers, hyphens (-), forward slash (/),
#: and underscores (_) are allowed." (ECS API reference, RunTask, ``startedBy``). AWS's
#: answer for a long one: ``InvalidParameterException`` "startedBy longer than <n>."
#: (reported verbatim with the former limit 36: mapbox/ecs-watchbot#78, convox/rack#1727).
STARTED_BY_MAX = 128
STARTED_BY_PATTERN = re.compile(r"[A-Za-z0-9/_-]*")
STARTED_BY_TOO_LONG = f"startedBy longer than {STARTED_BY_MAX}."
STARTED_BY_INVALID = "startedBy contains invalid characters."

#: ECS tag restrictions (ECS API reference, TagResource and RunTask ``tags``; "Tagging
#: your Amazon ECS resources"): at most 50 tags per resource, key at most 128 and value at
#: most 256 characters, and "Do not use aws:, AWS:, or any upper or lowercase combination
#: of such as a prefix for either keys or values as it is reserved for AWS use."
TAGS_MAX = 50
TAG_KEY_MAX = 128
TAG_VALUE_MAX = 256
RESERVED_TAG_PREFIX = "aws:"

#: "All specified subnets and security groups must be from the same VPC." (ECS API
#: reference, AwsVpcConfiguration). A missing group is EC2's answer, wrapped by ECS as it
#: wraps EC2's RequestLimitExceeded ("Error retrieving security group information for
#: [sg-...]: ... (ErrorCode: ...)", dask/dask-cloudprovider#56); groups and a subnet of
#: different VPCs: EC2's "Security group <sg> and subnet <subnet> belong to different
#: networks." (EC2 InvalidParameter, reported in philschmid/efsync#16).
SECURITY_GROUP_MISSING = (
    "Error retrieving security group information for [{group}]: The security group "
    "'{group}' does not exist (ErrorCode: InvalidGroup.NotFound)"
)
SUBNETS_DIFFERENT_VPCS = "All specified subnets must be from the same VPC."
DIFFERENT_NETWORKS = "Security group {group} and subnet {subnet} belong to different networks."

#: RegisterTaskDefinition: the execution role reads a container's ``secrets`` ("Pass
#: Secrets Manager secrets through Amazon ECS environment variables": "you must have the
#: Amazon ECS task execution role and reference it in your task definition"; the
#: ClientException text as AWS writes it, quoted in fabfuel/ecs-deploy#87 and
#: hashicorp/terraform-provider-aws#6503).
SECRETS_NEED_EXECUTION_ROLE = (
    "When you are specifying container secrets, you must also specify a value for "
    "'executionRoleArn'."
)
#: RegisterTaskDefinition: a secret named like one of the container's environment
#: variables (the ClientException as AWS writes it, quoted in users' reports of it).
SECRET_NAME_TAKEN = (
    "The secret name must be unique and not shared with any new or existing environment "
    "variables set on the container, such as '{name}'."
)
#: RegisterTaskDefinition: Fargate's awslogs driver needs the execution role to write
#: logs (ECS developer guide, "Amazon ECS task execution IAM role"; the ClientException
#: text as AWS writes it, reported in hashicorp/terraform-provider-aws and aws-cdk issues).
AWSLOGS_NEEDS_EXECUTION_ROLE = (
    "Fargate requires task definition to have execution role ARN to support log driver awslogs."
)

#: RunTask ``overrides.cpu``/``overrides.memory`` must be a Fargate task size too ("Task
#: CPU and memory", ECS developer guide); AWS answers as RegisterTaskDefinition does.
NO_FARGATE_CONFIGURATION = "No Fargate configuration exists for given values."

#: Fargate platform versions ("Fargate Linux platform versions", ECS developer guide):
#: RunTask's ``platformVersion`` defaults to ``LATEST``, which is 1.4.0; ARM64 tasks need
#: 1.4.0 or later, on FARGATE and FARGATE_SPOT alike ("FARGATE_SPOT supports Linux tasks
#: with the ARM64 architecture on platform version 1.4.0 or later", ECS API reference,
#: CapacityProviderStrategyItem). A platform version that lacks what a task definition
#: needs: ``PlatformTaskDefinitionIncompatibilityException`` with this text (reported
#: verbatim for 1.3.0 and a 1.4.0 feature: CircleCI-Public/aws-ecs-orb#121).
PLATFORM_INCOMPATIBLE = "One or more of the requested capabilities are not supported."


class PlatformTaskDefinitionIncompatibilityException(ECSException):
    """RunTask on a platform version without a capability the task definition needs."""

    def __init__(self, message: str) -> None:
        super().__init__("PlatformTaskDefinitionIncompatibilityException", message)


# --- RunTask failures: quotas and capacity ------------------------------------------------
#: ``failures[].reason`` texts of RunTask as AWS words them. vCPU quota full: ECS service
#: event and RunTask failure (flightcontrol.dev "ECS Concurrent vCPU Limit"; accounts on
#: vCPU quotas since 2022). Concurrent task limits, which new accounts still meet
#: (wellcomecollection/platform#3875, aws/copilot-cli#3064 and #2685 for Spot). A task
#: larger than the account allows at all (dask/dask-cloudprovider#299, the GitLab Fargate
#: driver issue 41: 2048 CPU units start, 4096 fail). No capacity in the zone: AWS
#: re:Post knowledge center "ecs-fargate-runtask-capacity".
QUOTA_VCPUS = "You've reached the limit on the number of vCPUs you can run concurrently"
QUOTA_TASKS = "You've reached the limit on the number of tasks you can run concurrently"
QUOTA_SPOT_TASKS = "You've reached the limit on the number of spot tasks you can run concurrently"
CPU_ABOVE_LIMIT = "The requested CPU configuration is above your limit"
CAPACITY_UNAVAILABLE = (
    "Capacity is unavailable at this time. Please try again later or in a different "
    "availability zone"
)

# --- EC2 security groups -----------------------------------------------------------------
#: CreateSecurityGroup, GroupName and Description (EC2 API reference): "Constraints: Up to
#: 255 characters in length. Constraints for EC2-VPC: a-z, A-Z, 0-9, spaces, and
#: ._-:/()#,@[]+=&;{}!$*"; the name "Cannot start with sg-". AWS's answers
#: (``InvalidParameterValue``), verbatim from hashicorp terraform and cds-snc reports and
#: cfn-lint#173: "Invalid security group description. Valid descriptions are strings less
#: than 256 characters from the following set:  a-zA-Z0-9. _-:/()#,@[]+=&;{}!$*".
SECURITY_GROUP_TEXT_MAX = 255
SECURITY_GROUP_CHARS = re.compile(r"[a-zA-Z0-9 ._\-:/()#,@\[\]+=&;{}!$*]*")
INVALID_GROUP_DESCRIPTION = (
    "Invalid security group description. Valid descriptions are strings less than 256 "
    "characters from the following set:  a-zA-Z0-9. _-:/()#,@[]+=&;{}!$*"
)
INVALID_GROUP_NAME = (
    "Invalid security group name. Valid names are non-empty strings less than 256 "
    "characters from the following set:  a-zA-Z0-9. _-:/()#,@[]+=&;{}!$*"
)
GROUP_NAME_SG_PREFIX = "Group names may not be in the format sg-*."

# --- Price List --------------------------------------------------------------------------
#: "The AWS Price List Query API provides the following endpoints: us-east-1,
#: eu-central-1, ap-south-1" (AWS Billing user guide, "Using the AWS Price List Query
#: API"; botocore's endpoint table lists the same three). A client in another region
#: resolves ``api.pricing.<region>.amazonaws.com``, which does not exist: it cannot connect.
PRICING_REGIONS = ("us-east-1", "eu-central-1", "ap-south-1")


def overrides_length(overrides: dict[str, Any]) -> int:
    """Characters of ``overrides`` as JSON, in the most compact formatting."""
    return len(json.dumps(overrides, separators=(",", ":")))


def check_run_task(
    overrides: dict[str, Any] | None, started_by: str | None, tags: list[dict[str, str]] | None
) -> None:
    """RunTask's request limits that need no other resource: overrides, startedBy, tags."""
    if overrides and overrides_length(overrides) > OVERRIDES_MAX_CHARS:
        raise InvalidParameterException(OVERRIDES_TOO_LONG)
    if started_by is not None:
        if len(started_by) > STARTED_BY_MAX:
            raise InvalidParameterException(STARTED_BY_TOO_LONG)
        if not STARTED_BY_PATTERN.fullmatch(started_by):
            raise InvalidParameterException(STARTED_BY_INVALID)
    check_ecs_tags(tags or [])
    cpu, memory = (overrides or {}).get("cpu"), (overrides or {}).get("memory")
    if cpu is not None or memory is not None:
        check_override_size(cpu, memory)


def check_override_size(cpu: str | None, memory: str | None) -> None:
    """A task-level cpu/memory override must name a Fargate size, as a definition must."""
    try:
        valid = (
            cpu is not None
            and memory is not None
            and fargate.check_task_size(int(cpu), int(memory)) is None
        )
    except ValueError:
        valid = False
    if not valid:
        raise EcsClientException(NO_FARGATE_CONFIGURATION)


def check_ecs_tags(tags: Iterable[dict[str, str]]) -> None:
    """ECS's tag restrictions (tags given as ``key``/``value``)."""
    pairs = [(t.get("key", ""), t.get("value", "")) for t in tags]
    check_tags(pairs, InvalidParameterException, values_reserved=True)


def check_tags(
    pairs: list[tuple[str, str]],
    error: Callable[[str], Exception],
    *,
    values_reserved: bool = False,
) -> None:
    """The tag restrictions AWS services share: count, lengths, reserved prefix.

    ``error`` makes the service's exception from a message.

    Tags with the reserved prefix cannot be set by a caller at all, so they never count
    toward the 50.
    """
    for key, value in pairs:
        if key.lower().startswith(RESERVED_TAG_PREFIX):
            raise error(
                f"Tag keys starting with '{RESERVED_TAG_PREFIX}' are reserved for AWS use: {key!r}."
            )
        if values_reserved and (value or "").lower().startswith(RESERVED_TAG_PREFIX):
            raise error(
                f"Tag values starting with '{RESERVED_TAG_PREFIX}' are reserved for "
                f"AWS use: {value!r}."
            )
        if len(key) > TAG_KEY_MAX:
            raise error(
                f"Tag key {key[:20]!r}... is {len(key)} characters long; the maximum "
                f"is {TAG_KEY_MAX}."
            )
        if len(value or "") > TAG_VALUE_MAX:
            raise error(
                f"Tag value of key {key!r} is {len(value)} characters long; the "
                f"maximum is {TAG_VALUE_MAX}."
            )
    if len(pairs) > TAGS_MAX:
        raise error(f"{len(pairs)} tags given; a resource can have at most {TAGS_MAX} tags.")


def check_security_group_text(name: str | None, description: str | None) -> None:
    """CreateSecurityGroup's character sets and lengths (EC2-VPC)."""
    if description is not None and (
        len(description) > SECURITY_GROUP_TEXT_MAX
        or not SECURITY_GROUP_CHARS.fullmatch(description)
    ):
        raise EC2ClientError("InvalidParameterValue", INVALID_GROUP_DESCRIPTION)
    if name is not None:
        if len(name) > SECURITY_GROUP_TEXT_MAX or not SECURITY_GROUP_CHARS.fullmatch(name):
            raise EC2ClientError("InvalidParameterValue", INVALID_GROUP_NAME)
        if name.lower().startswith("sg-"):
            raise EC2ClientError("InvalidParameterValue", GROUP_NAME_SG_PREFIX)


def check_fargate_logging(
    kwargs: dict[str, Any], container_definitions: list[dict[str, Any]]
) -> None:
    """A Fargate task definition whose containers log with awslogs needs an execution role."""
    uses_awslogs = any(
        (c.get("logConfiguration") or {}).get("logDriver") == "awslogs"
        for c in container_definitions
    )
    if uses_awslogs and not kwargs.get("execution_role_arn"):
        raise EcsClientException(AWSLOGS_NEEDS_EXECUTION_ROLE)


def check_container_secrets(
    kwargs: dict[str, Any], container_definitions: list[dict[str, Any]]
) -> None:
    """A task definition whose containers take ``secrets`` needs an execution role, and a
    secret's name may not also be one of its container's environment variables."""
    if any(c.get("secrets") for c in container_definitions) and not kwargs.get(
        "execution_role_arn"
    ):
        raise EcsClientException(SECRETS_NEED_EXECUTION_ROLE)
    for container in container_definitions:
        environment = {e.get("name") for e in container.get("environment") or []}
        for secret in container.get("secrets") or []:
            if secret.get("name") in environment:
                raise EcsClientException(SECRET_NAME_TAKEN.format(name=secret["name"]))


def check_network(ec2: Any, vpc_config: dict[str, Any]) -> None:
    """RunTask's subnets and security groups exist and are all in one VPC.

    ``ec2`` is moto's EC2 backend of the request's account and region.
    """
    from moto.ec2.exceptions import InvalidSubnetIdError

    vpcs: dict[str, str] = {}
    for subnet in vpc_config["subnets"]:
        try:
            vpcs[subnet] = ec2.get_subnet(subnet).vpc_id
        except InvalidSubnetIdError:
            raise InvalidParameterException(
                f"Error retrieving subnet information for [{subnet}]: The subnet ID "
                f"'{subnet}' does not exist (ErrorCode: InvalidSubnetID.NotFound)"
            ) from None
    if len(set(vpcs.values())) > 1:
        raise InvalidParameterException(SUBNETS_DIFFERENT_VPCS)
    subnet, vpc = next(iter(vpcs.items()))
    for group_id in vpc_config.get("securityGroups") or []:
        group = ec2.get_security_group_from_id(group_id)
        if group is None:
            raise InvalidParameterException(SECURITY_GROUP_MISSING.format(group=group_id))
        if group.vpc_id != vpc:
            raise InvalidParameterException(
                DIFFERENT_NETWORKS.format(group=group_id, subnet=subnet)
            )


def check_platform_version(
    runtime_platform: dict[str, str] | None, platform_version: str | None
) -> None:
    """ARM64 task definitions run on platform version 1.4.0 or later only."""
    version = platform_version or "LATEST"
    if version == "LATEST":
        version = fargate.PLATFORM_VERSION_LATEST
    architecture = (runtime_platform or {}).get("cpuArchitecture")
    if (
        architecture == "ARM64"
        and re.fullmatch(r"\d+(\.\d+)*", version)
        and _numbers(version) < _numbers(fargate.ARM64_MIN_PLATFORM_VERSION)
    ):
        raise PlatformTaskDefinitionIncompatibilityException(PLATFORM_INCOMPATIBLE)


def _numbers(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))
