"""The direct child of the local Fargate for each task: ``shim.py PARENT_PID COMMAND...``.

It plays the container runtime: it runs the command in its own process group, passes
SIGTERM on to the command's main process (as ``docker stop`` signals PID 1 only), and
exits with the command's exit code after killing whatever the command left behind, as
a container's teardown does. It dies with the emulator: Linux delivers SIGUSR1 when the
emulator's spawner thread ends, and the shim then SIGKILLs the command's process group.
The emulator sends SIGUSR1 itself for a hard kill (stopTimeout expired, fault hooks), and
SIGUSR2 to freeze the command's process group (SIGSTOP: a hung container).
Standard library only; run with ``python -I`` so it imports nothing from the task's path.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
from contextlib import suppress

_PR_SET_PDEATHSIG = 1
#: Exit code of a container killed by SIGKILL (128 + 9), as ECS reports it.
KILLED = 128 + signal.SIGKILL
#: Signals the shim handles: stop (forwarded to the command), kill and freeze everything.
SHIM_SIGNALS = {signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2}


def exit_code(returncode: int) -> int:
    """Shell convention, as ECS reports it: 128 + N for a process killed by signal N."""
    return 128 - returncode if returncode < 0 else returncode


def main(argv: list[str]) -> int:
    """Run ``argv[1:]`` tied to the life of process ``argv[0]``; return its exit code."""
    parent, command = int(argv[0]), argv[1:]
    child: subprocess.Popen[bytes] | None = None

    def kill_all(signum: int, frame: object) -> None:
        if child is not None:
            with suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGKILL)
        os._exit(KILLED)

    def freeze(signum: int, frame: object) -> None:
        if child is not None:
            with suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGSTOP)

    def terminate(signum: int, frame: object) -> None:
        if child is not None:
            with suppress(ProcessLookupError):
                os.kill(child.pid, signal.SIGTERM)

    # Hold both signals until ``child`` is known, so neither can miss the command (the
    # runtime starts us with them blocked already, so none is lost before this line).
    signal.pthread_sigmask(signal.SIG_BLOCK, SHIM_SIGNALS)
    signal.signal(signal.SIGUSR1, kill_all)
    signal.signal(signal.SIGTERM, terminate)
    signal.signal(signal.SIGUSR2, freeze)
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGUSR1, 0, 0, 0)
    # The emulator may have died before prctl took effect: then nobody will signal us.
    if os.getppid() != parent:
        return KILLED
    try:
        child = subprocess.Popen(command, start_new_session=True, preexec_fn=_unblock)
    except OSError as error:
        print(f"CannotStartContainerError: {error}", file=sys.stderr)
        return 127
    finally:
        _unblock()
    returncode = child.wait()
    with suppress(ProcessLookupError):  # the group may be empty already
        os.killpg(child.pid, signal.SIGKILL)
    return exit_code(returncode)


def _unblock() -> None:
    # Also run in the command's process: a signal mask survives fork and exec.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, SHIM_SIGNALS)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
