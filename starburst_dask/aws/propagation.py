"""Calls retried while AWS propagates a new or changed IAM role.

IAM is eventually consistent: a role just created is refused by the services that assume
it for seconds ("Changes that I make are not always immediately visible", IAM user
guide). Their answers then contain known texts (:mod:`.fargate`); such a call is retried
for at most :data:`~.fargate.IAM_PROPAGATION_WAIT` seconds, with one line saying so.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from botocore.exceptions import ClientError

from .. import fargate

#: Seconds between attempts while AWS propagates a new role.
RETRY_DELAY = 2.0


def while_propagating(
    call: Callable[..., Any],
    errors: Sequence[str],
    what: str,
    notify: Callable[[str], None],
    **kwargs: Any,
) -> Any:
    """``call(**kwargs)``, retried while its error contains one of ``errors``.

    Parameters
    ----------
    call : callable
        A boto3 client method.
    errors : sequence of str
        Texts of the service's answers while it cannot use the role yet.
    what : str
        The role waited for, as the one line ``notify`` receives names it ("the ECS
        service-linked role AWSServiceRoleForECS").
    notify : callable
        Receives one line when the first attempt is refused.

    Raises
    ------
    botocore.exceptions.ClientError
        Any other error, or the same one after :data:`~.fargate.IAM_PROPAGATION_WAIT`.
    """
    deadline = time.monotonic() + fargate.IAM_PROPAGATION_WAIT
    told = False
    while True:
        try:
            return call(**kwargs)
        except ClientError as e:
            if not any(t in str(e) for t in errors) or time.monotonic() > deadline:
                raise
        if not told:
            notify(
                f"Waiting (up to {fargate.IAM_PROPAGATION_WAIT:g} s) for AWS to propagate {what}..."
            )
            told = True
        time.sleep(RETRY_DELAY)
