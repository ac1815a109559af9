"""Environment sync: lock -> rendered image -> ECR, on a lock fixture and the local Fargate.

conda channels are not reachable from CI, so everything but the lock step runs on the
hand-written lock in tests/data/conda-lock.yml; the lock step itself is a real call into
conda-lock, skipped (with the reason) only when the channel cannot be reached.
"""

import base64
import io
import json
import os
import subprocess
import sys
import urllib.request
import warnings
import zipfile

import boto3
import dask
import pytest
import yaml
from click.testing import CliRunner
from helpers import LOCK, lock_with, put_image

from starburst_dask import FargateCluster, MissingResourceError
from starburst_dask.cli import main
from starburst_dask.images import (
    ImageVersionError,
    create_codebuild_project,
    ensure_image,
    from_tag,
    lock_environment,
    read_lock,
    render,
    resolve_cluster_image,
    snapshot,
)
from starburst_dask.images.builders import CONTEXT_PREFIX
from starburst_dask.images.registry import ensure_repository
from starburst_dask.options import ClusterOptions

PLATFORMS = ("linux-64", "linux-aarch64")
ACCOUNT = "123456789012"


def fixture_packages(platform, manager):
    """The fixture's packages for ``platform``, read independently of the code under test."""
    packages = yaml.safe_load(LOCK.read_text())["package"]
    return [p for p in packages if p["platform"] == platform and p["manager"] == manager]


class ApiCalls:
    """Records the parameters of AWS API calls made through a boto3 session."""

    def __init__(self, session):
        self.calls = []
        session.events.register("provide-client-params.*.*", self._record)

    def _record(self, params, model, **kwargs):
        self.calls.append((model.name, dict(params)))

    def of(self, operation):
        return [params for name, params in self.calls if name == operation]


def set_config(monkeypatch, values):
    for key, value in values.items():
        monkeypatch.setitem(dask.config.config["starburst"], key, value)


@pytest.fixture
def no_docker_engine(monkeypatch):
    """A Docker CLI (if any) that reaches no engine, whatever this machine has."""
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/starburst-test/docker.sock")


@pytest.fixture
def session(local_fargate):
    return boto3.session.Session(region_name=local_fargate.region)


# -- rendering ---------------------------------------------------------------------------


@pytest.mark.parametrize("platform", PLATFORMS)
def test_image_installs_exactly_the_locked_packages_of_its_platform(platform):
    context = render(read_lock(LOCK), platform)
    other = next(p for p in PLATFORMS if p != platform)

    explicit = context.files["conda.lock"].splitlines()
    assert "@EXPLICIT" in explicit
    installed = [line for line in explicit if not line.startswith(("#", "@"))]
    wanted = [f"{p['url']}#{p['hash']['md5']}" for p in fixture_packages(platform, "conda")]
    assert sorted(installed) == sorted(wanted)  # all of them, nothing else, with hashes
    assert not any(f"/{other}/" in line for line in installed)
    assert installed[0].split("/")[-1].startswith("python-")  # linked before noarch ones

    [pip] = fixture_packages(platform, "pip")
    assert context.files["requirements.txt"] == (
        f"{pip['name']} @ {pip['url']} --hash=sha256:{pip['hash']['sha256']}\n"
    )

    dockerfile = context.files["Dockerfile"]
    assert "FROM mambaorg/micromamba:" in dockerfile
    assert "micromamba install --yes --name base --file /tmp/conda.lock" in dockerfile
    assert "--no-deps" in dockerfile and "--require-hashes" in dockerfile
    assert "USER $MAMBA_USER" in dockerfile and "USER root" not in dockerfile
    assert (
        'ENTRYPOINT ["/opt/conda/bin/tini", "-g", "--", "/usr/local/bin/_entrypoint.sh"]'
        in dockerfile
    )
    assert 'io.starburst-dask.distributed="2026.8.0"' in dockerfile
    assert (
        context.docker_platform
        == {"linux-64": "linux/amd64", "linux-aarch64": "linux/arm64"}[platform]
    )


def test_tag_is_stable_across_runs_and_follows_the_content(tmp_path):
    lock = read_lock(LOCK)
    tags = {p: render(lock, p).tag for p in PLATFORMS}
    assert tags["linux-64"] != tags["linux-aarch64"]
    assert tags["linux-64"].startswith("2026.8.0-py3.11-")
    # Another process (another hash seed) computes the same tags.
    script = (
        "import sys; from starburst_dask.images import read_lock, render; "
        "l = read_lock(sys.argv[1]); print(render(l, 'linux-64').tag, "
        "render(l, 'linux-aarch64').tag)"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(LOCK)],
        check=True,
        text=True,
        capture_output=True,
        env={**os.environ, "PYTHONHASHSEED": "123"},
    )
    assert out.stdout.split() == [tags["linux-64"], tags["linux-aarch64"]]
    # One package version changed on linux-64: only linux-64's tag changes.
    changed = read_lock(lock_with(tmp_path, "msgpack-python", "1.1.1", platform="linux-64"))
    assert render(changed, "linux-64").tag != tags["linux-64"]
    assert render(changed, "linux-aarch64").tag == tags["linux-aarch64"]
    # The template is part of the tag too.
    assert render(lock, "linux-64", base_image="mambaorg/micromamba:9.9.9").tag != tags["linux-64"]


def test_tags_record_versions_the_client_can_check():
    assert from_tag("daskdev/dask:2026.8.0-py3.11").distributed == "2026.8.0"
    ours = from_tag(
        f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/starburst-dask:2026.7.1-py3.12-0123456789abcdef"
    )
    assert (ours.distributed, ours.python) == ("2026.7.1", "3.12")
    for unknown in (
        "daskdev/dask:latest",
        "daskdev/dask",
        "localhost:5000/dask",
        "dask@sha256:" + "b" * 64,
        "my-dask:1",
    ):
        assert from_tag(unknown) is None, unknown


# -- ECR and builders, on the local Fargate ---------------------------------------------


def test_tag_already_in_ecr_means_nothing_is_built(local_fargate, session, no_docker_engine):
    tag = render(read_lock(LOCK), "linux-64").tag
    ecr = session.client("ecr")
    ecr.create_repository(repositoryName="cached")
    put_image(ecr, "cached", tag)
    calls = ApiCalls(session)

    image = ensure_image(LOCK, repository="cached", session=session)

    assert (image.built, image.builder) == (False, None)
    assert image.uri == f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/cached:{tag}"
    assert calls.of("StartBuild") == [] and calls.of("PutObject") == []
    assert calls.of("DescribeImages") == [
        {"repositoryName": "cached", "imageIds": [{"imageTag": tag}]}
    ]
    assert local_fargate.client("codebuild").list_builds()["ids"] == []


def test_without_docker_engine_codebuild_builds_from_s3(
    local_fargate, session, no_docker_engine, monkeypatch
):
    set_config(
        monkeypatch, {"image-build-project": "images-test", "image-build-bucket": "contexts-test"}
    )
    made = create_codebuild_project(session, "images-test", "contexts-test")
    assert create_codebuild_project(session, "images-test", "contexts-test") == made  # again
    calls = ApiCalls(session)
    lines = []

    image = ensure_image(LOCK, repository="built", session=session, progress=lines.append)

    context = render(read_lock(LOCK), "linux-64")
    key = f"{CONTEXT_PREFIX}{context.tag}.zip"
    assert (image.built, image.builder, image.tag) == (True, "codebuild", context.tag)
    uri = f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/built:{context.tag}"
    assert image.uri == uri
    # The context is in S3 (moto's state): the rendered files plus the buildspec.
    body = local_fargate.client("s3").get_object(Bucket="contexts-test", Key=key)["Body"].read()
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        files = {n: archive.read(n).decode() for n in archive.namelist()}
    assert {n: files[n] for n in context.files} == context.files
    assert "compression=zstd" in files["buildspec.yml"] and "push=true" in files["buildspec.yml"]
    # One build of the project (moto's state), started with the context's location.
    codebuild = local_fargate.client("codebuild")
    [build_id] = codebuild.list_builds_for_project(projectName="images-test")["ids"]
    [start] = calls.of("StartBuild")
    assert start["projectName"] == "images-test"
    assert (start["sourceTypeOverride"], start["sourceLocationOverride"]) == (
        "S3",
        f"contexts-test/{key}",
    )
    assert start["environmentTypeOverride"] == "LINUX_CONTAINER"
    assert start["privilegedModeOverride"] is True
    env = {v["name"]: v["value"] for v in start["environmentVariablesOverride"]}
    assert env["IMAGE_URI"] == uri
    assert calls.of("BatchGetBuilds")[0] == {"ids": [build_id]}
    assert any("COMPLETED" in line for line in lines)  # progress shown


def test_missing_codebuild_project_is_named(local_fargate, session, no_docker_engine, monkeypatch):
    set_config(monkeypatch, {"image-build-project": "no-such-project"})
    with pytest.raises(
        MissingResourceError, match="'no-such-project'.*starburst-dask setup --codebuild"
    ):
        ensure_image(LOCK, repository="unbuilt", session=session)


def test_image_ls_and_render_commands(local_fargate, session, tmp_path):
    ecr = session.client("ecr")
    ecr.create_repository(repositoryName="listed")
    put_image(ecr, "listed", "2026.8.0-py3.11-0123456789abcdef")
    result = CliRunner().invoke(main, ["image", "ls", "--repository", "listed"])
    assert result.exit_code == 0, result.output
    assert "2026.8.0-py3.11-0123456789abcdef" in result.output
    missing = CliRunner().invoke(main, ["image", "ls", "--repository", "no-such-repo"])
    assert missing.exit_code == 1
    assert missing.output.startswith("Error: ECR repository 'no-such-repo' does not exist")

    out = tmp_path / "context"
    result = CliRunner().invoke(
        main, ["image", "render", str(LOCK), "-o", str(out), "--platform", "linux-aarch64"]
    )
    assert result.exit_code == 0, result.output
    assert (out / "conda.lock").read_text() == render(read_lock(LOCK), "linux-aarch64").files[
        "conda.lock"
    ]


# -- the version check, before any task ----------------------------------------------------


def test_image_with_other_distributed_fails_before_any_task(local_fargate):
    local_fargate.reset_counters()
    image = (
        f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/starburst-dask:2026.7.1-py3.11-0123456789abcdef"
    )
    with pytest.raises(
        ImageVersionError,
        match=r"distributed 2026\.7\.1 but this client "
        r"has distributed 2026\.8\.0",
    ):
        FargateCluster(n_workers=1, image=image)
    assert local_fargate.calls["RunTask"] == 0
    assert local_fargate.calls["RegisterTaskDefinition"] == 0


def test_software_with_other_distributed_fails_before_build_or_task(local_fargate, tmp_path):
    local_fargate.reset_counters()
    builds = len(local_fargate.client("codebuild").list_builds()["ids"])
    old = lock_with(tmp_path, "distributed", "2026.7.1")
    with pytest.raises(ImageVersionError, match=r"distributed 2026\.7\.1"):
        FargateCluster(n_workers=1, software=old)
    assert local_fargate.calls["RunTask"] == 0
    assert len(local_fargate.client("codebuild").list_builds()["ids"]) == builds


def test_software_uses_the_cached_image(local_fargate, session):
    tag = render(read_lock(LOCK), "linux-64").tag
    ecr = session.client("ecr")
    ensure_repository(ecr, "starburst-dask")  # the configured default repository
    put_image(ecr, "starburst-dask", tag)
    options = resolve_cluster_image(ClusterOptions.resolve(software=LOCK))
    assert options.image == f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/starburst-dask:{tag}"


@pytest.mark.parametrize(
    ("architecture", "platform"), [("X86_64", "linux-64"), ("ARM64", "linux-aarch64")]
)
def test_software_is_the_image_of_the_clusters_architecture(
    local_fargate, session, architecture, platform
):
    tags = {p: render(read_lock(LOCK), p).tag for p in ("linux-64", "linux-aarch64")}
    assert tags["linux-64"] != tags["linux-aarch64"]
    ecr = session.client("ecr")
    ensure_repository(ecr, "starburst-dask")
    for tag in tags.values():
        put_image(ecr, "starburst-dask", tag)
    options = resolve_cluster_image(
        ClusterOptions.resolve(software=LOCK, architecture=architecture)
    )
    assert options.image.endswith(f"/starburst-dask:{tags[platform]}")


def test_image_and_software_together_is_an_error(local_fargate):
    with pytest.raises(ValueError, match="image= or software="):
        FargateCluster(image="daskdev/dask:2026.8.0-py3.11", software=str(LOCK))


# -- the environment: snapshot and the real lock step -----------------------------------


def test_snapshot_pins_the_client_and_copies_pip_versions(tmp_path):
    from importlib import metadata

    snap = snapshot(prefix="")  # not a conda env: python and pip packages only
    deps = snap.environment["dependencies"]
    assert "python=3.11.*" in deps and "tini" in deps
    assert f"distributed={metadata.version('distributed')}" in deps
    assert f"dask-core={metadata.version('dask')}" in deps
    [pip] = [d["pip"] for d in deps if isinstance(d, dict)]
    assert f"moto=={metadata.version('moto')}" in pip
    assert not any(p.startswith(("dask==", "distributed==", "starburst-dask")) for p in pip)

    meta = tmp_path / "conda-meta"
    meta.mkdir()
    for name, version in (("numpy", "2.1.0"), ("libzlib", "1.3.1"), ("dask", "2025.1.0")):
        (meta / f"{name}-{version}-0.json").write_text(
            json.dumps({"name": name, "version": version, "channel": "https://example/conda-forge"})
        )
    (meta / "history").write_text(
        "==> 2026-01-01 <==\n# update specs: ['conda-forge::numpy>=2', 'dask']\n"
    )
    deps = snapshot(prefix=str(tmp_path)).environment["dependencies"]
    assert "numpy=2.1.0" in deps and not any(str(d).startswith("libzlib") for d in deps)
    assert f"dask={metadata.version('dask')}" in deps  # the client's, not the env's


def _channel_unreachable():
    """Why conda-lock cannot reach its default channel, or None when it can."""
    with warnings.catch_warnings():  # conda-lock's vendored conda warns on import
        warnings.simplefilter("ignore")
        from conda_lock._vendor.conda.base.constants import DEFAULT_CHANNEL_ALIAS

    url = f"{DEFAULT_CHANNEL_ALIAS}/conda-forge/noarch/repodata.json"
    try:
        urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=3)
    except Exception as e:  # noqa: BLE001 - any failure means: cannot lock here
        return f"conda channel conda-forge not reachable ({type(e).__name__}: {e})"
    return None


def test_lock_step_is_conda_lock(tmp_path):
    reason = _channel_unreachable()
    if reason:
        print(f"SKIPPED: {reason}")
        pytest.skip(reason)
    env = tmp_path / "environment.yml"
    env.write_text("channels: [conda-forge]\ndependencies: [python=3.11, toolz]\n")
    lock = lock_environment([env], tmp_path / "conda-lock.yml")
    for platform in PLATFORMS:
        names = {p.name for p in lock.for_platform(platform)}
        assert {"python", "toolz", "dask-core", "distributed", "tini"} <= names
        assert lock.version("distributed", platform) == __import__("distributed").__version__
        render(lock, platform)


FAKE_DOCKER = """#!/bin/sh
# A docker CLI with an engine: records each call; keeps the password and build context.
echo "$@" >> "$DOCKER_LOG"
case "$1" in
  info) echo 27.3.1 ;;
  login) cat > "$DOCKER_LOG.password" ;;
  buildx) eval last=\\${$#}; cp -r "$last" "$DOCKER_LOG.context"; echo "#1 building" ;;
esac
"""


def test_with_a_docker_engine_buildx_builds_and_pushes(
    local_fargate, session, tmp_path, monkeypatch
):
    bin_dir, log = tmp_path / "bin", tmp_path / "docker.log"
    bin_dir.mkdir()
    (bin_dir / "docker").write_text(FAKE_DOCKER)
    (bin_dir / "docker").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("DOCKER_LOG", str(log))
    calls = ApiCalls(session)

    image = ensure_image(LOCK, platform="linux-aarch64", repository="docker-built", session=session)

    context = render(read_lock(LOCK), "linux-aarch64")
    assert (image.built, image.builder) == (True, "docker")
    info, login, build = log.read_text().splitlines()
    assert info.startswith("info")
    token = session.client("ecr").get_authorization_token()["authorizationData"][0]
    registry = token["proxyEndpoint"].split("://")[-1]
    assert login == f"login --username AWS --password-stdin {registry}"
    user_password = base64.b64decode(token["authorizationToken"]).decode()
    assert f"AWS:{(tmp_path / 'docker.log.password').read_text()}" == user_password
    assert build.startswith(
        f"buildx build --platform linux/arm64 --progress plain --tag {image.uri} --push "
    )
    built = tmp_path / "docker.log.context"
    assert {p.name: p.read_text() for p in built.iterdir()} == context.files
    assert len(calls.of("GetAuthorizationToken")) == 2  # ours, and the check above
    assert calls.of("StartBuild") == []


def test_image_build_command_prints_the_uri(local_fargate, session):
    tag = render(read_lock(LOCK), "linux-64").tag
    ecr = session.client("ecr")
    ensure_repository(ecr, "cli-built")
    put_image(ecr, "cli-built", tag)
    result = CliRunner().invoke(main, ["image", "build", str(LOCK), "--repository", "cli-built"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/cli-built:{tag}"
