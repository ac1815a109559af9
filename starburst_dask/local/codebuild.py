"""CodeBuild as the local Fargate's image builder: a build runs as CodeBuild runs it.

moto's CodeBuild completes every build at once, whatever its source. Here StartBuild runs
the build (its overrides applied over the project): the source downloaded from S3 by the
project's service role (``DOWNLOAD_SOURCE``), the buildspec found and parsed, then its
phases' commands. The local CodeBuild has no Docker engine: it runs the commands the
project's builds use (``docker login`` with ``aws ecr get-login-password``, ``docker
buildx create``, ``docker buildx build --output type=image,...,push=true``), checking
what each needs (a privileged environment, the
context's Dockerfile and the files it uses, the role's ECR permissions, the repository),
and refuses any other command plainly. A failure ends the build ``FAILED`` in its phase,
with the phase context CodeBuild gives; a push records the image in the local ECR (an
image index naming the context's platform) with what it holds (:mod:`.built`).

BatchGetBuilds answers the build as it ended. Every rule's source is in
``docs/local-fargate.md``.
"""

from __future__ import annotations

import contextvars
import copy
import hashlib
import io
import json
import random
import re
import shlex
import zipfile
from typing import Any

import yaml
from moto.codebuild import models as codebuild_models
from moto.codebuild import responses as codebuild_responses
from moto.core.utils import iso_8601_datetime_with_milliseconds
from moto.ecr.models import ecr_backends
from moto.s3.models import s3_backends

from ..aws import lookups
from ..images.build import build_bucket
from ..images.builders import CODEBUILD_ROLE, CODEBUILD_TRUST, create_codebuild_project
from ..images.contents import parse
from ..images.context import DOCKER_PLATFORMS
from ..images.registry import MANAGED_TAG
from . import built, iam

#: The phases of a build, in order (CodeBuild API Reference, ``BuildPhase``).
PHASES = (
    "SUBMITTED",
    "QUEUED",
    "PROVISIONING",
    "DOWNLOAD_SOURCE",
    "INSTALL",
    "PRE_BUILD",
    "BUILD",
    "POST_BUILD",
    "UPLOAD_ARTIFACTS",
    "FINALIZING",
    "COMPLETED",
)
#: buildspec phases and the build phase each runs in ("Build specification reference").
BUILDSPEC_PHASES = {
    "install": "INSTALL",
    "pre_build": "PRE_BUILD",
    "build": "BUILD",
    "post_build": "POST_BUILD",
}
BUILDSPEC_VERSIONS = ("0.1", "0.2")
#: Where CodeBuild puts the primary source (as its YAML_FILE_ERROR messages show it).
SOURCE_DIR = "/codebuild/output/src{n}/src"
#: ECR actions a push needs ("Pushing an image", ECR User Guide).
PUSH_ACTIONS = (
    "ecr:BatchCheckLayerAvailability",
    "ecr:InitiateLayerUpload",
    "ecr:UploadLayerPart",
    "ecr:CompleteLayerUpload",
    "ecr:PutImage",
)
LOCAL_ERROR = "LocalFargateCodeBuildError"
#: What ``docker buildx build --platform ... --push`` pushes: an OCI image index.
INDEX_MEDIA_TYPE = "application/vnd.oci.image.index.v1+json"
_LOGIN = re.compile(r"aws ecr get-login-password\b.*\|\s*docker login\b")
_request: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar("codebuild_request")
_originals: dict[str, Any] = {}


class BuildFailed(Exception):
    """A phase failed: its type, the context's status code and message."""

    def __init__(self, phase: str, code: str, message: str) -> None:
        super().__init__(message)
        self.phase, self.code, self.message = phase, code, message


def install() -> None:
    """Run builds as CodeBuild does until :func:`uninstall`."""
    response, backend = codebuild_responses.CodeBuildResponse, codebuild_models.CodeBuildBackend
    _originals.update(
        response_start=response.start_build,
        start=backend.start_build,
        batch=backend.batch_get_builds,
    )
    response.start_build = _response_start  # type: ignore[method-assign]
    backend.start_build = _start_build  # type: ignore[method-assign]
    backend.batch_get_builds = _batch_get_builds  # type: ignore[method-assign]


def uninstall() -> None:
    """Restore moto's CodeBuild."""
    if _originals:
        codebuild_responses.CodeBuildResponse.start_build = _originals.pop("response_start")  # type: ignore[method-assign]
        codebuild_models.CodeBuildBackend.start_build = _originals.pop("start")  # type: ignore[method-assign]
        codebuild_models.CodeBuildBackend.batch_get_builds = _originals.pop("batch")  # type: ignore[method-assign]
    built.reset()


def prepare(session: Any, account: str, project: str) -> None:
    """The CodeBuild project, role and bucket ``starburst-dask setup`` makes where no Docker
    engine runs (as on every local Fargate: its ECR takes no ``docker push``), the role
    propagated already, as in an account set up earlier."""
    iam_client = session.client("iam")
    if lookups.role(iam_client, CODEBUILD_ROLE) is None:
        iam_client.create_role(
            RoleName=CODEBUILD_ROLE,
            AssumeRolePolicyDocument=CODEBUILD_TRUST,
            Tags=[{"Key": MANAGED_TAG[0], "Value": MANAGED_TAG[1]}],
        )
    iam.clock().backdate(account, CODEBUILD_ROLE)
    create_codebuild_project(session, project, build_bucket(session))


def _response_start(self: Any) -> Any:
    token = _request.set(json.loads(self.body or "{}"))  # CodeBuild's API is JSON
    try:
        return _originals["response_start"](self)
    finally:
        _request.reset(token)


def _start_build(self: Any, project_name: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
    build = _originals["start"](self, project_name, *args, **kwargs)
    answer = copy.deepcopy(build)  # StartBuild answers while the build is queued
    project = self.codebuild_projects[project_name].project_metadata
    _run(self, build, project, _request.get({}))
    return answer


def _batch_get_builds(self: Any, ids: list[str]) -> list[dict[str, Any]]:
    return [
        b for history in self.build_metadata_history.values() for b in history if b["id"] in ids
    ]


def _run(
    backend: Any, build: dict[str, Any], project: dict[str, Any], request: dict[str, Any]
) -> None:
    """Run ``build`` to its end, recording each phase and the final status."""
    now = iso_8601_datetime_with_milliseconds()
    environment = {**project["environment"]}
    if "privilegedModeOverride" in request:
        environment["privilegedMode"] = request["privilegedModeOverride"]
    variables = {v["name"]: v["value"] for v in environment.get("environmentVariables", [])}
    variables.update(
        {v["name"]: v["value"] for v in request.get("environmentVariablesOverride", [])}
    )
    variables.setdefault("AWS_REGION", backend.region_name)
    source = {
        "type": request.get("sourceTypeOverride") or project["source"]["type"],
        "location": request.get("sourceLocationOverride") or project["source"].get("location"),
        "buildspec": request.get("buildspecOverride") or project["source"].get("buildspec"),
    }
    build.update(source={**build["source"], **source}, environment=environment)
    build["phases"] = [p for p in build["phases"] if p["phaseType"] == "SUBMITTED"]
    role = request.get("serviceRoleOverride") or project["serviceRole"]
    done = ["QUEUED", "PROVISIONING"]
    try:
        files = _download(backend.account_id, source, role)
        phases = _buildspec(files, source["buildspec"])  # found and parsed while downloading
        done.append("DOWNLOAD_SOURCE")
        run = _Commands(backend, files, environment, variables, role)
        for name, phase in BUILDSPEC_PHASES.items():
            for command in (phases.get(name) or {}).get("commands") or []:
                run.command(phase, str(command))
            done.append(phase)
        status, failure = "SUCCEEDED", None
        done += ["UPLOAD_ARTIFACTS", "FINALIZING"]
    except BuildFailed as failed:
        status, failure = "FAILED", failed
    for phase in done:
        build["phases"].append(_phase(phase, "SUCCEEDED", now))
    if failure is not None:
        build["phases"].append(
            _phase(
                failure.phase,
                "FAILED",
                now,
                {"statusCode": failure.code, "message": failure.message},
            )
        )
        build["phases"].append(_phase("FINALIZING", "SUCCEEDED", now))
    build["phases"].append({"phaseType": "COMPLETED", "startTime": now})
    build.update(currentPhase="COMPLETED", buildStatus=status, endTime=now, buildComplete=True)


def _phase(
    kind: str, status: str, now: str, context: dict[str, str] | None = None
) -> dict[str, Any]:
    return {
        "phaseType": kind,
        "phaseStatus": status,
        "startTime": now,
        "endTime": now,
        "durationInSeconds": 0,
        "contexts": [context or {"statusCode": "", "message": ""}],
    }


def _download(account: str, source: dict[str, Any], role: str) -> dict[str, bytes]:
    """The S3 source (``bucket/key`` of a zip) as the role reads it: its files."""
    if source["type"] != "S3":
        raise BuildFailed(
            "DOWNLOAD_SOURCE",
            LOCAL_ERROR,
            f"the local CodeBuild builds S3 sources, not {source['type']}",
        )
    bucket, _, key = str(source["location"] or "").partition("/")
    if not iam.role_allows(role, "s3:GetObject", f"arn:aws:s3:::{bucket}/{key}"):
        raise BuildFailed("DOWNLOAD_SOURCE", "CLIENT_ERROR", "AccessDenied: Access Denied")
    s3 = s3_backends[account]["aws"]
    if bucket not in s3.buckets:
        raise BuildFailed(
            "DOWNLOAD_SOURCE", "CLIENT_ERROR", "NoSuchBucket: The specified bucket does not exist"
        )
    found = s3.get_object(bucket, key)
    if found is None:
        raise BuildFailed(
            "DOWNLOAD_SOURCE", "CLIENT_ERROR", "NoSuchKey: The specified key does not exist."
        )
    try:
        with zipfile.ZipFile(io.BytesIO(found.value)) as archive:
            return {name: archive.read(name) for name in archive.namelist()}
    except zipfile.BadZipFile:  # CodeBuild takes a non-zip object as the one source file
        return {key.rsplit("/", 1)[-1]: found.value}


def _buildspec(files: dict[str, bytes], buildspec: str | None) -> dict[str, Any]:
    """The buildspec's phases: inline YAML, or a file of the source (``buildspec.yml``)."""
    where = SOURCE_DIR.format(n=random.randrange(10**8, 10**9))
    text = buildspec if buildspec and "\n" in buildspec else None
    if text is None:
        name = buildspec or "buildspec.yml"
        if name not in files:
            raise BuildFailed(
                "DOWNLOAD_SOURCE",
                "YAML_FILE_ERROR",
                f"stat {where}/{name}: no such file or directory",
            )
        text = files[name].decode(errors="replace")
    try:
        spec = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise BuildFailed(
            "DOWNLOAD_SOURCE", "YAML_FILE_ERROR", str(error).replace("\n", " ")
        ) from None
    if not isinstance(spec, dict) or str(spec.get("version")) not in BUILDSPEC_VERSIONS:
        version = spec.get("version") if isinstance(spec, dict) else None
        raise BuildFailed(
            "DOWNLOAD_SOURCE", "YAML_FILE_ERROR", f"invalid buildspec version: {version!r}"
        )
    return dict(spec.get("phases") or {})


class _Commands:
    """The Docker commands of the project's buildspec, run against the local ECR."""

    def __init__(
        self,
        backend: Any,
        files: dict[str, bytes],
        environment: dict[str, Any],
        variables: dict[str, str],
        role: str,
    ) -> None:
        self.backend, self.files, self.role = backend, files, role
        self.privileged = bool(environment.get("privilegedMode"))
        self.variables = variables

    def command(self, phase: str, command: str) -> None:
        expanded = re.sub(r"\$\{?(\w+)\}?", lambda m: self.variables.get(m.group(1), ""), command)
        if _LOGIN.search(expanded):
            self._docker(phase, command)
            if not iam.role_allows(self.role, "ecr:GetAuthorizationToken", "*"):
                self._fail(phase, command)
            return
        words = shlex.split(expanded)
        if words[:3] == ["docker", "buildx", "create"]:  # a BuildKit builder of its own
            self._docker(phase, command)
        elif words[:3] == ["docker", "buildx", "build"] and "--output" in words:
            self._docker(phase, command)
            output = dict(
                part.partition("=")[::2] for part in words[words.index("--output") + 1].split(",")
            )
            self._build(phase, command)
            if output.get("push") == "true":
                self._push(phase, command, output.get("name", ""))
        else:
            raise BuildFailed(
                phase,
                LOCAL_ERROR,
                "the local CodeBuild runs docker login, docker buildx create and docker "
                f"buildx build --output type=image,...,push=true only, not: {command}",
            )

    def _docker(self, phase: str, command: str) -> None:
        if not self.privileged:  # no Docker daemon in an unprivileged build environment
            self._fail(phase, command)

    def _build(self, phase: str, command: str) -> None:
        if "Dockerfile" not in self.files or not re.search(
            rb"^FROM \S+", self.files["Dockerfile"], re.M
        ):
            self._fail(phase, command)
        if "image.json" not in self.files:  # what the image holds, which a task needs here
            raise BuildFailed(
                phase,
                LOCAL_ERROR,
                "the local CodeBuild builds the contexts starburst-dask "
                "renders (with image.json), not others",
            )
        contents = parse(self.files["image.json"].decode())
        for wheel in contents.local.values():
            if wheel not in self.files:
                self._fail(phase, command)

    def _push(self, phase: str, command: str, uri: str) -> None:
        match = re.fullmatch(r"(\d{12})\.dkr\.ecr\.([a-z0-9-]+)\.amazonaws\.com/([^:]+):(.+)", uri)
        if match is None:  # not an ECR image: no push the role could make here
            self._fail(phase, command)
        account, region, name, tag = match.groups()  # type: ignore[union-attr]
        arn = f"arn:aws:ecr:{region}:{account}:repository/{name}"
        if not all(iam.role_allows(self.role, a, arn) for a in PUSH_ACTIONS):
            self._fail(phase, command)
        ecr = ecr_backends[account][region]
        if name not in ecr.repositories:
            self._fail(phase, command)
        contents = parse(self.files["image.json"].decode())
        digest = (
            "sha256:"
            + hashlib.sha256(b"".join(self.files[n] for n in sorted(self.files))).hexdigest()
        )
        os_name, _, architecture = DOCKER_PLATFORMS[contents.platform].partition("/")
        index = {
            "schemaVersion": 2,
            "mediaType": INDEX_MEDIA_TYPE,
            "manifests": [
                {
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": digest,
                    "size": sum(len(v) for v in self.files.values()),
                    "platform": {"architecture": architecture, "os": os_name},
                }
            ],
        }
        image = ecr.put_image(name, json.dumps(index), tag, INDEX_MEDIA_TYPE)
        built.record(account, region, name, image.get_image_digest(), contents, self.files)

    def _fail(self, phase: str, command: str) -> None:
        """The command exited 1 (what it printed goes to the build's log, not the phase)."""
        raise BuildFailed(
            phase,
            "COMMAND_EXECUTION_ERROR",
            f"Error while executing command: {command}. Reason: exit status 1",
        )
