"""``python -m starburst_dask.local [--port N] [--region R]``: run a local Fargate."""

import argparse

from .server import DEFAULT_REGION, serve

parser = argparse.ArgumentParser(prog="python -m starburst_dask.local", description=__doc__)
parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: a free one)")
parser.add_argument("--region", default=DEFAULT_REGION, help="AWS region for clients")
args = parser.parse_args()
serve(args.port, args.region)
