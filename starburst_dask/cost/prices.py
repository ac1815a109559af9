"""Fargate prices: from the AWS Price List API, cached on disk, else the published table.

The Price List API (``pricing:GetProducts``, endpoints in us-east-1, eu-central-1 and
ap-south-1 only: the nearest is asked) gives a region's
On-Demand rates per vCPU-hour and GB-hour for x86_64 and ARM64, and per GB-hour of extra
ephemeral storage. Answers are cached for :data:`CACHE_MAX_AGE` seconds, per region and
endpoint. When the API is unreachable or denied, a stale cache or else the table in
:mod:`starburst_dask.fargate` is used, and :attr:`Prices.source` says which.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from .. import fargate
from ..errors import ConfigurationError
from ..format import format_duration

logger = logging.getLogger(__name__)

#: Seconds a cached Price List answer is used without asking again (prices change rarely).
CACHE_MAX_AGE = 7 * 24 * 3600
#: Environment variable that overrides the cache directory (tests use it).
CACHE_DIR_VAR = "STARBURST_DASK_CACHE_DIR"


class PriceListError(Exception):
    """The Price List API answered, but without every Fargate price we need."""


@dataclasses.dataclass(frozen=True)
class Prices:
    """Fargate rates for one region, in US dollars.

    Attributes
    ----------
    region : str
        The region the rates are for.
    rates : dict
        ``X86_64-vCPU``, ``X86_64-GB``, ``ARM64-vCPU``, ``ARM64-GB`` (per hour) and
        ``storage-GB`` (per GB-hour beyond the included ephemeral storage).
    spot_discount : float
        Fraction taken off On-Demand rates for Spot tasks.
    source : str
        Where the rates come from, for the user to judge them.
    """

    region: str
    rates: dict[str, float]
    spot_discount: float
    source: str

    def task_rate(
        self,
        cpu: int,
        memory: int,
        *,
        architecture: str = "X86_64",
        spot: bool = False,
        storage_gib: float = fargate.EPHEMERAL_STORAGE_INCLUDED_GIB,
    ) -> float:
        """US dollars per hour for one task of this size.

        Parameters
        ----------
        cpu, memory : int
            Task size in CPU units (1024 = 1 vCPU) and MiB.
        architecture : {"X86_64", "ARM64"}
            CPU architecture.
        spot : bool
            Whether the task runs on ``FARGATE_SPOT``.
        storage_gib : float
            Ephemeral storage of the task; what exceeds the included 20 GiB is billed.
        """
        arch = (
            architecture.upper()
            if architecture.upper() in fargate.ARCHITECTURES
            else fargate.ARCHITECTURES[0]
        )
        compute = (
            fargate.vcpus(cpu) * self.rates[f"{arch}-vCPU"]
            + memory / 1024 * self.rates[f"{arch}-GB"]
        )
        if spot:
            compute *= 1 - self.spot_discount
        extra_storage = max(0.0, storage_gib - fargate.EPHEMERAL_STORAGE_INCLUDED_GIB)
        return compute + extra_storage * self.rates["storage-GB"]


def load(region: str, *, spot_discount: float, max_age: float = CACHE_MAX_AGE) -> Prices:
    """The Fargate prices of ``region``: cached, else from the API, else the table.

    Never raises for an unreachable or denied API: the published table stands in.

    Parameters
    ----------
    region : str
        AWS region whose prices to load.
    spot_discount : float
        Fraction taken off On-Demand rates for Spot tasks.
    max_age : float
        Seconds a cached answer stays fresh.
    """
    path = _cache_path(region)
    cached = _read_cache(path)
    age = time.time() - cached["fetched_at"] if cached else None
    if cached and age is not None and 0 <= age < max_age:
        return Prices(
            region,
            cached["rates"],
            spot_discount,
            f"AWS Price List API, cached {format_duration(age)} ago",
        )
    try:
        rates = fetch(region)
    except Exception as e:  # noqa: BLE001 - any failure falls back to published figures
        why = f"{type(e).__name__}: {e}"
        if cached:
            ago = format_duration(age or 0)
            logger.info("Price List API failed (%s); using prices cached %s ago", why, ago)
            return Prices(
                region,
                cached["rates"],
                spot_discount,
                f"AWS Price List API, cached {ago} ago (API failed)",
            )
        logger.info("Price List API failed (%s); using the published table", why)
        return published(region, spot_discount, why)
    _write_cache(path, rates)
    return Prices(region, rates, spot_discount, "AWS Price List API")


def spot_discount(discount: Any) -> float:
    """``discount`` (option ``cost_spot_discount``, config ``starburst.cost.spot-discount``),
    checked.

    Raises
    ------
    ConfigurationError
        If it is not a fraction from 0 to below 1.
    """
    if (
        isinstance(discount, bool)
        or not isinstance(discount, (int, float))
        or not 0 <= discount < 1
    ):
        raise ConfigurationError(
            f"starburst.cost.spot-discount must be a fraction from 0 to below 1 "
            f"(AWS advertises up to {fargate.SPOT_DISCOUNT_ADVERTISED:.0%}), "
            f"got {discount!r}"
        )
    return float(discount)


def published(region: str, spot_discount: float, why: str = "") -> Prices:
    """Prices from the table in :mod:`starburst_dask.fargate`, with its date."""
    rates = fargate.PUBLISHED_PRICES.get(region)
    source = f"published prices of {fargate.PUBLISHED_PRICES_DATE}"
    if rates is None:
        rates = fargate.PUBLISHED_PRICES["us-east-1"]
        source = f"published us-east-1 prices of {fargate.PUBLISHED_PRICES_DATE}"
    if why:
        source += " (Price List API unavailable)"
    return Prices(region, dict(rates), spot_discount, source)


def fetch(region: str) -> dict[str, float]:
    """Ask the Price List API for ``region``'s Fargate rates.

    Raises
    ------
    PriceListError
        If an expected usage type is missing from the answer.
    botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError
        If the API cannot be reached or denies the call.
    """
    import boto3

    from ..aws.clients import client_config

    # Short timeouts and few retries: a cluster start must not hang on a price lookup.
    config = client_config(
        connect_timeout=3, read_timeout=10, retries={"max_attempts": 2, "mode": "standard"}
    )
    client = boto3.client("pricing", region_name=fargate.pricing_region(region), config=config)
    pages = client.get_paginator("get_products").paginate(
        ServiceCode=fargate.PRICING_SERVICE_CODE,
        Filters=[{"Type": "TERM_MATCH", "Field": "regionCode", "Value": region}],
        FormatVersion="aws_v1",
    )
    rates: dict[str, float] = {}
    for page in pages:
        for item in page["PriceList"]:
            product = json.loads(item) if isinstance(item, str) else item
            usage_type = product["product"]["attributes"].get("usagetype", "")
            key = fargate.PRICE_USAGE_TYPES.get(usage_type.split("-", 1)[-1])
            if key is not None:
                rates[key] = on_demand_usd(product)
    missing = sorted(set(fargate.PRICE_USAGE_TYPES.values()) - set(rates))
    if missing:
        raise PriceListError(f"no {', '.join(missing)} price for {region}")
    return rates


def on_demand_usd(product: dict[str, Any]) -> float:
    """The On-Demand USD price per unit of a Price List product."""
    for term in product["terms"]["OnDemand"].values():
        for dimension in term["priceDimensions"].values():
            return float(dimension["pricePerUnit"]["USD"])
    raise PriceListError(f"no On-Demand price for {product['product'].get('sku')}")


def cache_dir() -> Path:
    """Where price answers are cached: ``$STARBURST_DASK_CACHE_DIR``, else the user cache."""
    if os.environ.get(CACHE_DIR_VAR):
        return Path(os.environ[CACHE_DIR_VAR])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "starburst-dask"


def _cache_path(region: str) -> Path:
    # Answers from another endpoint (a local Fargate) must not stand in for AWS's.
    endpoint = os.environ.get("AWS_ENDPOINT_URL", "aws")
    tag = "".join(c if c.isalnum() else "_" for c in endpoint)[:80]
    return cache_dir() / f"prices-{region}-{tag}.json"


def _read_cache(path: Path) -> dict[str, Any] | None:
    try:
        cached = json.loads(path.read_text())
        rates = {k: float(cached["rates"][k]) for k in fargate.PRICE_USAGE_TYPES.values()}
        return {"rates": rates, "fetched_at": float(cached["fetched_at"])}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write_cache(path: Path, rates: dict[str, float]) -> None:
    with contextlib.suppress(OSError):  # a read-only home must not stop a cluster
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"fetched_at": time.time(), "rates": rates}))
        tmp.replace(path)
