"""Start and stop the services the tests and the demo need (pcscd, cupsd, avahi, emulators, servers),
each tracked and stopped by its own pid — never by name, so a machine's own services are untouched.

    proc = ManagedProcess(["pcscd", "-f"], name="pcscd", log_dir=tmp)
    proc.start(ready=lambda: port_open("127.0.0.1", 35963))
    ...
    proc.stop()
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Callable, Sequence


class ServiceFailed(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(host: str, port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_until(predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise ServiceFailed(f"timed out after {timeout:.0f} s waiting for {what}")


def require_binary(name: str) -> str:
    path = shutil.which(name) or (f"/usr/sbin/{name}" if os.path.exists(f"/usr/sbin/{name}") else None)
    if path is None:
        raise ServiceFailed(f"{name} is not installed; run scripts/bootstrap (it installs config/debian-packages.txt)")
    return path


class ManagedProcess:
    def __init__(self, argv: Sequence[str], *, name: str, log_dir: str | os.PathLike[str],
                 env: dict[str, str] | None = None, cwd: str | None = None,
                 user: str | None = None) -> None:
        self.argv = list(argv)
        self.name = name
        self.log_path = Path(log_dir) / f"{name}.log"
        self.env = {**os.environ, **(env or {})}
        self.cwd = cwd
        self.user = user
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, ready: Callable[[], bool] | None = None, timeout: float = 20.0) -> "ManagedProcess":
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        argv = (["runuser", "-u", self.user, "--"] + self.argv) if self.user else self.argv
        self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     env=self.env, cwd=self.cwd, start_new_session=True)
        log.close()
        if ready is not None:
            deadline = time.monotonic() + timeout
            while not ready():
                if self.proc.poll() is not None:
                    raise ServiceFailed(f"{self.name} exited with {self.proc.returncode} while starting; "
                                        f"log {self.log_path}:\n{self.tail()}")
                if time.monotonic() > deadline:
                    self.stop()
                    raise ServiceFailed(f"{self.name} not ready after {timeout:.0f} s; log {self.log_path}:\n"
                                        f"{self.tail()}")
                time.sleep(0.05)
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def signal(self, sig: int) -> None:
        if self.alive():
            os.kill(self.pid, sig)

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.pid, signal.SIGTERM)  # its own session: children go too
        except ProcessLookupError:
            return
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.pid, signal.SIGKILL)
            self.proc.wait(5)

    def __enter__(self) -> "ManagedProcess":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
