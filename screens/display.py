"""A private X display (Xvfb) for running the UI without a screen: the gallery, bench/ui.py, the UI
tests and the headless demo. Started with -displayfd (Xvfb picks a free display number and says
which), stopped by its own pid."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time


class VirtualDisplay:
    def __init__(self, width: int = 1920, height: int = 1080, depth: int = 24) -> None:
        self.size = (width, height, depth)
        self.proc: subprocess.Popen[bytes] | None = None
        self.display = ""

    def start(self, timeout: float = 15.0) -> "VirtualDisplay":
        binary = shutil.which("Xvfb")
        if binary is None:
            raise RuntimeError("Xvfb is not installed (Debian package xvfb)")
        read_fd, write_fd = os.pipe()
        width, height, depth = self.size
        self.log = tempfile.NamedTemporaryFile(prefix="xvfb-", suffix=".log", delete=False)
        self.proc = subprocess.Popen([binary, "-displayfd", str(write_fd), "-screen", "0", f"{width}x{height}x{depth}",
                                      "-nolisten", "tcp", "-noreset"], pass_fds=(write_fd,),
                                     stdout=self.log, stderr=self.log, start_new_session=True)
        os.close(write_fd)
        number = b""
        deadline = time.monotonic() + timeout
        try:
            while not number.endswith(b"\n"):
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError(f"Xvfb did not start (log {self.log.name})")
                chunk = os.read(read_fd, 16)
                if not chunk:
                    raise RuntimeError(f"Xvfb exited (log {self.log.name})")
                number += chunk
        finally:
            os.close(read_fd)
        self.display = f":{number.decode().strip()}"
        return self

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)

    def __enter__(self) -> "VirtualDisplay":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
