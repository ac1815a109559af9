"""The local Fargate's CodeBuild runs a build as CodeBuild does, and fails as it fails.

Observed at the API: StartBuild, BatchGetBuilds (status, phases and their contexts), and
the image in ECR (DescribeImages, BatchGetImage).
"""

import json

import boto3
import pytest
from helpers import LOCK

from starburst_dask.images import read_lock, render
from starburst_dask.images.builders import CODEBUILD_ROLE, CONTEXT_PREFIX
from starburst_dask.images.context import template
from starburst_dask.images.registry import ensure_repository

PROJECT = "starburst-dask-images"  # made by the local Fargate as setup makes it


@pytest.fixture
def aws(local_fargate):
    session = boto3.session.Session(region_name=local_fargate.region)
    bucket = (
        session.client("codebuild")
        .batch_get_projects(names=[PROJECT])["projects"][0]["source"]["location"]
        .split("/")[0]
    )
    return session, bucket


def start(session, bucket, key, files=None, repository="built-here", **overrides):
    """Upload ``files`` (a build context) as ``key`` unless None, start a build; its end."""
    context = render(read_lock(LOCK), "linux-64")
    uri = f"{ensure_repository(session.client('ecr'), repository)}:{context.tag}"
    if files is not False:
        body = context.zip(
            files if files is not None else {"buildspec.yml": template("buildspec.yml.template")}
        )
        session.client("s3").put_object(Bucket=bucket, Key=key, Body=body)
    codebuild = session.client("codebuild")
    build = codebuild.start_build(
        projectName=PROJECT,
        sourceTypeOverride="S3",
        sourceLocationOverride=f"{bucket}/{key}",
        buildspecOverride="buildspec.yml",
        environmentVariablesOverride=[
            {"name": "IMAGE_URI", "value": uri, "type": "PLAINTEXT"},
            {"name": "REGISTRY", "value": uri.split("/")[0], "type": "PLAINTEXT"},
            {"name": "PLATFORM", "value": "linux/amd64", "type": "PLAINTEXT"},
        ],
        **{"privilegedModeOverride": True, **overrides},
    )["build"]
    assert build["buildStatus"] == "IN_PROGRESS"
    [done] = codebuild.batch_get_builds(ids=[build["id"]])["builds"]
    return done, uri, context


def failed_phase(build):
    [phase] = [p for p in build["phases"] if p.get("phaseStatus") == "FAILED"]
    [context] = phase["contexts"]
    return phase["phaseType"], context["statusCode"], context["message"]


def test_a_build_pushes_an_index_for_the_contexts_platform(aws):
    session, bucket = aws
    build, uri, context = start(session, bucket, f"{CONTEXT_PREFIX}good.zip")

    assert (build["buildStatus"], build["currentPhase"]) == ("SUCCEEDED", "COMPLETED")
    ecr = session.client("ecr")
    [image] = ecr.batch_get_image(
        repositoryName="built-here", imageIds=[{"imageTag": context.tag}]
    )["images"]
    manifest = json.loads(image["imageManifest"])
    assert [m["platform"] for m in manifest["manifests"]] == [
        {"architecture": "amd64", "os": "linux"}
    ]


def test_a_missing_source_fails_in_download_source(aws):
    session, bucket = aws
    build, _, _ = start(session, bucket, f"{CONTEXT_PREFIX}absent.zip", files=False)
    assert build["buildStatus"] == "FAILED"
    assert failed_phase(build) == (
        "DOWNLOAD_SOURCE",
        "CLIENT_ERROR",
        "NoSuchKey: The specified key does not exist.",
    )


def test_a_context_without_its_buildspec_fails_as_codebuild_fails(aws):
    session, bucket = aws
    build, _, _ = start(session, bucket, f"{CONTEXT_PREFIX}no-spec.zip", files={})
    phase, code, message = failed_phase(build)
    assert (build["buildStatus"], phase, code) == ("FAILED", "DOWNLOAD_SOURCE", "YAML_FILE_ERROR")
    assert message.endswith("/src/buildspec.yml: no such file or directory")
    kinds = [p["phaseType"] for p in build["phases"]]
    assert kinds.count("DOWNLOAD_SOURCE") == 1 and "BUILD" not in kinds  # it ends there


def test_an_invalid_buildspec_fails_as_codebuild_fails(aws):
    session, bucket = aws
    build, _, _ = start(
        session, bucket, f"{CONTEXT_PREFIX}bad-spec.zip", files={"buildspec.yml": "version: 7\n"}
    )
    assert failed_phase(build)[:2] == ("DOWNLOAD_SOURCE", "YAML_FILE_ERROR")


def test_docker_needs_a_privileged_build(aws):
    session, bucket = aws
    build, _, _ = start(
        session, bucket, f"{CONTEXT_PREFIX}unprivileged.zip", privilegedModeOverride=False
    )
    phase, code, message = failed_phase(build)
    assert (phase, code) == ("PRE_BUILD", "COMMAND_EXECUTION_ERROR")
    assert message.startswith("Error while executing command: aws ecr get-login-password")
    assert message.endswith("Reason: exit status 1")


def test_a_role_that_cannot_push_fails_the_push(aws):
    session, bucket = aws
    iam = session.client("iam")
    [name] = iam.list_role_policies(RoleName=CODEBUILD_ROLE)["PolicyNames"]
    policy = iam.get_role_policy(RoleName=CODEBUILD_ROLE, PolicyName=name)["PolicyDocument"]
    narrowed = {
        **policy,
        "Statement": [s for s in policy["Statement"] if "ecr:PutImage" not in s["Action"]],
    }
    iam.put_role_policy(
        RoleName=CODEBUILD_ROLE, PolicyName=name, PolicyDocument=json.dumps(narrowed)
    )
    try:
        build, uri, context = start(
            session, bucket, f"{CONTEXT_PREFIX}denied.zip", repository="never-pushed"
        )
    finally:
        iam.put_role_policy(
            RoleName=CODEBUILD_ROLE, PolicyName=name, PolicyDocument=json.dumps(policy)
        )
    assert failed_phase(build) == (
        "BUILD",
        "COMMAND_EXECUTION_ERROR",
        'Error while executing command: docker buildx build --platform "$PLATFORM" '
        '--provenance=false --progress plain --output "type=image,name=$IMAGE_URI,'
        'oci-mediatypes=true,compression=zstd,force-compression=true,push=true" .. '
        "Reason: exit status 1",
    )
    images = session.client("ecr").describe_images(repositoryName="never-pushed")["imageDetails"]
    assert images == []
