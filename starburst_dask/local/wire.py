"""Which AWS operation a request is, and its input decoded by the service's botocore model.

The service is the signing name in the request's SigV4 credential scope; the operation is
the ``X-Amz-Target`` header (JSON protocols), the ``Action`` parameter (query and EC2
protocols) or the method and path matched against the model's request URIs (REST
protocols). The input is decoded the way botocore's serializers encode it, driven by the
operation's input shape, so constraints can be checked on it.
"""

from __future__ import annotations

import functools
import io
import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, parse_qsl

import botocore.session
from botocore.exceptions import UnknownServiceError
from botocore.model import (
    ListShape,
    MapShape,
    OperationModel,
    ServiceModel,
    Shape,
    StructureShape,
)

#: Signing names that differ from botocore's service name.
SIGNING_ALIASES = {"monitoring": "cloudwatch", "servicequotas": "service-quotas"}
_SCOPE = re.compile(r"Credential=[^/,\s]+/\d{8}/[^/]+/([^/]+)/aws4_request")
_LABEL = re.compile(r"\{([^}]+?)(\+?)\}")
_MISSING = object()


@dataclass
class Request:
    """An AWS request, decoded.

    Attributes
    ----------
    service : str
        botocore's service name (``ecs``, ``service-quotas``).
    protocol : str
        The protocol it arrived in: ``json``, ``query``, ``ec2``, ``rest-json``, ``rest-xml``.
    operation : OperationModel
        The operation called.
    params : Any
        The input, as botocore's client took it (members by their model names).
    unchecked : frozenset
        Top-level members that could not be decoded (REST XML bodies): not checked.
    """

    service: str
    protocol: str
    operation: OperationModel
    params: Any
    unchecked: frozenset[str] = field(default_factory=frozenset)


def decode(environ: dict[str, Any], body: bytes) -> Request | None:
    """The request in a WSGI ``environ`` (``body`` already read), or ``None`` if unknown.

    Unknown: unsigned, a service botocore has no model of, an operation not identified
    (ambiguous REST route), or a protocol not decoded (CBOR).

    Raises
    ------
    ValueError
        The body is not valid JSON (JSON protocols).
    """
    signing = _signing_name(environ)
    model = _service_model(signing) if signing else None
    if model is None:
        return None
    target = environ.get("HTTP_X_AMZ_TARGET")
    if target:
        prefix, _, action = target.rpartition(".")
        if prefix != model.metadata.get("targetPrefix") or action not in _operations(model):
            return None
        operation = model.operation_model(action)
        params = json.loads(body) if body.strip() else {}
        if operation.input_shape is not None:
            params = _from_json(operation.input_shape, params)
        return Request(model.service_name, "json", operation, params)
    if model.protocol in ("query", "ec2") or "query" in model.metadata.get("protocols", ()):
        return _query(model, environ, body)
    if model.protocol in ("rest-json", "rest-xml"):
        return _rest(model, environ, body)
    return None


def read_body(environ: dict[str, Any]) -> bytes:
    """The request's body, read once: ``wsgi.input`` is replaced with a copy, for the
    application after us. Empty where decoding needs none (S3 uploads stream on)."""
    if not needs_body(environ):
        return b""
    stream = environ["wsgi.input"]
    if environ.get("wsgi.input_terminated"):  # chunked, no Content-Length: to EOF
        body = stream.read()
    else:
        body = stream.read(int(environ.get("CONTENT_LENGTH") or 0))
    environ["wsgi.input"] = io.BytesIO(body)
    return body


def needs_body(environ: dict[str, Any]) -> bool:
    """Whether decoding reads the body (JSON and query protocols; not S3 uploads)."""
    signing = _signing_name(environ)
    model = _service_model(signing) if signing else None
    return model is not None and model.protocol != "rest-xml"


def _signing_name(environ: dict[str, Any]) -> str | None:
    found = _SCOPE.search(environ.get("HTTP_AUTHORIZATION", ""))
    if found:
        return found.group(1)
    credential = parse_qs(environ.get("QUERY_STRING", "")).get("X-Amz-Credential")
    return credential[0].split("/")[3] if credential and credential[0].count("/") >= 4 else None


@functools.cache
def _service_model(signing: str) -> ServiceModel | None:
    try:
        return _session().get_service_model(SIGNING_ALIASES.get(signing, signing))
    except UnknownServiceError:
        return None


@functools.lru_cache(maxsize=1)
def _session() -> botocore.session.Session:
    return botocore.session.get_session()


@functools.cache
def _operations(model: ServiceModel) -> frozenset[str]:
    return frozenset(model.operation_names)


# -- query and EC2 protocols ---------------------------------------------------------------


def _query(model: ServiceModel, environ: dict[str, Any], body: bytes) -> Request | None:
    pairs = parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    if "x-www-form-urlencoded" in environ.get("CONTENT_TYPE", ""):
        pairs += parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
    form = dict(pairs)
    action = form.get("Action")
    if action not in _operations(model):
        return None
    operation = model.operation_model(action)
    ec2 = model.protocol == "ec2"
    shape = operation.input_shape
    params = _query_value(shape, form, "", ec2) if shape is not None else {}
    return Request(
        model.service_name,
        "ec2" if ec2 else "query",
        operation,
        {} if params is _MISSING else params,
    )


def _query_value(shape: Shape, form: dict[str, str], key: str, ec2: bool) -> Any:
    # botocore builds each of these shape classes from its type name (ShapeResolver).
    if isinstance(shape, StructureShape):
        prefix = f"{key}." if key else ""
        if key and not any(k.startswith(prefix) for k in form):
            return _MISSING
        members = {}
        for name, member in shape.members.items():
            value = _query_value(member, form, prefix + _query_name(name, member, ec2), ec2)
            if value is not _MISSING:
                members[name] = value
        return members
    if isinstance(shape, ListShape):
        if form.get(key) == "":
            return []
        base = _list_prefix(shape, key, ec2)
        items: list[Any] = []
        while (
            item := _query_value(shape.member, form, f"{base}.{len(items) + 1}", ec2)
        ) is not _MISSING:
            items.append(item)
        return items or _MISSING
    if isinstance(shape, MapShape):
        base = key if shape.serialization.get("flattened") else f"{key}.entry"
        names = (
            shape.key.serialization.get("name", "key"),
            shape.value.serialization.get("name", "value"),
        )
        entries: dict[str, Any] = {}
        while (k := form.get(f"{base}.{len(entries) + 1}.{names[0]}")) is not None:
            value = _query_value(shape.value, form, f"{base}.{len(entries) + 1}.{names[1]}", ec2)
            entries[k] = None if value is _MISSING else value
        return entries or _MISSING
    if key not in form:
        return _MISSING
    return _scalar(shape, form[key])


def _query_name(name: str, member: Shape, ec2: bool) -> str:
    if not ec2:
        return member.serialization.get("name", name)
    if "queryName" in member.serialization:
        return member.serialization["queryName"]
    wire = member.serialization.get("name", name)
    return wire[0].upper() + wire[1:]


def _list_prefix(shape: ListShape, key: str, ec2: bool) -> str:
    if ec2:
        return key
    if shape.serialization.get("flattened"):
        name = shape.member.serialization.get("name")
        return ".".join([*key.split(".")[:-1], name]) if name else key
    return f"{key}.{shape.member.serialization.get('name', 'member')}"


def _scalar(shape: Shape, text: str) -> Any:
    """A query string, URI or header value as its shape's type; as text if it is not one."""
    kind = shape.type_name
    try:
        if kind in ("integer", "long"):
            return int(text)
        if kind in ("float", "double"):
            return float(text)
    except ValueError:
        return text
    if kind == "boolean" and text in ("true", "false"):
        return text == "true"
    return text


# -- REST protocols ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Route:
    operation: str
    method: str
    path: re.Pattern[str]
    labels: tuple[str, ...]
    query: tuple[tuple[str, str], ...]
    literal: int  # characters of the path template outside labels


@functools.cache
def _routes(model: ServiceModel) -> tuple[_Route, ...]:
    routes = []
    for name in model.operation_names:
        http = model.operation_model(name).http
        path, _, query = http.get("requestUri", "/").partition("?")
        labels, parts, last = [], [], 0
        for found in _LABEL.finditer(path):
            parts += [re.escape(path[last : found.start()]), "(.+)" if found[2] else "([^/]+)"]
            labels.append(found[1])
            last = found.end()
        parts.append(re.escape(path[last:].rstrip("/")))
        literal = len(_LABEL.sub("", path))
        routes.append(
            _Route(
                name,
                http.get("method", "POST"),
                re.compile("".join(parts) + "/?"),
                tuple(labels),
                tuple(parse_qsl(query, keep_blank_values=True)),
                literal,
            )
        )
    return tuple(routes)


def _rest(model: ServiceModel, environ: dict[str, Any], body: bytes) -> Request | None:
    path = environ.get("PATH_INFO", "/").encode("latin-1").decode("utf-8", "replace")
    query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    method = environ.get("REQUEST_METHOD", "GET")
    matches = []
    for route in _routes(model):
        found = route.path.fullmatch(path) if route.method == method else None
        if found and all(k in query and (not v or v in query[k]) for k, v in route.query):
            matches.append(((len(route.query), route.literal), route, found))
    if not matches:
        return None
    matches.sort(key=lambda m: m[0], reverse=True)
    if len(matches) > 1 and matches[0][0] == matches[1][0]:
        return None  # ambiguous: never refuse a request we cannot name
    _, route, found = matches[0]
    operation = model.operation_model(route.operation)
    shape = operation.input_shape
    if shape is None:
        return Request(model.service_name, model.protocol, operation, {})
    labels = dict(zip(route.labels, found.groups(), strict=True))
    params, unchecked = _rest_members(shape, labels, query, environ)
    if model.protocol == "rest-json":
        payload = shape.serialization.get("payload")
        document = json.loads(body) if body.strip() else {}
        if payload and shape.members[payload].type_name == "structure":
            params[payload] = _from_json(shape.members[payload], document)
        elif payload:
            unchecked.add(payload)
        elif isinstance(document, dict):
            members = _from_json(shape, document)
            params.update({name: members[name] for name in unchecked if name in members})
            unchecked = set()
    return Request(model.service_name, model.protocol, operation, params, frozenset(unchecked))


def _rest_members(
    shape: StructureShape,
    labels: dict[str, str],
    query: dict[str, list[str]],
    environ: dict[str, Any],
) -> tuple[dict[str, Any], set[str]]:
    """Members bound to the URI, query string and headers; the names of the others."""
    params: dict[str, Any] = {}
    others: set[str] = set()
    for name, member in shape.members.items():
        location = member.serialization.get("location")
        wire = member.serialization.get("name", name)
        value: Any = _MISSING
        if location == "uri" and wire in labels:
            value = _scalar(member, labels[wire])
        elif location == "querystring" and wire in query:
            if isinstance(member, ListShape):
                value = [_scalar(member.member, v) for v in query[wire]]
            elif member.type_name != "map":
                value = _scalar(member, query[wire][0])
        elif location == "header":
            header = environ.get("HTTP_" + wire.upper().replace("-", "_"))
            if header is not None and member.type_name != "list":
                value = _scalar(member, header)
        elif location is None:
            others.add(name)
        if value is not _MISSING:
            params[name] = value
    return params, others


def _from_json(shape: Shape, value: Any) -> Any:
    """A JSON document with members renamed from their wire names to the model's."""
    if isinstance(shape, StructureShape) and isinstance(value, dict) and not shape.is_document_type:
        members = {}
        for name, member in shape.members.items():
            key = member.serialization.get("name", name)
            if key in value:
                members[name] = _from_json(member, value[key])
        return members
    if isinstance(shape, ListShape) and isinstance(value, list):
        return [_from_json(shape.member, item) for item in value]
    if isinstance(shape, MapShape) and isinstance(value, dict):
        return {key: _from_json(shape.value, item) for key, item in value.items()}
    return value
