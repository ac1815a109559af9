"""ECR pull through cache rules for the local Fargate (moto has none).

:class:`PullThroughCacheMiddleware` wraps moto's WSGI app and answers ECR's
``CreatePullThroughCacheRule``, ``DescribePullThroughCacheRules`` and
``DeletePullThroughCacheRule`` as ECR does; :func:`upstream` maps a pull of
``<account>.dkr.ecr.<region>.amazonaws.com/<prefix>/<path>`` to the upstream image the
rule names, which the pull then stands for (the first pull creates the repository, as ECR
does). Sources in ``docs/local-fargate.md``.
"""

from __future__ import annotations

import datetime
import json
import threading
from collections.abc import Callable, Iterable
from typing import Any

from moto.core import DEFAULT_ACCOUNT_ID
from moto.secretsmanager.models import secretsmanager_backends

from .. import fargate
from .wsgi import json_answer, signed_region

TARGET_PREFIX = "AmazonEC2ContainerRegistry_V20150921."
ACTIONS = (
    "CreatePullThroughCacheRule",
    "DescribePullThroughCacheRules",
    "UpdatePullThroughCacheRule",
    "DeletePullThroughCacheRule",
)
#: ``upstreamRegistry`` names of each upstream URL (CreatePullThroughCacheRule reference).
UPSTREAM_NAMES = {
    "public.ecr.aws": "ecr-public",
    "registry.k8s.io": "k8s",
    "quay.io": "quay",
    "registry-1.docker.io": "docker-hub",
    "ghcr.io": "github-container-registry",
    "registry.gitlab.com": "gitlab-container-registry",
}
#: The exceptions' descriptions in the ECR API reference, as their messages.
ALREADY_EXISTS = (
    "PullThroughCacheRuleAlreadyExistsException",
    "A pull through cache rule with these settings already exists for the private registry.",
)
NOT_FOUND = (
    "PullThroughCacheRuleNotFoundException",
    "The pull through cache rule was not found. Specify a valid pull through cache "
    "rule and try again.",
)
UNSUPPORTED = (
    "UnsupportedUpstreamRegistryException",
    "The specified upstream registry isn't supported.",
)
SECRET_NOT_FOUND = (
    "SecretNotFoundException",
    "The ARN of the secret specified in the pull through cache rule was not "
    "found. Update the pull through cache rule with a valid secret ARN and "
    "try again.",
)
#: Not AWS's words (unpublished): a registry that requires a secret, given none.
NEEDS_SECRET = (
    "InvalidParameterException",
    "The upstream registry {url} requires authentication: pass credentialArn, a "
    f"Secrets Manager secret whose name begins with "
    f"{fargate.PULL_THROUGH_SECRET_PREFIX}",
)

#: What UpdatePullThroughCacheRule answers (its output shape).
_UPDATE_FIELDS = ("ecrRepositoryPrefix", "registryId", "updatedAt", "credentialArn")
_rules: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
_lock = threading.Lock()


class RequestError(Exception):
    """An ECR error answer: ``code`` and message."""

    def __init__(self, error: tuple[str, str], **fields: str) -> None:
        super().__init__(error[1].format(**fields))
        self.code = error[0]


class PullThroughCacheMiddleware:
    """WSGI middleware answering ECR's pull through cache rule actions; others go to ``app``."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        action = target[len(TARGET_PREFIX) :] if target.startswith(TARGET_PREFIX) else ""
        if action not in ACTIONS:
            return self.app(environ, start_response)
        region = signed_region(environ) or "us-east-1"
        length = int(environ.get("CONTENT_LENGTH") or 0)
        request = json.loads(environ["wsgi.input"].read(length) or b"{}")
        try:
            status, body = 200, answer(action, request, region)
        except RequestError as e:
            status, body = 400, {"__type": e.code, "message": str(e)}
        return json_answer(start_response, status, body)


def answer(action: str, request: dict[str, Any], region: str) -> dict[str, Any]:
    """The answer to ``action``; raises :class:`RequestError` as ECR refuses."""
    account = request.get("registryId") or DEFAULT_ACCOUNT_ID
    with _lock:
        rules = _rules.setdefault((account, region), {})
        if action == "CreatePullThroughCacheRule":
            return _create(rules, request, account, region)
        if action == "DescribePullThroughCacheRules":
            wanted = request.get("ecrRepositoryPrefixes")
            if wanted and any(_prefix(p) not in rules for p in wanted):
                raise RequestError(NOT_FOUND)
            found = [rules[_prefix(p)] for p in wanted] if wanted else list(rules.values())
            return {"pullThroughCacheRules": [dict(r) for r in found]}
        prefix = _prefix(request["ecrRepositoryPrefix"])
        if prefix not in rules:
            raise RequestError(NOT_FOUND)
        if action == "UpdatePullThroughCacheRule":
            secret = request.get("credentialArn")
            if secret and secret not in secretsmanager_backends[account][region].secrets:
                raise RequestError(SECRET_NOT_FOUND)
            if secret:
                rules[prefix]["credentialArn"] = secret
            rules[prefix]["updatedAt"] = _now()
            return {k: rules[prefix][k] for k in _UPDATE_FIELDS if k in rules[prefix]}
        return dict(rules.pop(prefix))


def _create(
    rules: dict[str, dict[str, Any]], request: dict[str, Any], account: str, region: str
) -> dict[str, Any]:
    url = request["upstreamRegistryUrl"]
    if url not in fargate.PULL_THROUGH_UPSTREAMS:
        raise RequestError(UNSUPPORTED)
    secret = request.get("credentialArn")
    if fargate.PULL_THROUGH_UPSTREAMS[url] and not secret:
        raise RequestError(NEEDS_SECRET, url=url)
    if secret and secret not in secretsmanager_backends[account][region].secrets:
        raise RequestError(SECRET_NOT_FOUND)
    prefix = _prefix(request["ecrRepositoryPrefix"])
    if prefix in rules:
        raise RequestError(ALREADY_EXISTS)
    rule = {
        "ecrRepositoryPrefix": prefix,
        "upstreamRegistryUrl": url,
        "upstreamRegistry": UPSTREAM_NAMES[url],
        "registryId": account,
        "createdAt": _now(),
    }
    if secret:
        rule["credentialArn"] = secret
    rules[prefix] = rule
    return dict(rule)


def _now() -> float:
    return datetime.datetime.now(datetime.timezone.utc).timestamp()


def _prefix(prefix: str) -> str:
    """ECR treats ``p`` and ``p/`` alike ("There is always an assumed / applied")."""
    return prefix.rstrip("/")


def upstream(account: str, region: str, repository: str) -> str | None:
    """The upstream repository (``docker.io/daskdev/dask``) a cached ``repository`` of the
    account's registry stands for, or None: no rule's prefix covers it."""
    with _lock:
        rules = dict(_rules.get((account, region), {}))
    for prefix, rule in rules.items():
        if repository.startswith(f"{prefix}/"):
            host = rule["upstreamRegistryUrl"]
            host = "docker.io" if host == fargate.DOCKER_HUB_UPSTREAM else host
            return f"{host}/{repository[len(prefix) + 1 :]}"
    return None


def reset() -> None:
    """Forget every rule (a fresh account)."""
    with _lock:
        _rules.clear()


def install(server: Any) -> None:
    """Put :class:`PullThroughCacheMiddleware` in front of a started ThreadedMotoServer."""
    wsgi = server._server  # the werkzeug server; its ``app`` is moto's dispatcher
    if not isinstance(wsgi.app, PullThroughCacheMiddleware):
        wsgi.app = PullThroughCacheMiddleware(wsgi.app)
