"""Record the launch progress bar and the notebook widget of a real run, for the docs.

A cluster of 4 one-vCPU workers starts on a local Fargate whose vCPU quota (3) fits its
scheduler and 2 workers: 2 wait for quota. The run then files the quota increase, which
the local Fargate approves after a few seconds, and the waiting workers launch. Recorded:
the progress bar's frames as tqdm wrote them to stderr (a terminal shows each frame over
the last), the cluster's status lines (logging), and the widget's rows (HTML and text)
while workers wait and at the end.

Usage::

    python benchmarks/record_progress.py   # writes docs/progress.md
"""

from __future__ import annotations

import contextlib
import html.parser
import io
import logging
import pathlib
import platform
import re
import time

import dask
import dask.config
from distributed import Client

from starburst_dask import FargateCluster, status
from starburst_dask.cluster import widget
from starburst_dask.local import LocalFargate

OUTPUT = pathlib.Path(__file__).parent.parent / "docs" / "progress.md"
PICTURE = OUTPUT.with_suffix(".png")
IMAGE = f"daskdev/dask:{dask.__version__}-py{'.'.join(platform.python_version_tuple()[:2])}"
SIZES = {"worker_cpu": 1024, "worker_memory": 2048, "scheduler_cpu": 1024}


class _Text(html.parser.HTMLParser):
    """The text of HTML table rows, one line per row."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = [""]

    def handle_starttag(self, tag: str, attrs: object) -> None:
        if tag == "tr":
            self.lines.append("")

    def handle_data(self, data: str) -> None:
        self.lines[-1] += data if self.lines[-1] else data.lstrip()


def text_of(rows: str) -> str:
    parser = _Text()
    parser.feed(rows.replace("</td><td", "</td> | <td"))
    return "\n".join(line.rstrip() for line in parser.lines if line.strip())


def _same(frame: str) -> str:
    """A frame without its elapsed time: frames that differ only there are one."""
    return re.sub(r"\[\d\d:\d\d", "[", frame)


def widget_rows(cluster: FargateCluster) -> str:
    requested = cluster.provisioner.requested if cluster.provisioner else 0
    return widget.rows(cluster.quota, requested, cluster.cost)


def record() -> dict[str, str]:
    """Run the cluster; its bar's frames, status lines and widget rows."""
    stderr, lines = io.StringIO(), []

    class Terminal(status.StderrHandler):
        """Shows the status lines on stderr, as in a terminal, and keeps them."""

        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())
            super().emit(record)

    handler = Terminal()
    logging.getLogger("starburst_dask").addHandler(handler)
    with (
        dask.config.set({"starburst.image": IMAGE}),
        LocalFargate(vcpu_quota=3) as aws,
        contextlib.redirect_stderr(stderr),
    ):
        aws.account.approval_delay = 3
        with (
            FargateCluster(4, progress=True, poll_interval=0.5, quota_interval=1, **SIZES) as c,
            Client(c) as client,
        ):
            client.wait_for_workers(2, timeout=120)
            while c.progress.counts().running > 2 or not c.progress.counts().settled:
                time.sleep(0.25)  # the bar closes its first part: 2 connected, 2 waiting
            waiting = widget_rows(c)
            c.request_quota_increase()
            client.wait_for_workers(4, timeout=120)
            while not c.progress.counts().settled:
                time.sleep(0.25)
            time.sleep(1)  # the bar's last redraw
            done = widget_rows(c)
    logging.getLogger("starburst_dask").removeHandler(handler)
    frames = [f.rstrip() for f in stderr.getvalue().replace("\n", "\r").split("\r")]
    kept = [f for i, f in enumerate(frames) if f and (i == 0 or _same(f) != _same(frames[i - 1]))]
    return {
        "frames": "\n".join(kept),
        "raw": stderr.getvalue(),
        "lines": "\n".join(lines),
        "waiting_html": waiting,
        "waiting_text": text_of(waiting),
        "done_text": text_of(done),
    }


def terminal(raw: str) -> str:
    """What a terminal shows after ``raw``: a carriage return goes back to the line's
    start, later characters overwrite earlier ones."""
    lines, line, cursor = [], "", 0
    for char in raw:
        if char == "\n":
            lines.append(line.rstrip())
            line, cursor = "", 0
        elif char == "\r":
            cursor = 0
        else:
            line = line[:cursor] + char + line[cursor + 1 :]
            cursor += 1
    return "\n".join(lines + [line.rstrip()]).strip("\n")


def picture(result: dict[str, str]) -> None:
    """The terminal as it looks at the end, and the widget's rows, as an image."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    text = terminal(result["raw"]) + "\n\nnotebook widget rows:\n" + result["done_text"]
    lines = text.splitlines()
    figure = pyplot.figure(figsize=(max(len(line) for line in lines) * 0.075, len(lines) * 0.2))
    figure.patch.set_facecolor("#1e1e1e")
    figure.text(0.01, 0.98, text, family="monospace", size=8.5, color="#e0e0e0", va="top")
    figure.savefig(PICTURE, dpi=110)
    pyplot.close(figure)


def write(result: dict[str, str]) -> None:
    fence = "```"
    OUTPUT.write_text(
        f"""# Progress and the notebook widget

Recorded from a real run against the local Fargate by `benchmarks/record_progress.py`
(rerun it to refresh this page): `FargateCluster(4, progress=True, ...)` of 1-vCPU workers
under a vCPU quota of 3, which fits the scheduler and 2 workers; 2 wait for quota until
`cluster.request_quota_increase()` is approved (after 3 s here; hours or days on AWS).

## The progress bar

![The terminal at the end of the run, and the widget's rows](progress.png)

Each frame as tqdm drew it on stderr (a terminal redraws one line; a notebook shows the
same as a widget; frames that differ only in the elapsed time are shown once), with the
status lines written above the bar. `n/total connected` are the workers connected to the
scheduler of those requested; then the worker tasks provisioning and running (ECS's
statuses) and the workers waiting for quota, with the quota and its usage. Before the
scheduler runs, its status comes first.

{fence}text
{result["frames"]}
{fence}

## Status lines

The cluster's status lines are INFO records of the `starburst_dask.cluster` logger (on
stderr when the application configured no logging; none with `quiet=True`):

{fence}text
{result["lines"]}
{fence}

## The notebook widget

`FargateCluster` adds these rows to distributed's cluster widget (`_repr_html_`, the
Status tab of the widget, redrawn every `distributed.deploy.cluster-repr-interval`).
While two workers wait for quota:

{fence}text
{result["waiting_text"]}
{fence}

As HTML:

{fence}html
{result["waiting_html"]}
{fence}

Once the increase was approved and every worker runs:

{fence}text
{result["done_text"]}
{fence}
"""
    )


if __name__ == "__main__":
    result = record()
    write(result)
    picture(result)
    print(f"wrote {OUTPUT} and {PICTURE}")
