"""The AWS Price List API for the local Fargate, from the published table.

moto has no pricing backend (it answers 500), and its server picks a backend by the
request's host or signing name, which for ``pricing`` matches none. So
:class:`PriceListMiddleware` wraps moto's WSGI app: requests whose ``X-Amz-Target`` is
``AWSPriceListService.*`` (the JSON protocol the SDKs use) are answered here, with
products in AWS's format built from :data:`starburst_dask.fargate.PUBLISHED_PRICES`;
everything else goes to moto.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from .. import fargate
from . import limits
from .wsgi import drop, json_answer, signed_region

TARGET_PREFIX = "AWSPriceListService."
#: The region in a SigV4 ``Authorization`` header's credential scope.
_OFFER_TERM = "JRTCKXETXF"  # AWS's code of the On-Demand offer term
_RATE_CODE = "6YS6EN2CT7"
_UNITS = {"vCPU": "hours", "GB": "GB-Hours"}

#: Price List actions received, by name (for tests).
calls: Counter[str] = Counter()


class PriceListMiddleware:
    """WSGI middleware answering the Price List API; other requests go to ``app``.

    Parameters
    ----------
    app : callable
        The WSGI app to pass other requests to (moto's dispatcher).
    """

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if not target.startswith(TARGET_PREFIX):
            return self.app(environ, start_response)
        region = signed_region(environ)
        if region and region not in limits.PRICING_REGIONS:
            # No Price List endpoint exists there: a client cannot connect at all.
            calls["refused"] += 1
            return drop(environ, start_response)
        action = target[len(TARGET_PREFIX) :]
        calls[action] += 1
        length = int(environ.get("CONTENT_LENGTH") or 0)
        try:
            request = json.loads(environ["wsgi.input"].read(length) or b"{}")
            status, body = 200, answer(action, request)
        except RequestError as e:
            status, body = 400, {"__type": e.code, "Message": str(e)}
        return json_answer(start_response, status, body)


class RequestError(Exception):
    """A request AWS would refuse; ``code`` is the AWS error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def install(server: Any) -> None:
    """Answer the Price List API on a running ``moto.server.ThreadedMotoServer``."""
    wsgi = server._server  # the werkzeug server; its ``app`` is moto's dispatcher
    if not isinstance(wsgi.app, PriceListMiddleware):
        wsgi.app = PriceListMiddleware(wsgi.app)


def answer(action: str, request: dict[str, Any]) -> dict[str, Any]:
    """The JSON answer to a Price List ``action``."""
    if action == "GetProducts":
        return get_products(request)
    if action == "DescribeServices":
        return {
            "Services": [
                {
                    "ServiceCode": fargate.PRICING_SERVICE_CODE,
                    "AttributeNames": ["regionCode", "usagetype", "location"],
                }
            ],
            "FormatVersion": "aws_v1",
        }
    raise RequestError(
        "UnknownOperationException", f"The local Fargate does not implement {action}"
    )


def get_products(request: dict[str, Any]) -> dict[str, Any]:
    """GetProducts: filtered and paged, as AWS answers it (products as JSON strings)."""
    code = request.get("ServiceCode")
    if not code:
        raise RequestError("InvalidParameterException", "ServiceCode is required")
    found = [
        p
        for p in products()
        if code == fargate.PRICING_SERVICE_CODE
        and all(_matches(p, f) for f in request.get("Filters") or [])
    ]
    size = int(request.get("MaxResults") or 100)
    token = request.get("NextToken") or "0"
    if not token.isdigit() or not 1 <= size <= 100:
        raise RequestError("InvalidParameterException", "invalid NextToken or MaxResults")
    start = int(token)
    answer: dict[str, Any] = {
        "FormatVersion": "aws_v1",
        "PriceList": [json.dumps(p) for p in found[start : start + size]],
    }
    if start + size < len(found):
        answer["NextToken"] = str(start + size)
    return answer


def products() -> list[dict[str, Any]]:
    """Every Fargate product of every region with a usage type prefix."""
    return [
        _product(region, prefix, usage, key)
        for region, prefix in fargate.USAGE_TYPE_PREFIXES.items()
        for usage, key in fargate.PRICE_USAGE_TYPES.items()
    ]


def _product(region: str, prefix: str, usage: str, key: str) -> dict[str, Any]:
    rates = fargate.PUBLISHED_PRICES.get(region, fargate.PUBLISHED_PRICES["us-east-1"])
    usage_type = f"{prefix}-{usage}"
    sku = hashlib.sha1(usage_type.encode()).hexdigest()[:16].upper()
    term = f"{sku}.{_OFFER_TERM}"
    price = f"{rates[key]:.10f}"
    return {
        "product": {
            "productFamily": "Compute",
            "attributes": {
                "servicecode": fargate.PRICING_SERVICE_CODE,
                "regionCode": region,
                "location": region,
                "locationType": "AWS Region",
                "usagetype": usage_type,
                "operation": "",
                "servicename": "Amazon Elastic Container Service",
            },
            "sku": sku,
        },
        "serviceCode": fargate.PRICING_SERVICE_CODE,
        "terms": {
            "OnDemand": {
                term: {
                    "priceDimensions": {
                        f"{term}.{_RATE_CODE}": {
                            "unit": _UNITS.get(key.rsplit("-", 1)[-1], "GB-Hours"),
                            "endRange": "Inf",
                            "description": f"AWS Fargate - {usage_type}",
                            "appliesTo": [],
                            "rateCode": f"{term}.{_RATE_CODE}",
                            "beginRange": "0",
                            "pricePerUnit": {"USD": price},
                        }
                    },
                    "sku": sku,
                    "effectiveDate": f"{fargate.PUBLISHED_PRICES_DATE}T00:00:00Z",
                    "offerTermCode": _OFFER_TERM,
                    "termAttributes": {},
                }
            }
        },
        "version": fargate.PUBLISHED_PRICES_DATE.replace("-", ""),
        "publicationDate": f"{fargate.PUBLISHED_PRICES_DATE}T00:00:00Z",
    }


def _matches(product: dict[str, Any], flt: dict[str, str]) -> bool:
    """Whether a product passes a GetProducts filter (TERM_MATCH, EQUALS, CONTAINS, ...)."""
    attributes = product["product"]["attributes"]
    field = flt.get("Field", "")
    value = attributes.get(field, product.get(field, ""))
    wanted = flt.get("Value", "")
    kind = flt.get("Type", "TERM_MATCH")
    if kind in ("TERM_MATCH", "EQUALS"):
        return value == wanted
    if kind == "CONTAINS":
        return wanted in value
    if kind == "ANY_OF":
        return value in wanted.split(",")
    if kind == "NONE_OF":
        return value not in wanted.split(",")
    raise RequestError("InvalidParameterException", f"unknown filter type {kind}")
