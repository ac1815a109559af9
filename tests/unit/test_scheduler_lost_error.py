"""The error a lost scheduler gives, and which futures of this process it fails."""

import pickle

from distributed import Client
from distributed.client import FutureState

from starburst_dask import futures
from starburst_dask.cluster.processes import lost_error
from starburst_dask.errors import SchedulerLostError

ARN = "arn:aws:ecs:us-east-1:123456789012:task/starburst-dask/" + "a" * 32
KILLED = {
    "taskArn": ARN,
    "stopCode": "EssentialContainerExited",
    "stoppedReason": "Essential container in task exited",
    "containers": [{"exitCode": 137}],
}


def test_the_error_names_the_task_its_stop_and_its_last_lines():
    error = lost_error(KILLED, ["distributed.scheduler - INFO - Receive client", "Killed"])
    text = str(error)
    assert error.task_id == "a" * 32 and "a" * 32 in text
    assert "(EssentialContainerExited): Essential container in task exited" in text
    assert "exit code 137" in text and "\n  Killed" in text
    assert "start a new cluster" in text
    assert "last log lines" not in str(lost_error(KILLED, []))
    copy = pickle.loads(pickle.dumps(error))  # as it reaches each future
    assert (type(copy), str(copy), copy.task_id, copy.reason) == (
        SchedulerLostError,
        text,
        error.task_id,
        error.reason,
    )


class StubClient:
    """What ``fail_pending`` reads of a client: its scheduler's address, loop, futures."""

    def __init__(self, address, **states):
        self.scheduler = type("rpc", (), {"address": address})()
        self.loop = None
        self.futures = {}
        for key, status in states.items():
            self.futures[key] = FutureState(key)
            self.futures[key].status = status


def test_only_unfinished_futures_of_the_scheduler_fail_and_are_detached():
    ours = StubClient("tcp://10.0.0.1:8786", a="pending", b="lost", c="finished")
    other = StubClient("tcp://10.0.0.2:8786", d="pending")
    states = dict(ours.futures)
    Client._instances.update([ours, other])
    try:
        futures.fail_pending("tcp://10.0.0.1:8786", None, pickle.dumps(lost_error(KILLED, [])))
    finally:
        Client._instances.difference_update([ours, other])
    assert list(ours.futures) == ["c"]  # the failed ones are the client's no longer
    assert {k: s.status for k, s in states.items()} == {
        "a": "error",
        "b": "error",
        "c": "finished",
    }
    assert isinstance(states["a"].exception, SchedulerLostError)
    assert other.futures["d"].status == "pending"
