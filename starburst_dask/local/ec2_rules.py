"""EC2 as the local Fargate serves it: moto's EC2 with AWS's documented character sets.

:func:`install` wraps moto's EC2 backend so that CreateSecurityGroup refuses names and
descriptions outside EC2's allowed characters and tagging refuses reserved or oversized
tags, with EC2's error codes (rules and sources in :mod:`.limits`).
"""

from __future__ import annotations

from typing import Any

from moto.ec2.exceptions import EC2ClientError
from moto.ec2.models import EC2Backend

from . import limits

#: EC2's answer to a reserved tag key, verbatim ("Tag keys starting with 'aws:' are
#: reserved for internal use", InvalidParameterValue; EC2 "Tag your Amazon EC2 resources",
#: tag restrictions).
RESERVED_KEY = (
    "Value ( {key} ) for parameter key is invalid. Tag keys starting with 'aws:' "
    "are reserved for internal use"
)

_originals: dict[str, Any] = {}


def install() -> None:
    """Check EC2 requests until :func:`uninstall`."""
    _originals.update(
        create_security_group=EC2Backend.create_security_group, create_tags=EC2Backend.create_tags
    )
    EC2Backend.create_security_group = _create_security_group  # type: ignore[method-assign]
    EC2Backend.create_tags = _create_tags  # type: ignore[method-assign]


def uninstall() -> None:
    """Restore moto's EC2 backend."""
    for name, method in _originals.items():
        setattr(EC2Backend, name, method)
    _originals.clear()


def _create_security_group(
    self: Any, name: str, description: str, *args: Any, **kwargs: Any
) -> Any:
    limits.check_security_group_text(name, description)
    return _originals["create_security_group"](self, name, description, *args, **kwargs)


def _create_tags(self: Any, resource_ids: list[str], tags: dict[str, str]) -> bool:
    for key in tags:
        if key.lower().startswith(limits.RESERVED_TAG_PREFIX):
            raise EC2ClientError("InvalidParameterValue", RESERVED_KEY.format(key=key))
    limits.check_tags(
        [(k, v or "") for k, v in tags.items() if k],
        lambda message: EC2ClientError("InvalidParameterValue", message),
    )
    return _originals["create_tags"](self, resource_ids, tags)
