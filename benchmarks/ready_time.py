"""Time to N connected workers: starburst-dask and dask-cloudprovider on one local Fargate.

One local Fargate with AWS-like task latencies (``latency="aws"``: ENI 8-20 s, the image
pulled at 7-12 MB/s, DEPROVISIONING 30-60 s; ``docs/local-fargate.md``) and AWS's rate
limits serves both cluster managers, one trial at a time, interleaved (the order rotates
each repetition). Each trial runs in a child process, the client: the time from creating
the cluster until ``client.wait_for_workers(N)`` returns, the time ``cluster.close()``
takes (the client closed before it, timed apart, as the baseline's closes untimed), the
client's CPU seconds and threads; the local Fargate counts the ECS calls by operation and
those it throttled. The baseline is no cluster manager: the same scheduler and worker
commands started by plain RunTask calls (the workers once the scheduler's address is
known), then StopTask on each task until every one is STOPPED: the local Fargate's own
time to start and stop the same tasks on this machine.

dask-cloudprovider (``pip install 'starburst-dask[bench]'``) is given what it would find
in an account: the ECS cluster, roles, log group, VPC, subnets and security group
``LocalFargate.prepare`` made, ``skip_cleanup=True``. Its tasks run ``dask-scheduler`` and
``dask-worker``, which distributed no longer installs (removed in 2026.6.0): they are
given as an image of the user's would add them to ``daskdev/dask``, two scripts running
``dask scheduler`` and ``dask worker``, on the tasks' ``PATH``.

Run: ``python benchmarks/ready_time.py [--sizes 1 4 16 64] [--repeats 3]``; writes
``docs/benchmarks/ready_time.md`` and ``ready_time.png``. ``--from-log FILE`` reports the
trials a run printed again, without running.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import pathlib
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from typing import Any

OUT = pathlib.Path(__file__).resolve().parent.parent / "docs" / "benchmarks"
PYTHON = ".".join(platform.python_version_tuple()[:2])
PRODUCTS = ("starburst-dask", "dask-cloudprovider")
#: Every kind of trial, and its name in the report: the baseline is no cluster manager.
KINDS = {**{p: p for p in PRODUCTS}, "baseline": "plain RunTask and StopTask (baseline)"}
#: Worker and scheduler sizes, the same for both (starburst-dask's defaults).
WORKER = {"cpu": 1024, "memory": 4096}
SCHEDULER = {"cpu": 1024, "memory": 2048}
#: The same sizes as starburst-dask options.
_SIZES: dict[str, Any] = {
    "worker_cpu": WORKER["cpu"],
    "worker_memory": WORKER["memory"],
    "scheduler_cpu": SCHEDULER["cpu"],
    "scheduler_memory": SCHEDULER["memory"],
}
#: Seconds between the baseline's DescribeTasks polls (the product's busy interval).
POLL = 0.5
#: Seconds a child may take for one trial before it counts as failed.
TRIAL_TIMEOUT = 1200
#: Room for every trial's tasks, those still DEPROVISIONING from the last one included.
QUOTA = 1000
_CONFIG_VAR = "STARBURST_BENCH_DCP"
#: The ECS calls counted in their own columns; the rest are listed by name.
MAIN_CALLS = ("RunTask", "DescribeTasks", "StopTask")
COLUMNS = (
    "N",
    "cluster manager",
    "ready (s)",
    "close (s)",
    "ECS calls: RunTask / DescribeTasks / StopTask",
    "other ECS calls",
    "throttled",
    "client CPU (s)",
    "CPU per worker (s)",
    "client threads",
    "machine CPU busy until ready (%)",
    "trials ok",
)


def dask_image() -> str:
    import dask

    return f"daskdev/dask:{dask.__version__}-py{PYTHON}"


# The client side: one trial in a child process.
def child(product: str, n: int) -> dict[str, Any]:
    """Start a cluster of ``n`` workers, wait for them, close it; what it took."""
    import threading

    from distributed import Client

    if product == "starburst-dask":
        from starburst_dask import FargateCluster

        def make() -> Any:
            return FargateCluster(
                n_workers=n,
                image=dask_image(),
                **_SIZES,
                confirm=False,  # 64 workers pass starburst.confirm.vcpus; no one to ask
            )
    else:
        from dask_cloudprovider.aws import FargateCluster as DcpCluster

        config = json.loads(os.environ[_CONFIG_VAR])

        def make() -> Any:
            return DcpCluster(
                n_workers=n,
                image=dask_image(),
                scheduler_cpu=SCHEDULER["cpu"],
                scheduler_mem=SCHEDULER["memory"],
                worker_cpu=WORKER["cpu"],
                worker_mem=WORKER["memory"],
                skip_cleanup=True,
                **config,
            )

    machine, cpu0, start = _machine_cpu(), time.process_time(), time.perf_counter()
    cluster = make()
    client = Client(cluster)
    client.wait_for_workers(n)
    ready, cpu_ready = time.perf_counter() - start, time.process_time() - cpu0
    busy = _busy_since(machine)
    threads = threading.active_count()
    # The client closes first and untimed, as the baseline's does: the close is the
    # cluster manager's, from ``cluster.close()`` until it returns.
    began = time.perf_counter()
    client.close()
    closing = time.perf_counter()
    cluster.close()
    closed = time.perf_counter()
    return {
        "ready": ready,
        "close": closed - closing,
        "client_close": closing - began,
        "cpu_ready": cpu_ready,
        "cpu_total": time.process_time() - cpu0,
        "threads": threads,
        "busy": busy,
    }


def _machine_cpu() -> tuple[int, int]:
    """This machine's busy and total CPU time so far (``/proc/stat``, all cores)."""
    fields = [int(v) for v in pathlib.Path("/proc/stat").read_text().split()[1:9]]
    idle = fields[3] + fields[4]  # idle, iowait
    return sum(fields) - idle, sum(fields)


def _busy_since(before: tuple[int, int]) -> float:
    """Percent of the machine's CPU time busy since ``before`` (every process's, the
    tasks' and the local Fargate's too): near 100, the machine is the limit."""
    busy, total = (now - then for now, then in zip(_machine_cpu(), before, strict=True))
    return 100 * busy / total if total else 0.0


# The local Fargate side.
def dcp_config(aws: Any, shims: str) -> dict[str, Any]:
    """What dask-cloudprovider is given: the account's resources, as prepare made them."""
    ecs, ec2, iam = aws.client("ecs"), aws.client("ec2"), aws.client("iam")
    [cluster] = ecs.describe_clusters(clusters=["starburst-dask"])["clusters"]
    vpc = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"][0]
    subnets = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}])
    role = iam.get_role
    return {
        "cluster_arn": cluster["clusterArn"],
        "execution_role_arn": role(RoleName="starburst-dask-execution")["Role"]["Arn"],
        "task_role_arn": role(RoleName="starburst-dask-task")["Role"]["Arn"],
        "cloudwatch_logs_group": "/starburst-dask",
        "vpc": vpc["VpcId"],
        "subnets": [s["SubnetId"] for s in subnets["Subnets"]],
        "security_groups": [aws.security_group],
        "environment": {"PATH": f"{shims}:/usr/local/bin:/usr/bin:/bin"},
    }


def write_shims(directory: str) -> str:
    """``dask-scheduler`` and ``dask-worker``, as an image that has them provides them."""
    for name, command in (("dask-scheduler", "scheduler"), ("dask-worker", "worker")):
        path = pathlib.Path(directory) / name
        path.write_text(f'#!/bin/sh\nexec dask {command} "$@"\n')
        path.chmod(0o755)
    return directory


def trial(aws: Any, product: str, n: int) -> dict[str, Any]:
    """One child's trial, with the ECS calls the local Fargate counted meanwhile; a failed
    child's output is kept in a file the run names, and the tasks it left are stopped
    before the next trial."""
    aws.reset_counters()
    command = [sys.executable, __file__, "--child", product, str(n)]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=TRIAL_TIMEOUT, env=os.environ
        )
    except subprocess.TimeoutExpired:
        return {"error": f"no result within {TRIAL_TIMEOUT} s", "left": _stop_left(aws)}
    lines = done.stdout.strip().splitlines()
    if done.returncode or not lines:
        with tempfile.NamedTemporaryFile("w", suffix=".log", delete=False) as log:
            log.write(done.stderr)
        print(f"{product} N={n} failed; its output: {log.name}", flush=True)
        last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        return {"error": f"exit {done.returncode}: {last}", "left": _stop_left(aws)}
    result = json.loads(lines[-1])
    result["calls"] = dict(aws.calls)
    result["throttled"] = aws.throttled_calls
    return result


def _stop_left(aws: Any) -> int:
    """Stop the tasks a failed trial left running, until STOPPED; how many there were."""
    ecs = aws.client("ecs")
    pages = ecs.get_paginator("list_tasks").paginate(cluster="starburst-dask")
    left = [arn for page in pages for arn in page["taskArns"]]
    for arn in left:
        ecs.stop_task(cluster="starburst-dask", task=arn, reason="left by a failed trial")
    while left and any(
        t["lastStatus"] != "STOPPED" for t in _describe(ecs, "starburst-dask", left)
    ):
        time.sleep(POLL)
    return len(left)


def baseline_child(n: int) -> dict[str, Any]:
    """The local Fargate's own time to start and stop the tasks of a cluster of ``n``:
    the product's scheduler and worker commands (over TCP: no certificates to hand out),
    launched by plain RunTask calls, the workers right after the scheduler's (they find
    its address as they boot); then StopTask on every task at once, until all are
    STOPPED. No cluster manager: what any of them could at best achieve on this machine."""
    import threading

    import boto3

    from starburst_dask.ecs import tasks
    from starburst_dask.options import ClusterOptions

    config = json.loads(os.environ[_CONFIG_VAR])
    ecs = boto3.client("ecs")
    options = ClusterOptions.resolve(image=dask_image(), security=False, n_workers=n, **_SIZES)
    definition = ecs.register_task_definition(
        family="benchmark-baseline",
        requiresCompatibilities=["FARGATE"],
        networkMode="awsvpc",
        cpu=str(WORKER["cpu"]),
        memory=str(WORKER["memory"]),
        executionRoleArn=config["execution_role_arn"],
        taskRoleArn=config["task_role_arn"],  # workers find their scheduler with it
        containerDefinitions=[{"name": tasks.CONTAINER, "image": dask_image()}],
    )["taskDefinition"]["taskDefinitionArn"]
    network = {
        "awsvpcConfiguration": {
            "subnets": config["subnets"],
            "securityGroups": config["security_groups"],
            "assignPublicIp": "ENABLED",
        }
    }

    def run_task(command: list[str], count: int, size: dict[str, int], env: dict[str, str]):
        return ecs.run_task(
            cluster=config["cluster_arn"],
            taskDefinition=definition,
            count=count,
            launchType="FARGATE",
            networkConfiguration=network,
            overrides=tasks.task_overrides(command, size["cpu"], size["memory"], env),
        )["tasks"]

    cluster = config["cluster_arn"]
    machine, cpu0, start = _machine_cpu(), time.process_time(), time.perf_counter()
    [scheduler] = run_task(
        tasks.scheduler_command(options), 1, SCHEDULER, tasks.scheduler_environment(options)
    )
    arns = [scheduler["taskArn"]]
    try:
        command, env = tasks.worker_command(options), tasks.worker_environment(arns[0])
        for count in [10] * (n // 10) + [n % 10] * bool(n % 10):
            arns += [t["taskArn"] for t in run_task(command, count, WORKER, env)]
        while not tasks.addressed(task := _describe(ecs, cluster, arns[:1])[0]):
            time.sleep(POLL)
        details = tasks.eni_details(task)
        # The client is outside the VPC: it reaches the scheduler at its public address,
        # once the scheduler's task runs.
        ec2 = boto3.client("ec2")
        while not (public := _public_ip(ec2, details["networkInterfaceId"])) or (
            _describe(ecs, cluster, arns[:1])[0]["lastStatus"] != "RUNNING"
        ):
            time.sleep(POLL)
        with _connect(f"tcp://{public}:{tasks.SCHEDULER_PORT}") as client:
            client.wait_for_workers(n)
            ready, cpu_ready = time.perf_counter() - start, time.process_time() - cpu0
            busy, threads = _busy_since(machine), threading.active_count()
    finally:  # stopped even when the trial failed: no task left to weigh on the next
        stopping = time.perf_counter()
        for arn in arns:
            ecs.stop_task(cluster=cluster, task=arn)
        while any(t["lastStatus"] != "STOPPED" for t in _describe(ecs, cluster, arns)):
            time.sleep(POLL)
    stop = time.perf_counter() - stopping
    return {"ready": ready, "stop": stop, "cpu_ready": cpu_ready, "busy": busy, "threads": threads}


def _connect(address: str) -> Any:
    """A client of the scheduler at ``address`` once it listens: tries of two seconds
    (one long try backs off exponentially, up to tens of seconds between attempts)."""
    from distributed import Client

    deadline = time.monotonic() + TRIAL_TIMEOUT
    while True:
        try:
            return Client(address, timeout=2)
        except Exception:  # noqa: BLE001 - not listening yet, or slow to answer: again
            if time.monotonic() > deadline:
                raise


def _public_ip(ec2: Any, eni: str) -> str | None:
    [found] = ec2.describe_network_interfaces(NetworkInterfaceIds=[eni])["NetworkInterfaces"]
    return found.get("Association", {}).get("PublicIp")


def _describe(ecs: Any, cluster: str, arns: list[str]) -> list[dict[str, Any]]:
    return [
        t
        for i in range(0, len(arns), 100)
        for t in ecs.describe_tasks(cluster=cluster, tasks=arns[i : i + 100])["tasks"]
    ]


def run(sizes: list[int], repeats: int, latency: str) -> dict[str, Any]:
    """Every trial, interleaved: for each repetition and size, each product in turn."""
    from starburst_dask.local import LocalFargate

    results: dict[str, dict[int, list[dict[str, Any]]]] = {k: {n: [] for n in sizes} for k in KINDS}
    began = time.perf_counter()
    with (
        tempfile.TemporaryDirectory() as shims,
        LocalFargate(vcpu_quota=QUOTA, latency=latency) as aws,
    ):
        os.environ[_CONFIG_VAR] = json.dumps(dcp_config(aws, write_shims(shims)))
        kinds = list(KINDS)
        for rep in range(repeats):
            for n in sizes:
                for kind in kinds[rep % 3 :] + kinds[: rep % 3]:
                    outcome = trial(aws, kind, n)
                    print(f"rep {rep + 1} N={n} {kind}: {outcome}", flush=True)
                    results[kind][n].append(outcome)
    return {"results": results, "minutes": (time.perf_counter() - began) / 60, "latency": latency}


def from_log(path: str, sizes: list[int], latency: str) -> dict[str, Any]:
    """The trials a run printed (its ``rep R N=n kind: {...}`` lines), as :func:`run`
    returns them: to report a run again."""
    results: dict[str, dict[int, list[dict[str, Any]]]] = {k: {n: [] for n in sizes} for k in KINDS}
    for line in pathlib.Path(path).read_text().splitlines():
        found = re.match(r"rep \d+ N=(\d+) (\S+): (\{.*\})$", line)
        if found and int(found[1]) in sizes:
            results[found[2]][int(found[1])].append(ast.literal_eval(found[3]))
    return {"results": results, "minutes": None, "latency": latency}


# The report.
def _ok(trials: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [t for t in trials if "error" not in t]


def _mean(trials: list[dict[str, Any]], key: str) -> float | None:
    values = [t[key] for t in _ok(trials) if key in t]
    return statistics.mean(values) if values else None


def _cell(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _verdict(ratio: float | None, limit: float) -> str:
    if ratio is None:
        return "not measured"
    return f"{ratio:.2f} (limit {limit:g}): **{'pass' if ratio <= limit else 'FAIL'}**"


def report(data: dict[str, Any], sizes: list[int], repeats: int) -> str:
    results = data["results"]
    sb, dcp, base = (results[k] for k in KINDS)
    rows = []
    for n in sizes:
        for kind, name in KINDS.items():
            trials = results[kind][n]
            calls: Counter[str] = Counter()
            for t in _ok(trials):
                calls.update(t["calls"])
            ok = max(len(_ok(trials)), 1)
            per = {op: calls[op] / ok for op in calls}
            errors = [t["error"] for t in trials if "error" in t]
            cpu = _mean(trials, "cpu_ready")
            main = [_cell(per.pop(op, 0), 0) for op in MAIN_CALLS]
            other = ", ".join(f"{op} {v:.0f}" for op, v in sorted(per.items()))
            cells = [
                str(n),
                name,
                _cell(_mean(trials, "ready")),
                _cell(_mean(trials, "close" if kind in PRODUCTS else "stop")),
                " / ".join(main),
                other,
                _cell(_mean(trials, "throttled"), 0),
                _cell(cpu, 2),
                _cell(cpu / n if cpu is not None else None, 3),
                _cell(_mean(trials, "threads"), 0),
                _cell(_mean(trials, "busy"), 0),
                f"{len(_ok(trials))}/{len(trials)}" + (f" ({errors[0]})" if errors else ""),
            ]
            rows.append("| " + " | ".join(cells) + " |")

    def ratio(a: float | None, b: float | None) -> float | None:
        return a / b if a is not None and b else None

    def at(table: dict[int, list[dict[str, Any]]], n: int, key: str) -> float | None:
        return _mean(table[n], key) if n in table else None

    cpu_sb = [t["cpu_ready"] / n for n in sizes for t in _ok(sb[n])]
    cpu_dcp = [t["cpu_ready"] / n for n in sizes for t in _ok(dcp[n])]
    throttled_sb = sum(t["throttled"] for n in sizes for t in _ok(sb[n]))
    big = max(sizes)
    stop_calls = [t["calls"].get("StopTask", 0) for t in _ok(sb.get(64, []))]
    one_stop = (
        "not measured"
        if not stop_calls
        else f"{stop_calls} for 65 tasks: **{'pass' if set(stop_calls) == {65} else 'FAIL'}**"
    )
    musts = [
        (
            "time to 16 workers, starburst-dask / dask-cloudprovider",
            _verdict(ratio(at(sb, 16, "ready"), at(dcp, 16, "ready")), 0.6),
        ),
        (
            "time to 16 workers / time to 1 worker (starburst-dask)",
            _verdict(ratio(at(sb, 16, "ready"), at(sb, 1, "ready")), 1.3),
        ),
        (
            "client CPU per started worker, starburst-dask / dask-cloudprovider (all sizes)",
            _verdict(
                ratio(
                    statistics.mean(cpu_sb) if cpu_sb else None,
                    statistics.mean(cpu_dcp) if cpu_dcp else None,
                ),
                0.2,
            ),
        ),
        (
            "throttled calls, starburst-dask (all trials)",
            f"{throttled_sb}: **{'pass' if throttled_sb == 0 else 'FAIL'}**",
        ),
        (
            "time to 64 workers / time to 1 worker (starburst-dask)",
            _verdict(ratio(at(sb, 64, "ready"), at(sb, 1, "ready")), 1.5),
        ),
        (
            "time to 64 workers / time to 1 worker, the baseline (no limit: the machine's own)",
            _cell(ratio(at(base, 64, "ready"), at(base, 1, "ready")), 2),
        ),
        (
            "time to 64 workers, starburst-dask / the baseline's (no limit: how near the floor)",
            _cell(ratio(at(sb, 64, "ready"), at(base, 64, "ready")), 2),
        ),
        (
            "close at 64 / the local Fargate's stop of the same 65 tasks (baseline)",
            _verdict(ratio(at(sb, 64, "close"), at(base, 64, "stop")), 1.2),
        ),
        ("StopTask calls per close at 64 (one per task)", one_stop),
    ]
    client_close = _cell(at(sb, big, "client_close"), 2)
    must_rows = "\n".join(f"| {what} | {verdict} |" for what, verdict in musts)
    sizes_arg = " ".join(map(str, sizes))
    header = "| " + " | ".join(COLUMNS) + " |\n|" + "---|" * len(COLUMNS)
    latency = data["latency"]
    minutes = data["minutes"]
    took = "from its log" if minutes is None else f"in {minutes:.0f} minutes"
    return f"""# Ready time: starburst-dask and dask-cloudprovider on one local Fargate

Each trial creates a cluster of N workers (1 vCPU, 4 GB; scheduler 1 vCPU, 2 GB;
`{dask_image()}`) in a child process, waits with `client.wait_for_workers(N)`, then
closes it: `client.close()`, apart ({client_close} s for starburst-dask at N = {big}),
as the baseline closes its client before its timed stop, then `cluster.close()`, the
close timed. Both cluster managers run against the same local Fargate in one run,
interleaved, {repeats} repetition(s), with task latencies `{latency}` (`aws`: ENI
created and attached in 8-20 s, the image pulled at 7-12 MB/s, DEPROVISIONING 30-60 s;
sources in `docs/local-fargate.md`) and AWS's API rate limits. Times are means over the
repetitions, in seconds; ECS calls are per trial; CPU is the client process's (all its
threads) from creating the cluster until the workers are connected.

{header}
{chr(10).join(rows)}

![time to N workers and to close](ready_time.png)

## Must show (issue 13)

| what | result |
|---|---|
{must_rows}

Two clusters sharing a 6 vCPU quota (the waiting one launches within 10 s of the other
closing) is a test, not this benchmark; the launch-rate floor is in `launch_rate.md`.

dask-cloudprovider polls each task with its own DescribeTasks loop, without pause while
the task is PROVISIONING or PENDING, and backs off only when throttled; its close waits
until its tasks leave RUNNING, not until STOPPED. Its tasks run `dask-scheduler` and
`dask-worker`, which distributed no longer installs (removed in 2026.6.0; `daskdev/dask`
images of such versions lack them): the benchmark gives them as two scripts on the
tasks' `PATH`, as an image of the user's derived from `daskdev/dask` would add them.

Written by `python benchmarks/ready_time.py --sizes {sizes_arg} --repeats {repeats}
--latency {latency}` {took} (2-core machine, the largest N {big}).
"""


def plot(data: dict[str, Any], sizes: list[int]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = data["results"]
    fig, (ready_ax, close_ax) = plt.subplots(1, 2, figsize=(10, 4))
    for kind, name in KINDS.items():
        style = "o-" if kind in PRODUCTS else "k--"
        for ax, key in ((ready_ax, "ready"), (close_ax, "close" if kind in PRODUCTS else "stop")):
            points = [(n, v) for n in sizes if (v := _mean(results[kind][n], key)) is not None]
            if points:
                ax.plot(*zip(*points, strict=True), style, label=name)
    for ax, title in ((ready_ax, "until N workers connected"), (close_ax, "close")):
        ax.set_xscale("log", base=2)
        ax.set_xticks(sizes, [str(n) for n in sizes])
        ax.set_xlabel("workers (N)")
        ax.set_ylabel("seconds")
        ax.set_title(title)
        ax.set_ylim(bottom=0)
        ax.legend()
    fig.suptitle("AWS-like task latencies on the local Fargate")
    fig.tight_layout()
    fig.savefig(OUT / "ready_time.png", dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 4, 16, 64])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--latency", default="aws", help="the local Fargate's (aws, fast)")
    parser.add_argument(
        "--from-log", metavar="FILE", help="report the trials a run printed, without running"
    )
    parser.add_argument("--child", nargs=2, metavar=("PRODUCT", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, n = args.child[0], int(args.child[1])
        outcome = baseline_child(n) if kind == "baseline" else child(kind, n)
        print(json.dumps(outcome), flush=True)
        return
    if args.from_log:
        data = from_log(args.from_log, args.sizes, args.latency)
        repeats = max(len(t) for by_n in data["results"].values() for t in by_n.values())
    else:
        data, repeats = run(args.sizes, args.repeats, args.latency), args.repeats
    OUT.mkdir(parents=True, exist_ok=True)
    text = report(data, args.sizes, repeats)
    (OUT / "ready_time.md").write_text(text)
    plot(data, args.sizes)
    print(text)


if __name__ == "__main__":
    main()
