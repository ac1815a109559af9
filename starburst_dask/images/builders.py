"""Build and push an image: with the local Docker engine, or else on AWS CodeBuild.

Both take a :class:`~.context.BuildContext` and a full image URI, and return when the
image is in ECR. :func:`create_codebuild_project` makes what the CodeBuild path needs
(for ``starburst-dask setup``).
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from .. import fargate
from ..aws import lookups, propagation
from ..aws.clients import client_config
from ..aws.names import trust_policy
from ..errors import MissingResourceError
from . import registry
from .context import BuildContext, template
from .errors import ImageBuildError

Progress = Callable[[str], None]
logger = logging.getLogger(__name__)

#: CodeBuild environments per conda platform: native builds, no emulation.
CODEBUILD_ENVIRONMENTS = {
    "linux-64": ("LINUX_CONTAINER", "aws/codebuild/amazonlinux2-x86_64-standard:5.0"),
    "linux-aarch64": ("ARM_CONTAINER", "aws/codebuild/amazonlinux2-aarch64-standard:3.0"),
}
CODEBUILD_COMPUTE = "BUILD_GENERAL1_SMALL"  # valid for both; the build only copies files
CODEBUILD_ROLE = "starburst-dask-codebuild"
CONTEXT_PREFIX = "starburst-dask/contexts/"
#: The CodeBuild role's trust policy: CodeBuild assumes it.
CODEBUILD_TRUST = json.dumps(trust_policy("codebuild.amazonaws.com"))
#: The command that creates the CodeBuild project, its role and the bucket.
CODEBUILD_SETUP_HINT = "run: starburst-dask setup --codebuild"
_DONE = {"SUCCEEDED", "FAILED", "FAULT", "TIMED_OUT", "STOPPED"}


def docker_engine() -> bool:
    """Whether a Docker engine answers here (the CLI alone is not enough)."""
    if shutil.which("docker") is None:
        return False
    try:
        done = subprocess.run(
            ["docker", "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            timeout=15,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


class DockerBuilder:
    """Builds with ``docker buildx`` for the target platform and pushes to ECR.

    Parameters
    ----------
    ecr
        A boto3 ECR client (for the login token).
    progress : callable
        Receives one line of build output at a time.
    """

    name = "docker"

    def __init__(self, ecr: Any, progress: Progress) -> None:
        self.ecr = ecr
        self.progress = progress

    def build(self, context: BuildContext, image_uri: str) -> None:
        """Build ``context`` as ``image_uri`` and push it."""
        auth = registry.login(self.ecr)
        self._run(
            ["docker", "login", "--username", auth.username, "--password-stdin", auth.registry],
            stdin=auth.password,
        )
        with tempfile.TemporaryDirectory(prefix="starburst-image-") as tmp:
            for name, text in context.files.items():
                Path(tmp, name).write_text(text)
            for name, data in context.binaries.items():  # the user's own wheels
                Path(tmp, name).parent.mkdir(parents=True, exist_ok=True)
                Path(tmp, name).write_bytes(data)
            self._run(
                [
                    "docker",
                    "buildx",
                    "build",
                    "--platform",
                    context.docker_platform,
                    "--progress",
                    "plain",
                    "--tag",
                    image_uri,
                    "--push",
                    tmp,
                ]
            )

    def _run(self, command: list[str], stdin: str | None = None) -> None:
        process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE if stdin else None,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        if stdin:
            process.stdin.write(stdin)  # type: ignore[union-attr]
            process.stdin.close()  # type: ignore[union-attr]
        for line in process.stdout:  # type: ignore[union-attr]
            self.progress(line.rstrip())
        if process.wait() != 0:
            raise ImageBuildError(f"{' '.join(command[:3])} failed (exit {process.returncode})")


class CodeBuildBuilder:
    """Builds on AWS CodeBuild: the context goes to S3, the build pushes to ECR.

    Parameters
    ----------
    session
        A boto3 session (S3, CodeBuild clients).
    project : str
        CodeBuild project, made by ``starburst-dask setup`` (:func:`create_codebuild_project`).
    bucket : str
        S3 bucket for build contexts.
    progress : callable
        Receives a line whenever the build's phase changes.
    poll_interval : float
        Seconds between ``BatchGetBuilds`` calls.
    """

    name = "codebuild"

    def __init__(
        self,
        session: Any,
        project: str,
        bucket: str,
        progress: Progress,
        poll_interval: float = 5.0,
    ) -> None:
        self.s3 = session.client("s3", config=client_config())
        self.codebuild = session.client("codebuild", config=client_config())
        self.project = project
        self.bucket = bucket
        self.progress = progress
        self.poll_interval = poll_interval

    def check(self) -> None:
        """Raise :class:`MissingResourceError` when the project or bucket is missing."""
        if lookups.codebuild_project(self.codebuild, self.project) is None:
            raise MissingResourceError(
                f"CodeBuild project {self.project!r} does not exist (config "
                f"starburst.image-build-project); {CODEBUILD_SETUP_HINT}, or build with a "
                "local Docker engine"
            )
        try:
            self.s3.head_bucket(Bucket=self.bucket)
        except ClientError as e:
            raise MissingResourceError(
                f"S3 bucket {self.bucket!r} for build contexts is not available "
                f"({e.response['Error']['Code']}; config starburst.image-build-bucket); "
                f"{CODEBUILD_SETUP_HINT}"
            ) from e

    def build(self, context: BuildContext, image_uri: str) -> None:
        """Upload the context, start the build, and follow it until it ends."""
        self.check()
        key = f"{CONTEXT_PREFIX}{context.tag}.zip"
        self.s3.put_object(
            Bucket=self.bucket,
            Key=key,
            Body=context.zip({"buildspec.yml": template("buildspec.yml.template")}),
        )
        environment_type, build_image = CODEBUILD_ENVIRONMENTS[context.platform]
        build = self.codebuild.start_build(
            projectName=self.project,
            sourceTypeOverride="S3",
            sourceLocationOverride=f"{self.bucket}/{key}",
            buildspecOverride="buildspec.yml",
            environmentTypeOverride=environment_type,
            imageOverride=build_image,
            computeTypeOverride=CODEBUILD_COMPUTE,
            privilegedModeOverride=True,  # docker build needs it
            environmentVariablesOverride=[
                {"name": "IMAGE_URI", "value": image_uri, "type": "PLAINTEXT"},
                {"name": "REGISTRY", "value": image_uri.split("/", 1)[0], "type": "PLAINTEXT"},
                {"name": "PLATFORM", "value": context.docker_platform, "type": "PLAINTEXT"},
            ],
        )["build"]
        self._follow(build["id"])

    def _follow(self, build_id: str) -> None:
        start, phase = time.monotonic(), None
        while True:
            [build] = self.codebuild.batch_get_builds(ids=[build_id])["builds"]
            if build["currentPhase"] != phase:
                phase = build["currentPhase"]
                self.progress(f"CodeBuild {build_id}: {phase} ({time.monotonic() - start:.0f} s)")
            if build["buildStatus"] in _DONE:
                break
            time.sleep(self.poll_interval)
        if build["buildStatus"] != "SUCCEEDED":
            failed = [
                f"{p['phaseType']}: {c.get('message', '')}"
                for p in build.get("phases", [])
                if p.get("phaseStatus") == "FAILED"
                for c in p.get("contexts", [{}])
            ]
            logs = build.get("logs", {}).get("deepLink", "")
            raise ImageBuildError(
                f"CodeBuild {build_id} ended {build['buildStatus']}: "
                f"{'; '.join(failed) or 'no phase message'}. Logs: {logs}"
            )


def create_codebuild_project(
    session: Any, project: str, bucket: str, notify: Progress = logger.info
) -> dict[str, str]:
    """Create the CodeBuild project, its role and the S3 bucket that image builds use.

    Idempotent: what exists is kept. Meant for ``starburst-dask setup --codebuild``.
    CodeBuild refuses a project whose role IAM has not propagated yet: CreateProject is
    retried then, for a bounded time.

    Parameters
    ----------
    session
        A boto3 session, in the region builds run in.
    project : str
        CodeBuild project name (config ``starburst.image-build-project``).
    bucket : str
        S3 bucket for build contexts (config ``starburst.image-build-bucket``).
    notify : callable
        Receives one line when CreateProject waits for the new role to propagate.

    Returns
    -------
    dict
        ``project_arn``, ``role_arn`` and ``bucket``.
    """
    s3, iam, codebuild = (
        session.client(s, config=client_config()) for s in ("s3", "iam", "codebuild")
    )
    region = session.region_name
    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError:
        extra = (
            {}
            if region == "us-east-1"
            else {"CreateBucketConfiguration": {"LocationConstraint": region}}
        )
        s3.create_bucket(Bucket=bucket, **extra)
        s3.put_bucket_tagging(
            Bucket=bucket,
            Tagging={
                "TagSet": [{"Key": registry.MANAGED_TAG[0], "Value": registry.MANAGED_TAG[1]}]
            },
        )
        # Contexts are only needed while a build runs.
        s3.put_bucket_lifecycle_configuration(
            Bucket=bucket,
            LifecycleConfiguration={
                "Rules": [
                    {
                        "ID": "expire-contexts",
                        "Status": "Enabled",
                        "Filter": {"Prefix": CONTEXT_PREFIX},
                        "Expiration": {"Days": 7},
                    }
                ]
            },
        )
    role_arn = _codebuild_role(iam, bucket)
    found = lookups.codebuild_project(codebuild, project)
    if found is not None:
        return {"project_arn": found["arn"], "role_arn": role_arn, "bucket": bucket}
    environment_type, build_image = CODEBUILD_ENVIRONMENTS["linux-64"]
    created = propagation.while_propagating(
        codebuild.create_project,
        [fargate.CODEBUILD_PROPAGATION_ERROR],
        f"the CodeBuild role {CODEBUILD_ROLE}",
        notify,
        name=project,
        description="starburst-dask: builds dask images from conda-lock files",
        source={"type": "S3", "location": f"{bucket}/{CONTEXT_PREFIX}"},
        artifacts={"type": "NO_ARTIFACTS"},
        environment={
            "type": environment_type,
            "image": build_image,
            "computeType": CODEBUILD_COMPUTE,
            "privilegedMode": True,
        },
        serviceRole=role_arn,
        timeoutInMinutes=60,
        tags=[
            {"key": "starburst-dask", "value": "images"},
            {"key": registry.MANAGED_TAG[0], "value": registry.MANAGED_TAG[1]},
        ],
    )["project"]
    return {"project_arn": created["arn"], "role_arn": role_arn, "bucket": bucket}


def _codebuild_role(iam: Any, bucket: str) -> str:
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
                "Resource": "*",
            },
            {
                "Effect": "Allow",
                "Action": ["s3:GetObject", "s3:GetObjectVersion"],
                "Resource": f"arn:aws:s3:::{bucket}/*",
            },
            {
                "Effect": "Allow",
                "Action": ["s3:GetBucketLocation", "s3:ListBucket"],
                "Resource": f"arn:aws:s3:::{bucket}",
            },
            {"Effect": "Allow", "Action": ["ecr:GetAuthorizationToken"], "Resource": "*"},
            {
                "Effect": "Allow",
                "Action": list(registry.PUSH_ACTIONS),
                "Resource": "*",
            },
        ],
    }
    role = (
        lookups.role(iam, CODEBUILD_ROLE)
        or iam.create_role(
            RoleName=CODEBUILD_ROLE,
            AssumeRolePolicyDocument=CODEBUILD_TRUST,
            Tags=[{"Key": registry.MANAGED_TAG[0], "Value": registry.MANAGED_TAG[1]}],
        )["Role"]
    )
    iam.put_role_policy(
        RoleName=CODEBUILD_ROLE,
        PolicyName="starburst-dask-image-builds",
        PolicyDocument=json.dumps(policy),
    )
    return str(role["Arn"])
