"""A private printing stack for tests and the demo: cupsd → ipp backend → ippeveprinter (an IPP Everywhere printer).

    from drivers.sim.services.cups import cups_stack

    with cups_stack(log_dir) as stack:          # or the pytest fixture in tests/integration/printing
        driver = CupsDocumentPrinter(CupsOptions(queue=stack.queue, server=stack.server), None)
        driver.print_document(pdf, "TXN-1-doc1")
        stack.kept_documents()                  # what reached the printer, as ippeveprinter kept it
        stack.faults.set("media-jam")           # the next job fails like a jammed printer
        stack.stop_printer(); stack.start_printer()   # printer switched off / on again

Nothing here touches the machine's own CUPS: the cupsd has its ServerRoot in a short temp dir, listens
on a free loopback port and on a socket in that dir, and is administered through the socket (over TCP
lpadmin answers "Unauthorized"). ippeveprinter refuses to start without DNS-SD even with ``-r off``,
so a system D-Bus and avahi-daemon are started when none is running; several test processes on the
machine may share them, so a small lock-protected register records who uses them and the last user
stops the ones that were started here — by pid, never by name.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from drivers.sim.services.process import ManagedProcess, ServiceFailed, free_port, port_open, require_binary, wait_until

DBUS_SOCKET = "/run/dbus/system_bus_socket"
_DNSSD_LOCK = Path(tempfile.gettempdir()) / "madoguchi-dnssd.lock"
_DNSSD_STATE = Path(tempfile.gettempdir()) / "madoguchi-dnssd.json"

#: Fault modes understood by the ippeveprinter ``-c`` program (see FAULT_PROGRAM).
FAULT_MODES = ("ok", "media-empty", "media-jam", "toner-empty", "door-open", "fail", "stall")

# Run by ippeveprinter once per document. stderr lines "STATE: +reason" set printer-state-reasons and
# a non-zero exit aborts the job: that is how a printer fault is simulated. The mode is read per job from
# a control file so a test can change it while the printer runs.
FAULT_PROGRAM = """#!/bin/sh
mode=$(cat '{control}' 2>/dev/null || echo ok)
case "$mode" in
  ok)          exit 0 ;;
  stall)       sleep 3600; exit 0 ;;
  fail)        echo "ERROR: simulated printer failure" >&2; exit 1 ;;
  *)           echo "STATE: +$mode" >&2; echo "ERROR: simulated $mode" >&2; exit 1 ;;
esac
"""


# --- D-Bus + avahi, shared between test processes ----------------------------------------------------

def _socket_answers(path: str) -> bool:
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(0.5)
        try:
            s.connect(path)
            return True
        except OSError:
            return False


def _avahi_running() -> bool:
    return subprocess.run(["avahi-daemon", "--check"], capture_output=True, timeout=5).returncode == 0


def _pid_alive(pid: int, binary: str | None = None) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
        return binary is None or binary in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except (OSError, IndexError):
        return False


@contextlib.contextmanager
def _dnssd_register() -> Iterator[dict]:
    _DNSSD_LOCK.touch(exist_ok=True)
    with _DNSSD_LOCK.open("r+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            state = json.loads(_DNSSD_STATE.read_text()) if _DNSSD_STATE.exists() else {}
        except ValueError:
            state = {}
        state.setdefault("started", {})
        state["users"] = [p for p in state.get("users", []) if _pid_alive(p)]
        yield state
        _DNSSD_STATE.write_text(json.dumps(state))


def _stop_pid(pid: int, binary: str) -> None:
    if not _pid_alive(pid, binary):
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while _pid_alive(pid, binary) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _pid_alive(pid, binary):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)


def acquire_dnssd(log_dir: str | os.PathLike[str]) -> None:
    """Make sure a system D-Bus and avahi-daemon run, starting the missing ones; register this process."""
    with _dnssd_register() as state:
        if not _socket_answers(DBUS_SOCKET):
            Path("/run/dbus").mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(DBUS_SOCKET)  # stale: nothing answers on it
            proc = ManagedProcess([require_binary("dbus-daemon"), "--system", "--nofork", "--nopidfile"],
                                  name="dbus", log_dir=log_dir)
            proc.start(ready=lambda: _socket_answers(DBUS_SOCKET), timeout=15)
            state["started"]["dbus-daemon"] = proc.pid
        if not _avahi_running():
            proc = ManagedProcess([require_binary("avahi-daemon"), "--no-drop-root", "--no-rlimits"],
                                  name="avahi", log_dir=log_dir)
            proc.start(ready=_avahi_running, timeout=15)
            state["started"]["avahi-daemon"] = proc.pid
        state["users"].append(os.getpid())


def release_dnssd() -> None:
    """Unregister this process; the last user stops the daemons that a test process started."""
    with _dnssd_register() as state:
        state["users"] = [p for p in state["users"] if p != os.getpid()]
        if state["users"]:
            return
        for binary in ("avahi-daemon", "dbus-daemon"):
            pid = state["started"].pop(binary, None)
            if pid:
                _stop_pid(pid, binary)


# --- the stack ----------------------------------------------------------------------------------------

@dataclass
class FaultControl:
    """Tells the printer's ``-c`` program how the next job should end (one of FAULT_MODES)."""

    path: Path

    def set(self, mode: str) -> None:
        if mode not in FAULT_MODES:
            raise ValueError(f"unknown fault mode {mode!r}; known: {', '.join(FAULT_MODES)}")
        self.path.write_text(mode + "\n")


@dataclass
class CupsStack:
    root: Path  # the private ServerRoot (short, for the socket)
    server: str  # what a CUPS client passes as server: the socket path
    http_port: int  # cupsd's loopback TCP port
    queue: str
    printer_port: int
    printer_spool: Path  # ippeveprinter's -d: every received document is kept here (-k)
    request_root: Path  # cupsd's own spool (d<job>-001 files while a job is kept)
    faults: FaultControl
    cupsd: ManagedProcess
    printer: ManagedProcess
    log_dir: Path
    _printer_argv: list[str] = field(default_factory=list, repr=False)

    @property
    def device_uri(self) -> str:
        return f"ipp://localhost:{self.printer_port}/ipp/print"

    def env(self) -> dict[str, str]:
        return {**os.environ, "CUPS_SERVER": self.server}

    def admin(self, *argv: str, timeout: float = 30) -> str:
        """Run a CUPS command-line tool (lpadmin, cupsenable, lpstat, ...) against this cupsd."""
        done = subprocess.run(list(argv), env=self.env(), capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise ServiceFailed(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()}")
        return done.stdout

    def kept_documents(self) -> list[Path]:
        """Documents ippeveprinter received, oldest job first (files ``<job-id>-<job-name>.<ext>``)."""
        files = [p for p in self.printer_spool.iterdir() if p.is_file() and not p.name.endswith(".prn")]
        return sorted(files, key=lambda p: int(p.name.split("-", 1)[0]) if p.name[0].isdigit() else 0)

    def request_files(self) -> list[Path]:
        """Document files cupsd still holds for any job (``d<job>-<doc>``)."""
        return sorted(p for p in self.request_root.iterdir() if p.name.startswith("d"))

    def stop_printer(self) -> None:
        """The printer is switched off: connections to it are refused."""
        self.printer.signal(signal.SIGCONT)
        self.printer.stop()

    def start_printer(self) -> None:
        """The printer is switched on again (same port and spool; its state reasons start clean)."""
        self.printer = ManagedProcess(self._printer_argv, name="ippeveprinter", log_dir=self.log_dir)
        self.printer.start(ready=lambda: port_open("127.0.0.1", self.printer_port), timeout=20)

    def freeze_printer(self) -> None:
        """The printer hangs: it accepts TCP connections (kernel backlog) but never answers."""
        self.printer.signal(signal.SIGSTOP)

    def thaw_printer(self) -> None:
        self.printer.signal(signal.SIGCONT)


def _write_cupsd_config(root: Path, http_port: int) -> tuple[Path, Path]:
    for sub in ("spool", "cache", "state", "tmp", "log", "ppd"):
        (root / sub).mkdir()
        shutil.chown(root / sub, "lp", "lp")
    (root / "spool" / "tmp").mkdir()
    shutil.chown(root / "spool" / "tmp", "lp", "lp")
    os.chmod(root, 0o755)  # filters and backends run as lp and must reach their files
    conf = root / "cupsd.conf"
    conf.write_text(f"""LogLevel debug
Listen 127.0.0.1:{http_port}
Listen {root}/cups.sock
Browsing No
WebInterface No
PreserveJobFiles No
PreserveJobHistory Yes
<Location />
  Order allow,deny
  Allow all
</Location>
""")
    files = root / "cups-files.conf"
    files.write_text(f"""ServerRoot {root}
RequestRoot {root}/spool
CacheDir {root}/cache
StateDir {root}/state
TempDir {root}/spool/tmp
ErrorLog {root}/log/error_log
AccessLog {root}/log/access_log
PageLog {root}/log/page_log
User lp
Group lp
""")
    return conf, files


def _fresh_root(root: str | os.PathLike[str] | None) -> Path:
    if root is None:
        return Path(tempfile.mkdtemp(prefix="cups-"))  # short: the socket path must stay under 108 bytes
    path = Path(root)
    if len(str(path / "cups.sock")) >= 108:
        raise ServiceFailed(f"the CUPS socket path {path / 'cups.sock'} is too long for a Unix socket (108 bytes)")
    if _socket_answers(str(path / "cups.sock")):
        raise ServiceFailed(f"a cupsd still answers on {path / 'cups.sock'}; stop it (its pid is in "
                            f"{path}/log or `ps`) before starting another one there")
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    for parent in path.parents:  # cupsd's filters and backends run as lp and must reach the spool
        if not parent.stat().st_mode & 0o001:
            raise ServiceFailed(f"{parent} is not searchable by other users (mode "
                                f"{oct(parent.stat().st_mode & 0o777)}), so CUPS (user lp) cannot reach {path}; "
                                f"`chmod o+x {parent}` or put the CUPS root elsewhere")
    return path


@contextlib.contextmanager
def cups_stack(log_dir: str | os.PathLike[str] | None = None, *, queue: str = "kiosk-a4",
               formats: str = "application/pdf", printer_name: str = "KioskTestPrinter",
               root: str | os.PathLike[str] | None = None) -> Iterator[CupsStack]:
    """Start dbus/avahi (if needed), ippeveprinter and a private cupsd with one driverless queue.

    Everything started here is stopped on exit by pid. ``log_dir`` collects each service's log (a temp
    dir by default, kept after the run for post-mortems). ``root`` fixes the ServerRoot (the demo's
    config names the socket ``<root>/cups.sock``); whatever an earlier run left there is replaced.
    """
    for binary in ("cupsd", "ippeveprinter", "lpadmin"):
        require_binary(binary)
    root = _fresh_root(root)
    logs = Path(log_dir) if log_dir else root / "log"
    logs.mkdir(parents=True, exist_ok=True)
    started: list[ManagedProcess] = []
    stack: CupsStack | None = None
    acquire_dnssd(logs)
    try:
        spool = root / "printer"
        spool.mkdir()
        control = FaultControl(root / "printer-mode")
        control.set("ok")
        program = root / "fault-printer.sh"
        program.write_text(FAULT_PROGRAM.format(control=control.path))
        program.chmod(0o755)
        printer_port = free_port()
        printer_argv = [require_binary("ippeveprinter"), "-n", "localhost", "-p", str(printer_port), "-r", "off",
                        "-f", formats, "-k", "-d", str(spool), "-c", str(program), printer_name]
        printer = ManagedProcess(printer_argv, name="ippeveprinter", log_dir=logs)
        printer.start(ready=lambda: port_open("127.0.0.1", printer_port), timeout=20)
        started.append(printer)

        http_port = free_port()
        conf, files = _write_cupsd_config(root, http_port)
        sock = str(root / "cups.sock")
        cupsd = ManagedProcess([require_binary("cupsd"), "-f", "-c", str(conf), "-s", str(files)],
                               name="cupsd", log_dir=logs)
        cupsd.start(ready=lambda: _socket_answers(sock), timeout=20)
        started.append(cupsd)

        stack = CupsStack(root=root, server=sock, http_port=http_port, queue=queue, printer_port=printer_port,
                          printer_spool=spool, request_root=root / "spool", faults=control, cupsd=cupsd,
                          printer=printer, log_dir=logs, _printer_argv=printer_argv)
        stack.admin("lpadmin", "-p", queue, "-E", "-v", stack.device_uri, "-m", "everywhere", timeout=60)
        wait_until(lambda: "enabled" in stack.admin("lpstat", "-p", queue), 10, f"queue {queue} enabled")
        yield stack
    finally:
        if stack is not None:  # the printer process may have been swapped by stop/start_printer
            started = [stack.printer, stack.cupsd]
        for proc in reversed(started):
            proc.signal(signal.SIGCONT)  # a frozen printer would not act on SIGTERM
            proc.stop()
        release_dnssd()
