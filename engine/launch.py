"""How a model's worker is started: a process of its own (the server's way), or a thread (tests
that need no isolation, with a stand-in backend)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from multiprocessing.connection import Connection
from typing import Protocol


class Launched(Protocol):
    pid: int

    def wait(self, timeout: float) -> bool: ...  # True once it has ended
    def exit_reason(self, timeout: float) -> str: ...  # how it ended, for the log and the error
    def kill(self) -> None: ...


class Launcher(Protocol):
    def launch(self) -> tuple[Connection, Launched]: ...


def describe_exit(code: int | None) -> str:
    if code is None:
        return "stopped answering"
    if code < 0:
        try:
            return f"was killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


class WorkerProcess:
    def __init__(self, proc: subprocess.Popen):
        self._proc = proc
        self.pid = proc.pid

    def wait(self, timeout: float) -> bool:
        try:
            self._proc.wait(timeout)
            return True
        except subprocess.TimeoutExpired:
            return False

    def exit_reason(self, timeout: float) -> str:
        self.wait(timeout)
        return describe_exit(self._proc.poll())

    def kill(self) -> None:
        self._proc.kill()
        self._proc.wait()


class ProcessLauncher:
    """`python -m engine.worker FD`, with one end of a socket pair as FD."""

    def launch(self) -> tuple[Connection, WorkerProcess]:
        ours, theirs = socket.socketpair()
        with theirs:
            proc = subprocess.Popen([sys.executable, "-m", "engine.worker", str(theirs.fileno())],
                                    pass_fds=(theirs.fileno(),))
        return Connection(ours.detach()), WorkerProcess(proc)


class WorkerThread:
    def __init__(self, thread: threading.Thread):
        self._thread = thread
        self.pid = os.getpid()

    def wait(self, timeout: float) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def exit_reason(self, timeout: float) -> str:
        return "stopped" if self.wait(timeout) else "stopped answering"

    def kill(self) -> None:
        pass  # a thread cannot be killed; closing its connection ends it


class ThreadLauncher:
    """The worker's code on a thread of this process: for tests with a stand-in backend."""

    def launch(self) -> tuple[Connection, WorkerThread]:
        from .worker import serve_connection

        ours, theirs = socket.socketpair()
        conn = Connection(theirs.detach())
        thread = threading.Thread(target=serve_connection, args=(conn,), name="worker", daemon=True)
        thread.start()
        return Connection(ours.detach()), WorkerThread(thread)
