"""Task processes of the local Fargate: spawning, signals and output.

The runtime knows nothing of ECS: it runs a command for a task, tells the task's
:class:`TaskHooks` what happened, and makes sure no process outlives it.
"""

from __future__ import annotations

import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol

from .shim import SHIM_SIGNALS, exit_code
from .task_role import HOST_CREDENTIALS

SHIM = Path(__file__).with_name("shim.py")
#: Directory whose ``sitecustomize.py`` gives a task process its own address.
ENI_DIR = Path(__file__).with_name("eni")
#: Environment variable telling a task process its address (read by ``sitecustomize.py``).
TASK_IP_VAR = "STARBURST_LOCAL_TASK_IP"


class TaskHooks(Protocol):
    """What the runtime reports about one task's process, from its own threads."""

    def prepare(self) -> bool:
        """Called just before spawning; ``False`` means do not start (the task handled it).

        It may add to the process's ``environment``, which is read after it returns.
        """

    def started(self, pid: int) -> None:
        """The process exists."""

    def output(self, line: str) -> None:
        """One line of the process's stdout or stderr."""

    def failed(self, reason: str) -> None:
        """The command could not be started."""

    def exited(self, exit_code: int) -> None:
        """The process has exited (``128 + N`` if killed by signal N)."""


class TaskProcess:
    """One task's command, run through the shim by the runtime's spawner thread.

    Parameters
    ----------
    command : sequence of str
        The container's command line (entry point and command).
    environment : mapping
        The container's environment, on top of the emulator's own.
    ip : str
        The task's address, which the process learns from its environment.
    stop_timeout : float
        Seconds between SIGTERM and SIGKILL when the task is stopped.
    hooks : TaskHooks
        Receives the process's lifecycle and output.
    """

    def __init__(
        self,
        command: Sequence[str],
        environment: Mapping[str, str],
        ip: str,
        stop_timeout: float,
        hooks: TaskHooks,
    ) -> None:
        self.command = list(command)
        self.environment = dict(environment)
        self.ip = ip
        self.stop_timeout = stop_timeout
        self.hooks = hooks
        self._popen: subprocess.Popen[bytes] | None = None
        self._stop_requested = False
        self._killer: threading.Timer | None = None
        self._lock = threading.Lock()
        self._done = threading.Event()

    @property
    def pid(self) -> int | None:
        """The process id (of the shim, the task's direct child), once spawned."""
        return self._popen.pid if self._popen else None

    def terminate(self) -> None:
        """SIGTERM the command now and SIGKILL everything after ``stop_timeout``."""
        with self._lock:
            if self._popen is None:  # not spawned yet: the spawner will do it
                self._stop_requested = True
                return
            if self._killer is not None or self._popen.returncode is not None:
                return  # stopping or exited already
            self._popen.send_signal(signal.SIGTERM)
            self._killer = threading.Timer(self.stop_timeout, self.kill)
            self._killer.daemon = True
            self._killer.start()

    def kill(self) -> None:
        """SIGKILL the command's whole process group (the shim does it on SIGUSR1)."""
        with self._lock:
            if self._popen is not None:
                self._popen.send_signal(signal.SIGUSR1)

    def freeze(self) -> None:
        """SIGSTOP the command's whole process group (the shim passes SIGUSR2 on)."""
        with self._lock:
            if self._popen is not None:
                self._popen.send_signal(signal.SIGUSR2)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the process has exited or will never start; ``True`` if so."""
        return self._done.wait(timeout)

    def _spawn(self) -> None:
        """Start the process; runs in the spawner thread (see :class:`Runtime`)."""
        # prepare() may add to the environment: its image's packages, its routes.
        if not self.hooks.prepare():
            self._done.set()
            return
        env = Runtime._environment(self)
        if not self.command or shutil.which(self.command[0], path=env["PATH"]) is None:
            name = self.command[0] if self.command else ""
            self.hooks.failed(
                "CannotStartContainerError: failed to start container: exec: "
                f'"{name}": executable file not found in $PATH'
            )
            self._done.set()
            return
        with self._lock:
            self._popen = subprocess.Popen(
                [sys.executable, "-I", str(SHIM), str(os.getpid()), *self.command],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # keep terminal signals (Ctrl-C) away from tasks
            )
            stop_requested = self._stop_requested
        self.hooks.started(self._popen.pid)
        threading.Thread(target=self._follow, name=f"task-{self.ip}", daemon=True).start()
        if stop_requested:
            self.terminate()

    def _follow(self) -> None:
        """Forward output line by line, then report the exit."""
        assert self._popen is not None and self._popen.stdout is not None
        for raw in self._popen.stdout:
            line = raw.decode(errors="replace").rstrip("\r\n")
            if line:
                self.hooks.output(line)
        code = exit_code(self._popen.wait())
        with self._lock:
            if self._killer is not None:
                self._killer.cancel()
        self.hooks.exited(code)
        self._done.set()


class Runtime:
    """Spawns task processes and owns them until they exit.

    Every process is spawned from one long-lived thread: Linux's parent-death signal,
    which ties each task to the emulator, fires when the *thread* that forked the
    child ends, and the HTTP server handles each request in a short-lived thread.
    """

    def __init__(self) -> None:
        self._processes: list[TaskProcess] = []
        self._queue: queue.SimpleQueue[TaskProcess | None] = queue.SimpleQueue()
        self._closing = False
        self._lock = threading.Lock()
        # A daemon: should nobody stop the runtime, its end at exit still kills the tasks.
        self._spawner = threading.Thread(target=self._spawn_loop, name="task-spawner", daemon=True)
        self._spawner.start()

    def launch(self, process: TaskProcess) -> None:
        """Start ``process`` asynchronously, in the spawner thread."""
        with self._lock:
            if self._closing:
                raise RuntimeError("the local Fargate is stopping")
            self._processes.append(process)
        self._queue.put(process)

    def shutdown(self, grace: float = 10.0) -> None:
        """Stop every process (SIGTERM, SIGKILL after ``grace`` seconds) and wait for it."""
        with self._lock:
            self._closing = True
        for process in self._processes:
            process.terminate()
        deadline = time.monotonic() + grace
        for process in self._processes:
            if not process.wait(max(0.0, deadline - time.monotonic())):
                process.kill()
        for process in self._processes:
            process.wait(grace)
        # Only now: the spawner thread's end sends the parent-death signal to any shim.
        self._queue.put(None)
        self._spawner.join()

    def _spawn_loop(self) -> None:
        # Children inherit this thread's signal mask: a shim holds a stop or kill signal
        # sent before it has set its handlers, instead of dying of it (see shim.py).
        signal.pthread_sigmask(signal.SIG_BLOCK, SHIM_SIGNALS)
        while (process := self._queue.get()) is not None:
            if self._closing:  # launched just before shutdown: never start it
                process._done.set()
                continue
            try:
                process._spawn()
            except Exception as error:  # this thread must live: every task dies with it
                process.hooks.failed(f"CannotStartContainerError: {error}")
                process._done.set()

    @staticmethod
    def _environment(process: TaskProcess) -> dict[str, str]:
        """The emulator's environment without its credentials, the task's, and the task's
        "network namespace"."""
        env = {k: v for k, v in os.environ.items() if k not in HOST_CREDENTIALS}
        # Nor the host's AWS files: a container has none.
        env |= {"AWS_SHARED_CREDENTIALS_FILE": os.devnull, "AWS_CONFIG_FILE": os.devnull}
        env |= process.environment
        # The local Python environment stands in for the image (its packages restricted
        # to the image's: see images.py): its tools come first.
        bin_dir = str(Path(sys.executable).parent)
        env["PATH"] = os.pathsep.join(filter(None, [bin_dir, env.get("PATH")]))
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ENI_DIR), env.get("PYTHONPATH")]))
        env[TASK_IP_VAR] = process.ip
        return env
