"""What every task runs first (``BOOT``), the workers' retirement on SIGTERM, and the one
permission of the task role ``BOOT`` uses: workers find their scheduler.

The commands that run them are :mod:`.tasks`'.
"""

from __future__ import annotations

from typing import Any

#: The worker tasks' variable naming their scheduler's task (its ARN), whose address
#: they look up when they boot (see ``BOOT``).
SCHEDULER_TASK_VAR = "STARBURST_SCHEDULER_TASK"
#: The task role's one permission of the project's own: workers find their scheduler.
FIND_SCHEDULER_ACTION = "ecs:DescribeTasks"

#: Every task's entry point: ``python -c BOOT <dask arguments>``. With TLS, the HTTP
#: servers of the scheduler (its dashboard) and of the workers read their certificate and
#: key (``distributed.scheduler.dashboard.tls.*``) from files only: they are written from
#: the task's environment (its secret) into a private directory first. One RunTask call
#: carries one command for all its tasks, so each worker learns its own dask name, its
#: task id, from the ECS task metadata endpoint (as every Fargate task can). Workers are
#: launched with the scheduler, before its address exists: their scheduler argument is
#: ``<scheme>://{scheduler}:<port>``, and each asks ECS for the private IP of the task
#: ``$SCHEDULER_TASK_VAR`` names (DescribeTasks, signed with SigV4 by the task role's
#: credentials from the container credentials endpoint: standard library only, as an
#: image need not have an AWS SDK) until the scheduler's ENI has one, then waits until the
#: scheduler accepts connections (TCP; its task asked about every 10-15 s until it runs):
#: ``dask worker`` starts then, so its ``--death-timeout`` counts from a listening
#: scheduler however late the scheduler's task started, and a scheduler that runs but
#: refuses connections for that long ends the worker with the reason.
BOOT = """\
import contextlib, hashlib, hmac, json, os, random, socket, sys, tempfile, time, urllib.error
import urllib.request as r
argv, tls, e = ["dask", *sys.argv[1:]], "DASK_DISTRIBUTED__COMM__TLS__SCHEDULER__", os.environ
if tls + "CERT" in e:
    d = tempfile.mkdtemp()
    for part in ("CERT", "KEY"):
        path = os.path.join(d, part.lower() + ".pem")
        with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
            f.write(e[tls + part])
        e["DASK_DISTRIBUTED__SCHEDULER__DASHBOARD__TLS__" + part] = path
def describe(cluster, arn):
    url = e.get("AWS_CONTAINER_CREDENTIALS_FULL_URI") or (
        "http://169.254.170.2" + e["AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"])
    token = {"Authorization": e["AWS_CONTAINER_AUTHORIZATION_TOKEN"]} if (
        "AWS_CONTAINER_AUTHORIZATION_TOKEN" in e) else {}
    c, region = json.load(r.urlopen(r.Request(url, headers=token), timeout=30)), e["AWS_REGION"]
    end = e.get("AWS_ENDPOINT_URL_ECS") or e.get("AWS_ENDPOINT_URL") or (
        f"https://ecs.{region}.amazonaws.com" + (".cn" if region.startswith("cn-") else ""))
    body = json.dumps({"cluster": cluster, "tasks": [arn]}).encode()
    now = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    h = {"content-type": "application/x-amz-json-1.1", "host": end.split("/")[2],
         "x-amz-date": now, "x-amz-security-token": c["Token"],
         "x-amz-target": "AmazonEC2ContainerServiceV20141113.DescribeTasks"}
    names = ";".join(sorted(h))
    canonical = "\\n".join(["POST", "/", "", *(k + ":" + h[k] for k in sorted(h)), "",
                           names, hashlib.sha256(body).hexdigest()])
    scope = f"{now[:8]}/{region}/ecs/aws4_request"
    key = ("AWS4" + c["SecretAccessKey"]).encode()
    for part in scope.split("/"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    text = "\\n".join(["AWS4-HMAC-SHA256", now, scope,
                      hashlib.sha256(canonical.encode()).hexdigest()])
    h["authorization"] = (f"AWS4-HMAC-SHA256 Credential={c['AccessKeyId']}/{scope}, "
        f"SignedHeaders={names}, Signature="
        + hmac.new(key, text.encode(), hashlib.sha256).hexdigest())
    return json.load(r.urlopen(r.Request(end + "/", body, h), timeout=30))["tasks"][0]
def scheduler(cluster, arn):  # its address and whether it runs; exits if it stopped
    while True:
        try:
            t = describe(cluster, arn)
        except urllib.error.HTTPError as error:  # throttled: again; else why, and exit
            if "Throttling" not in (why := error.read().decode()):
                sys.exit(f"DescribeTasks on the scheduler task {arn}: {why}")
            t = {"lastStatus": "", "attachments": []}
        if t["lastStatus"] in ("DEPROVISIONING", "STOPPED"):
            sys.exit(f"the scheduler task {arn} stopped: {t.get('stoppedReason')}")
        for a in t["attachments"]:
            for detail in a["details"]:
                if detail["name"] == "privateIPv4Address":
                    return detail["value"], t["lastStatus"] == "RUNNING"
        time.sleep(1 + random.random())  # jittered: many workers share the rate limit
def listening(cluster, arn, ip, port, patience):  # the death timeout, from it running
    asked = running = None
    while True:
        with contextlib.suppress(OSError):
            return socket.create_connection((ip, port), 2).close()
        now = time.monotonic()
        if running is None and (asked is None or now - asked > 10 + 5 * random.random()):
            asked, up = now, scheduler(cluster, arn)[1]
            running = now if up else None
        if running is not None and now - running > patience:
            sys.exit(f"the scheduler's task runs, but {ip}:{port} refused connections for "
                     f"{patience:g} s: does the security group admit the cluster's tasks?")
        time.sleep(1)
if argv[1] == "worker":
    task = json.load(r.urlopen(e["ECS_CONTAINER_METADATA_URI_V4"] + "/task", timeout=30))
    argv += ["--name", task["TaskARN"].rsplit("/", 1)[1]]
    if SCHEDULER_TASK_VAR in e:
        cluster, arn = task["Cluster"], e[SCHEDULER_TASK_VAR]
        argv[2] = argv[2].format(scheduler=(ip := scheduler(cluster, arn)[0]))
        patience = float(argv[argv.index("--death-timeout") + 1].rstrip("s"))
        listening(cluster, arn, ip, int(argv[2].rsplit(":", 1)[1]), patience)
os.execvp("dask", argv)
""".replace("SCHEDULER_TASK_VAR", repr(SCHEDULER_TASK_VAR))


#: Run by each worker's nanny in the ``dask worker`` process (``--preload-nanny`` takes a
#: script's text): on SIGTERM (a Spot interruption, StopTask) the worker retires
#: gracefully, its data moved to other workers as ``Client.retire_workers`` does (asked of
#: the scheduler with the nanny's connection, TLS included), and the nanny closes once
#: its worker has: before SIGKILL. Without a scheduler to retire through, it closes at
#: once, as the CLI's own handler (installed before, replaced here) does.
RETIRE_ON_SIGTERM = """\
import asyncio, signal, time
def dask_setup(nanny):
    loop, retiring = asyncio.get_running_loop(), []
    async def retire():
        retired = None
        try:  # a scheduler that is gone would hold the retirement for the connect timeout
            await asyncio.wait_for(nanny.scheduler.identity(), 5)
            retired = await nanny.scheduler.retire_workers(
                workers=[nanny.worker_address], close_workers=True,
                stimulus_id=f"sigterm-{time.time()}")
        except Exception:
            pass
        if not retired:  # no scheduler, or nowhere to move the data: close now
            await nanny.close(reason="sigterm")
    def on_sigterm(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM ends it now
        loop.call_soon_threadsafe(lambda: retiring.append(loop.create_task(retire())))
    signal.signal(signal.SIGTERM, on_sigterm)
"""


def find_scheduler_policy(cluster_arn: str) -> dict[str, Any]:
    """What the task role needs for workers to find their scheduler (``BOOT``):
    DescribeTasks on the ECS cluster's tasks, and nothing else."""
    _, partition, _, region, account, resource = cluster_arn.split(":", 5)
    name = resource.split("/", 1)[1]
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": FIND_SCHEDULER_ACTION,
                "Resource": f"arn:{partition}:ecs:{region}:{account}:task/{name}/*",
            }
        ],
    }
