"""The leak check every test passes through (tests/leaks.py) finds what a test left."""

import asyncio
import subprocess
import sys
import threading

import leaks


def test_a_thread_left_running_is_named_and_one_that_ends_in_time_is_not():
    before = leaks.Snapshot.take()
    stop, quick = threading.Event(), threading.Event()
    threading.Thread(target=stop.wait, name="left-behind", daemon=True).start()
    threading.Thread(target=quick.wait, args=(0.1,), name="ends-soon").start()
    try:
        found = before.leaks(grace=0.5)
    finally:
        stop.set()
    assert len(found) == 1
    assert found[0].startswith("daemon thread 'left-behind' still alive, at:")
    assert before.leaks(grace=5.0) == []


def test_a_task_pending_on_a_loop_the_test_created_is_named():
    before = leaks.Snapshot.take()
    loop = asyncio.new_event_loop()
    task = loop.create_task(asyncio.sleep(3600), name="forgotten")
    loop.run_until_complete(asyncio.sleep(0))
    try:
        [found] = before.leaks(grace=0.1)
    finally:
        task.cancel()
        loop.run_until_complete(asyncio.gather(task, return_exceptions=True))
        loop.close()
    assert "asyncio task pending on an open loop the test created" in found
    assert "forgotten" in found
    assert before.leaks(grace=0.1) == []


def test_a_child_process_left_running_is_named():
    before = leaks.Snapshot.take()
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        [found] = before.leaks(grace=0.1)
    finally:
        child.kill()
        child.wait()
    assert found.startswith(f"child process {child.pid} still running: ")
    assert "time.sleep(60)" in found
    assert before.leaks(grace=0.1) == []
