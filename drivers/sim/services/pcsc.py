"""A private PC/SC stack for tests and the demo: our own ``pcscd -f`` with vsmartcard's vpcd reader, and the virtual
My Number card connected to it. Every process is started with ManagedProcess and stopped by its pid.

    with pcsc_stack() as stack:                    # pcscd + "Virtual PCD 00 00" on a free port
        with virtual_card(stack, pki_dir) as card:   # kiosk-sim card serve, controlled over loopback
            card.place("TESTCARD000000000001")
            ...  # pyscard / the pcsc driver / OpenSC in a subprocess with stack.env

Isolation: pcscd's client socket is hard-wired to /run/pcscd/pcscd.comm, so when the kernel allows it
(root, unshare) pcscd runs in a private mount namespace with a temp directory bound over /run/pcscd,
and clients reach it through PCSCLITE_CSOCK_NAME (honoured by libpcsclite). A machine's own pcscd,
or another engineer's test run, is then never touched. Without unshare we fall back to the shared
path and refuse to start if a pcscd already answers there, saying which one.
"""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from drivers.sim.services.process import ManagedProcess, ServiceFailed, free_port, require_binary, wait_until

SYSTEM_VPCD_CONF = Path("/etc/reader.conf.d/vpcd")
SYSTEM_SOCKET = Path("/run/pcscd/pcscd.comm")
VPCD_READER = "Virtual PCD 00 00"  # the first of vpcd's two slots; the virtual card connects there
SOCKET_ENV = "PCSCLITE_CSOCK_NAME"
REPO = Path(__file__).resolve().parents[3]


def _vpcd_library() -> str:
    if not SYSTEM_VPCD_CONF.exists():
        raise ServiceFailed(f"{SYSTEM_VPCD_CONF} is missing: install the Debian package vsmartcard-vpcd "
                            "(scripts/bootstrap installs config/debian-packages.txt)")
    match = re.search(r"^\s*LIBPATH\s+(\S+)", SYSTEM_VPCD_CONF.read_text(), re.M)
    if not match or not Path(match.group(1)).exists():
        raise ServiceFailed(f"{SYSTEM_VPCD_CONF} names no existing LIBPATH; reinstall vsmartcard-vpcd")
    return match.group(1)


def _socket_answers(path: Path) -> bool:
    if not path.exists():
        return False
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(0.5)
        try:
            s.connect(str(path))
            return True
        except OSError:
            return False


def _tcp_listening(port: int) -> bool:
    """True when something listens on 127.0.0.1/0.0.0.0:port, checked without connecting (a connection to
    vpcd's port would look like a card being placed)."""
    want = f":{port:04X}"
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if parts[1].endswith(want) and parts[3] == "0A":
                return True
    return False


def _two_free_ports() -> int:
    """vpcd listens on PORT (slot 00) and PORT+1 (slot 01)."""
    for _ in range(50):
        port = free_port()
        if port < 65535 and not _tcp_listening(port + 1):
            with socket.socket() as probe:
                try:
                    probe.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
            return port
    raise ServiceFailed("could not find two consecutive free TCP ports for vpcd")


def _can_unshare() -> bool:
    unshare = shutil.which("unshare")
    if unshare is None or os.geteuid() != 0:
        return False
    return subprocess.run([unshare, "--mount", "true"], capture_output=True, timeout=10).returncode == 0


@dataclass
class PcscStack:
    workdir: Path
    vpcd_port: int
    isolated: bool
    process: ManagedProcess | None = None
    reader: str = VPCD_READER
    env: dict[str, str] = field(default_factory=dict)

    @property
    def socket_path(self) -> Path:
        return (self.workdir / "run" / "pcscd.comm") if self.isolated else SYSTEM_SOCKET

    def _argv(self) -> list[str]:
        pcscd = require_binary("pcscd")
        conf = str(self.workdir / "reader.conf.d")
        if not self.isolated:
            return [pcscd, "-f", "-c", conf]
        script = 'mkdir -p /run/pcscd && mount --bind "$1" /run/pcscd && exec "$2" -f -c "$3"'
        return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh",
                str(self.workdir / "run"), pcscd, conf]

    def start(self) -> "PcscStack":
        run = self.workdir / "run"
        run.mkdir(parents=True, exist_ok=True)
        for stale in ("pcscd.comm", "pcscd.pid"):
            (run / stale).unlink(missing_ok=True)
        if not self.isolated and _socket_answers(SYSTEM_SOCKET):
            raise ServiceFailed(
                f"a pcscd is already running on this machine ({SYSTEM_SOCKET} answers) and this machine "
                "cannot give the tests a private one (no root / unshare). It is left alone: stop it yourself "
                "(e.g. `systemctl stop pcscd.socket pcscd`) or run the tests as root, then retry.")
        self.process = ManagedProcess(self._argv(), name=f"pcscd-{self.vpcd_port}", log_dir=self.workdir)
        self.process.start(ready=lambda: _socket_answers(self.socket_path) and _tcp_listening(self.vpcd_port),
                           timeout=20)
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            wait_until(lambda: not _tcp_listening(self.vpcd_port), 10, "vpcd's port to close")

    def restart(self) -> None:
        self.stop()
        self.start()

    def apply_to_environ(self) -> None:
        """Point this process's libpcsclite at our pcscd (read once, before its first PC/SC call)."""
        os.environ.update(self.env)


def start_pcsc_stack(workdir: str | os.PathLike[str] | None = None, *, isolated: bool | None = None) -> PcscStack:
    base = Path(workdir or tempfile.mkdtemp(prefix="pcsc-"))
    library = _vpcd_library()
    port = _two_free_ports()
    conf = base / "reader.conf.d"
    conf.mkdir(parents=True, exist_ok=True)
    (conf / "vpcd").write_text(f'FRIENDLYNAME "Virtual PCD"\nDEVICENAME   /dev/null:0x{port:04X}\n'
                               f"LIBPATH      {library}\nCHANNELID    0x{port:04X}\n")
    isolated = _can_unshare() if isolated is None else isolated
    stack = PcscStack(base, port, isolated)
    if isolated:
        stack.env = {SOCKET_ENV: str(stack.socket_path)}
    return stack.start()


@contextlib.contextmanager
def pcsc_stack(workdir: str | os.PathLike[str] | None = None) -> Iterator[PcscStack]:
    stack = start_pcsc_stack(workdir)
    try:
        yield stack
    finally:
        stack.stop()


@dataclass
class VirtualCard:
    process: ManagedProcess
    control_port: int
    pki_dir: Path
    log_dir: Path | None

    @property
    def control(self):  # -> drivers.sim.jpki_card.control.CardSimControl
        from drivers.sim.jpki_card.control import CardSimControl
        return CardSimControl(self.control_port)

    def stop(self) -> None:
        self.process.stop()


def start_virtual_card(stack: PcscStack, pki_dir: str | os.PathLike[str], *, log_dir: str | os.PathLike[str] | None = None,
                       extra_args: tuple[str, ...] = (), name: str = "virtual-card", slot: int = 0) -> VirtualCard:
    """`kiosk-sim card serve` on the stack's vpcd port for ``slot`` (0: "Virtual PCD 00 00", 1: "... 00 01");
    APDUs logged to ``log_dir`` or, by default, to $MADOGUCHI_APDU_LOG_DIR (set suite-wide by
    tests/support/card_guard.py)."""
    from drivers.sim.jpki_card.control import CardSimControl

    control_port = free_port()
    argv = [sys.executable, "-m", "drivers.sim.cli", "card", "serve", "--pki", str(pki_dir),
            "--vpcd-port", str(stack.vpcd_port + slot), "--control-port", str(control_port), *extra_args]
    if log_dir is not None:
        argv += ["--apdu-log-dir", str(log_dir)]
    process = ManagedProcess(argv, name=f"{name}-{control_port}", log_dir=stack.workdir, cwd=str(REPO),
                             env={"PYTHONUNBUFFERED": "1"})
    process.start(ready=lambda: CardSimControl(control_port, timeout=1).ping(), timeout=20)
    return VirtualCard(process, control_port, Path(pki_dir), Path(log_dir) if log_dir else None)


@contextlib.contextmanager
def virtual_card(stack: PcscStack, pki_dir: str | os.PathLike[str], **kwargs: object) -> Iterator[VirtualCard]:
    card = start_virtual_card(stack, pki_dir, **kwargs)  # type: ignore[arg-type]
    try:
        yield card
    finally:
        card.stop()


_shared: PcscStack | None = None


def shared_pcsc_stack() -> PcscStack:
    """One stack per test process, started on first use, stopped at exit, and applied to os.environ.

    libpcsclite reads PCSCLITE_CSOCK_NAME once per process, so every test in a process must talk to the
    same pcscd: session fixtures of any test area should call this rather than start their own."""
    global _shared
    if _shared is None:
        import atexit

        _shared = start_pcsc_stack()
        _shared.apply_to_environ()
        atexit.register(_shared.stop)
    return _shared
