"""Launch 500 lightweight tasks through the cluster's launcher on the local Fargate.

AWS's default rate limits are on (Fargate task launches: a burst of 100, then 20 a
second), so no launcher can start 500 tasks in less than (500 - 100) / 20 = 20 s. This
measures the launcher against that floor, in one run: the ratio of its launch time to
the floor, and the throttling errors the emulator answered (none should reach a user:
the launcher paces itself and retries).

Run: ``python benchmarks/launch_rate.py [--tasks 500]``; writes
``docs/benchmarks/launch_rate.md`` and ``launch_rate.png``.
"""

from __future__ import annotations

import argparse
import asyncio
import pathlib
import platform
import time

from aiobotocore.session import get_session

from starburst_dask import fargate
from starburst_dask.ecs import tasks
from starburst_dask.ecs.launcher import TaskLauncher
from starburst_dask.local import LocalFargate

OUT = pathlib.Path(__file__).resolve().parent.parent / "docs" / "benchmarks"
FAMILY = "benchmark-sleeper"
#: An image the local Fargate knows (Docker's python image of this interpreter's version).
PYTHON_IMAGE = f"python:{'.'.join(platform.python_version_tuple()[:2])}"


def floor_seconds(count: int) -> float:
    """The least time AWS's task-launch bucket allows for ``count`` launches."""
    burst, rate = fargate.RATE_LIMITS["fargate-task-launches"]
    return max(0.0, (count - burst) / rate)


async def launch(aws: LocalFargate, count: int) -> tuple[float, list[float]]:
    """Seconds to launch ``count`` tasks, and when each RunTask call returned."""
    session = get_session()
    async with (
        session.create_client("ecs", region_name=aws.region) as ecs,
        session.create_client("ec2", region_name=aws.region) as ec2,
    ):
        subnets = [s["SubnetId"] for s in (await ec2.describe_subnets())["Subnets"]]
        definition = (
            await ecs.register_task_definition(
                family=FAMILY,
                requiresCompatibilities=["FARGATE"],
                networkMode="awsvpc",
                cpu="256",
                memory="512",
                containerDefinitions=[{"name": tasks.CONTAINER, "image": PYTHON_IMAGE}],
            )
        )["taskDefinition"]["taskDefinitionArn"]
        launcher = TaskLauncher(
            ecs,
            "starburst-dask",
            definition,
            subnets=subnets,
            security_groups=[],
            assign_public_ip=True,
            started_by="benchmark",
            deadline=300,
        )
        returned: list[float] = []
        original = launcher._run_task

        async def timed(*args, **kwargs):
            result = await original(*args, **kwargs)
            returned.extend([time.perf_counter()] * len(result[0]))
            return result

        launcher._run_task = timed  # type: ignore[method-assign]
        start = time.perf_counter()
        result = await launcher.run(
            count, command=["true"], cpu=256, memory=512, environment={}, tags=[]
        )
        elapsed = time.perf_counter() - start
        assert len(result.arns) == count, result
        return elapsed, sorted(t - start for t in returned)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=500)
    count = parser.parse_args().tasks
    with LocalFargate(vcpu_quota=count) as aws:  # room for all: this measures rates only
        elapsed, returned = asyncio.run(launch(aws, count))
        throttled = aws.throttled_calls
        calls = aws.calls["RunTask"]
    floor = floor_seconds(count)
    ratio = elapsed / floor if floor else float("nan")
    OUT.mkdir(parents=True, exist_ok=True)
    report = f"""# Launch rate: {count} tasks through `TaskLauncher` on the local Fargate

Baseline: the rate-limit floor, ({count} - 100) / 20 = {floor:.1f} s (AWS's Fargate
task-launch bucket: burst 100, refill 20/s; enforced by the local Fargate).

| measure | value |
|---|---|
| launch time (all RunTask calls answered) | {elapsed:.2f} s |
| ratio to the floor (target <= 1.2) | **{ratio:.3f}** |
| RunTask calls | {calls} |
| calls the local Fargate throttled (retried, never surfaced) | {throttled} |

Written by `python benchmarks/launch_rate.py --tasks {count}` (2-core machine).
![tasks launched over time](launch_rate.png)
"""
    (OUT / "launch_rate.md").write_text(report)
    _plot(returned, count, floor)
    print(report)


def _plot(returned: list[float], count: int, floor: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    burst, rate = fargate.RATE_LIMITS["fargate-task-launches"]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.step(returned, range(1, len(returned) + 1), where="post", label="launched (measured)")
    ax.plot([0, floor], [burst, count], "--", label="rate-limit floor")
    ax.set_xlabel("seconds")
    ax.set_ylabel("tasks launched")
    ax.set_title(f"{count} Fargate task launches under AWS's rate limits")
    ax.legend()
    fig.tight_layout()
    fig.savefig(OUT / "launch_rate.png", dpi=100)


if __name__ == "__main__":
    main()
