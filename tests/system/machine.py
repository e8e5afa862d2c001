"""A kiosk root booted with systemd-nspawn, for the system tests.

Layers (overlayfs, so nothing is copied):

    base       scripts/build-root --base: debootstrap + config/pi-packages.txt, cached outside the clone
    installed  scripts/build-root DIR BUNDLE ...: install-pi ran in it (once per test session)
    module     what one test module's boots wrote (journal, releases, logs); thrown away after it

``Machine.boot()`` starts ``systemd-nspawn --boot``; ``power_cut()`` SIGKILLs the container's init and
nspawn at once (every process in the container dies at that instant, as at a power loss — but the page
cache is the host's, so what was written and not yet fsynced survives: this tests the software's
ordering, not the SD card's). ``run()`` executes a command inside the running container (nsenter into
its namespaces).
"""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BOOT_TIMEOUT = 120.0


class BootFailed(AssertionError):
    pass


def mount_overlay(lower: list[Path], upper: Path, target: Path) -> None:
    work = upper.with_name(upper.name + ".work")
    for directory in (upper, work, target):
        directory.mkdir(parents=True, exist_ok=True)
    options = f"lowerdir={':'.join(str(p) for p in lower)},upperdir={upper},workdir={work}"
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o", options, str(target)], check=True,
                   capture_output=True, timeout=30)


def unmount(target: Path) -> None:
    subprocess.run(["umount", "-l", str(target)], capture_output=True, timeout=30)


def why_nspawn_cannot_run() -> str | None:
    """None when this machine can build and boot a root; else the reason (the tests skip with it)."""
    if os.geteuid() != 0:
        return "the system tests need root (debootstrap, overlayfs, systemd-nspawn); run them as root"
    scratch = Path(tempfile.mkdtemp(prefix="sys-probe-"))
    try:
        (scratch / "l").mkdir()
        try:
            mount_overlay([scratch / "l"], scratch / "u", scratch / "m")
        except subprocess.CalledProcessError as exc:
            return f"this machine cannot mount overlayfs ({exc.stderr.decode().strip()})"
        unmount(scratch / "m")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return None


@dataclass
class Machine:
    root: Path  # the merged root the container boots
    binds: list[str] = field(default_factory=list)  # extra --bind=/--bind-ro= options
    log_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="sys-console-")))
    process: subprocess.Popen[bytes] | None = None
    init_pid: int | None = None
    boots: int = 0
    boot_seconds: list[float] = field(default_factory=list)

    # --- lifecycle ---

    def boot(self, *, wait_for: str = "multi-user.target") -> float:
        """Boot the root and wait until ``wait_for`` is reached; returns the seconds it took."""
        assert self.process is None, "already running"
        self.boots += 1
        console = (self.log_dir / f"boot-{self.boots}.log").open("wb")
        started = time.monotonic()
        self.process = subprocess.Popen(
            ["systemd-nspawn", "--quiet", "-D", str(self.root), "--boot", "--register=no", "--keep-unit",
             "--timezone=off", "--resolv-conf=off", "--console=pipe", *self.binds],
            stdin=subprocess.DEVNULL, stdout=console, stderr=subprocess.STDOUT, start_new_session=True)
        console.close()
        self.init_pid = self._find_init(started)
        deadline = started + BOOT_TIMEOUT
        while time.monotonic() < deadline:
            done = self.run(["systemctl", "is-active", wait_for], check=False, timeout=10)
            if done.stdout.strip() == "active":
                seconds = time.monotonic() - started
                self.boot_seconds.append(seconds)
                return seconds
            time.sleep(0.3)
        raise BootFailed(f"{wait_for} not reached within {BOOT_TIMEOUT:.0f} s; console: {self.console()[-3000:]}")

    def _find_init(self, started: float) -> int:
        assert self.process is not None
        deadline = started + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BootFailed(f"systemd-nspawn exited ({self.process.returncode}): {self.console()[-3000:]}")
            for pid in _descendants(self.process.pid):
                if _comm(pid) == "systemd" and _ns(pid, "pid") != _ns(os.getpid(), "pid"):
                    return pid
            time.sleep(0.05)
        raise BootFailed(f"no init process appeared in the container: {self.console()[-3000:]}")

    def console(self) -> str:
        path = self.log_dir / f"boot-{self.boots}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def power_cut(self) -> None:
        """Every process of the container dies now (SIGKILL of its init kills its whole PID namespace)."""
        assert self.process is not None and self.init_pid is not None
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.init_pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.process.pid, signal.SIGKILL)
        self._reap()

    def shutdown(self, timeout: float = 60.0) -> None:
        """A clean poweroff (SIGRTMIN+4 asks systemd to power off), a power cut if it hangs."""
        if self.process is None:
            return
        assert self.init_pid is not None
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.init_pid, signal.SIGRTMIN + 4)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.power_cut()
            return
        self.process = None
        self.init_pid = None

    def _reap(self) -> None:
        assert self.process is not None
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:  # pragma: no cover — SIGKILL cannot be refused
            pass
        # The kernel tears the PID namespace down; wait until the old init is gone before booting again.
        deadline = time.monotonic() + 30
        while self.init_pid is not None and Path(f"/proc/{self.init_pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.process = None
        self.init_pid = None

    # --- inside the container ---

    def run(self, argv: list[str], *, check: bool = True, timeout: float = 60.0, user: str | None = None,
            input: str | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        assert self.init_pid is not None, "not booted"
        command = ["nsenter", "-t", str(self.init_pid), "-m", "-u", "-i", "-n", "-p", "--root", "--wd=/", "--"]
        base_env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8",
                    **(env or {})}
        if user:
            command += ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups", "--"]
        done = subprocess.run(["env", "-i", *(f"{k}={v}" for k, v in base_env.items()), *command, *argv],
                              capture_output=True, text=True, timeout=timeout, input=input)
        if check and done.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} exited {done.returncode} in the container:\n"
                                 f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        return done

    def systemctl(self, *args: str, check: bool = False) -> str:
        return self.run(["systemctl", *args], check=check).stdout.strip()

    def wait_until(self, what: str, predicate, timeout: float = 60.0, interval: float = 0.3):  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            last = predicate()
            if last:
                return last
            time.sleep(interval)
        raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")

    def path(self, inside: str) -> Path:
        """A path of the container's file system, seen from the host (the merged overlay)."""
        return self.root / inside.lstrip("/")


def _descendants(pid: int) -> list[int]:
    found, queue = [], [pid]
    while queue:
        current = queue.pop()
        for task in Path(f"/proc/{current}/task").glob("*"):
            try:
                children = [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
            found += children
            queue += children
    return found


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _ns(pid: int, kind: str) -> str:
    try:
        return os.readlink(f"/proc/{pid}/ns/{kind}")
    except OSError:
        return ""
