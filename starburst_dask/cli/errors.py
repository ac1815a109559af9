"""How the ``starburst-dask`` command reports a failure: one line on stderr, no traceback.

Every command runs inside :class:`ReportingGroup`: an error a user can cause (the
project's own, AWS's with its error code, an unreachable endpoint, missing credentials or
region, a malformed dask config file, a port in use) ends in ``Error: ...`` and exit code
1; a bad argument in ``Error: ...`` naming the ``--help`` to read, and exit code 2 (click's).
``--debug`` (or ``STARBURST_DASK_DEBUG=1``) shows the traceback instead.
"""

from __future__ import annotations

import os
from typing import Any

import click

#: Set to 1 for tracebacks, as ``--debug`` does.
DEBUG_VAR = "STARBURST_DASK_DEBUG"

#: The fix to add to errors whose own words do not say it, by exception class name
#: (botocore's, matched by name so that the command imports botocore only when needed).
FIXES = {
    "NoCredentialsError": "configure credentials as for the AWS CLI (aws configure, "
    "AWS_PROFILE or AWS_ACCESS_KEY_ID)",
    "NoRegionError": "pass --region, or set AWS_DEFAULT_REGION or the region of your profile",
    "EndpointConnectionError": "check the network, or AWS_ENDPOINT_URL if you set one (a "
    "local Fargate that has stopped?)",
    "ConnectTimeoutError": "check the network, or AWS_ENDPOINT_URL if you set one",
}


class ReportingGroup(click.Group):
    """A click group whose commands' errors end in one ``Error:`` line (see module)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.UsageError as e:
            raise OneLineUsageError(e.format_message(), e.ctx) from None
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as e:
            if debugging(ctx):
                raise
            raise click.ClickException(describe(e)) from None


class OneLineUsageError(click.UsageError):
    """A bad argument, said in one line (click's usage text lives in ``--help``)."""

    def show(self, file: Any = None) -> None:
        where = f" (see '{self.ctx.command_path} --help')" if self.ctx is not None else ""
        click.echo(f"Error: {self.format_message()}{where}", file=file, err=file is None)


def debugging(ctx: click.Context) -> bool:
    """Whether to show tracebacks: ``--debug`` on the command, or :data:`DEBUG_VAR`."""
    return bool(ctx.find_root().params.get("debug")) or os.environ.get(DEBUG_VAR) == "1"


def describe(error: Exception) -> str:
    """One line for ``error``: its own words, with the fix where they lack it."""
    from ..errors import StarburstError

    if isinstance(error, StarburstError):
        return str(error)
    # One line: YAML's errors, for one, point at the fault over several.
    lines = (line.strip() for line in str(error).splitlines())
    text = " ".join(line for line in lines if line.strip("^ ")) or type(error).__name__
    fix = next((f for c in type(error).__mro__ if (f := FIXES.get(c.__name__))), None)
    if fix:
        return f"{text}: {fix}"
    if _is_aws(error) or isinstance(error, OSError | ValueError):
        return text  # AWS's words keep their error code; OS and config errors name the file
    return f"{type(error).__name__}: {text} (run with --debug for the traceback)"


def _is_aws(error: Exception) -> bool:
    return type(error).__module__.startswith(("botocore.", "aiobotocore."))
