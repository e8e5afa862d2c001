"""Installing a release bundle, switching to it atomically, and going back when it does not work.

    <root>/releases/<version>/    manifest.json, wheels/, venv/ — complete before it gets this name
    <root>/current -> releases/<version>
    <root>/update-state.json      committed / previous / pending / attempts / bad (see bootguard.py)
    <root>/bin/madoguchi-bootguard   the pre-start guard (copied at every update)

`kioskctl update BUNDLE` runs these steps; each is safe to interrupt (SIGKILL, power cut): until the
switch ``current`` names the old release, after it the new one, and both are complete.

 1. verify      signature, members, wheel hashes, compatibility (release.verify_bundle) — nothing written
 2. stage       unpack into releases/.<version>.tmp, re-hashing each wheel
 3. venv        ``python -m venv`` there, then pip from the bundled pip wheel, offline (--no-index)
 4. ready       fsync, then rename to releases/<version> (a half-built release never has a valid name)
 5. hold        service switch off (reason ``update``); wait until no transaction is in progress
 6. migrate     the new release's ``python -m kiosk.kioskctl migrate`` (additive migrations only)
 7. pending     update-state: pending=<new>, previous=<old>, attempts=0
 8. switch      ``current.new`` symlink renamed over ``current``; directory fsynced
 9. restart     ``systemctl restart kiosk.service`` (skipped where there is no systemd)
10. health      the new release's ``python -m kiosk.kioskctl health`` and, under systemd, the unit
                active and not restarting; failure ⇒ switch back, restart, mark bad
11. commit      update-state: committed=<new>; service switch back as it was; old releases pruned
"""
from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Protocol

from kiosk.errors import BundleRejected, OperationsError, UpdateBlocked, UpdateFailed
from kiosk.ops import bootguard
from kiosk.ops.bootguard import current_version, fsync_dir, load_state, save_state, switch_current
from kiosk.ops.release import DeviceProfile, VerifiedBundle, extract_payload, load_public_key, verify_bundle

log = logging.getLogger("kiosk.ops.update")

KEEP_RELEASES = 3
UPDATE_REASON = "update"
RELEASE_COMMAND_TIMEOUT = 300.0
INSTALL_TIMEOUT = 1800.0

Step = Callable[[str, str], None]


def _no_step(step: str, detail: str) -> None:
    log.info("update: %s %s", step, detail)


# --- what the updater needs from the running kiosk -------------------------------------------------

class KioskGate(Protocol):
    """Keeps residents out during the switch and tells whether a transaction is in progress."""

    def journal_schema(self) -> int | None: ...

    def hold(self) -> dict | None: ...

    def busy(self) -> bool: ...

    def release(self, previous: dict | None) -> None: ...


class NoKiosk:
    """First install: there is no journal yet, nobody to keep out."""

    def journal_schema(self) -> int | None:
        return None

    def hold(self) -> dict | None:
        return None

    def busy(self) -> bool:
        return False

    def release(self, previous: dict | None) -> None:
        return None


@dataclass
class JournalGate:
    """The real gate: the kiosk's journal. Holding flips the service switch off with reason ``update``
    (the engine finishes a transaction in progress, then shows the out-of-service screen); releasing
    puts the switch back as it was."""

    journal_path: Path
    device_id: str

    def _open(self, readonly: bool):  # -> Journal
        from kiosk.journal import Journal
        return Journal(self.journal_path, self.device_id, readonly=readonly)

    def journal_schema(self) -> int | None:
        if not self.journal_path.exists():
            return None
        journal = self._open(True)
        try:
            value = journal.meta("schema_version")
        finally:
            journal.close()
        return int(value) if value else None

    def hold(self) -> dict | None:
        from kiosk.ops.lifecycle import read_switch, write_switch
        if not self.journal_path.exists():
            return None
        journal = self._open(False)
        try:
            before = read_switch(journal)
            if before.in_service or before.reason != UPDATE_REASON:
                write_switch(journal, False, UPDATE_REASON)
            return before.as_dict() if before.reason != UPDATE_REASON else {"in_service": True, "reason": ""}
        finally:
            journal.close()

    def busy(self) -> bool:
        if not self.journal_path.exists():
            return False
        journal = self._open(True)
        try:
            return journal.transaction_in_progress()
        finally:
            journal.close()

    def release(self, previous: dict | None) -> None:
        from kiosk.ops.lifecycle import write_switch
        if previous is None:
            return
        journal = self._open(False)
        try:
            write_switch(journal, bool(previous["in_service"]), str(previous.get("reason", "")))
        finally:
            journal.close()


class ServiceControl(Protocol):
    def restart(self) -> None: ...

    def wait_healthy(self, timeout: float) -> str | None:
        """None when the kiosk service came up and stays up; else what is wrong."""


class NoService:
    """Where systemd does not run the kiosk (tests, a bench machine): restart and unit checks are skipped."""

    def restart(self) -> None:
        return None

    def wait_healthy(self, timeout: float) -> str | None:
        return None


@dataclass
class SystemdService:
    unit: str = "kiosk.service"
    hold_seconds: float = 20.0

    def _show(self, prop: str) -> str:
        out = subprocess.run(["systemctl", "show", "-p", prop, "--value", self.unit], capture_output=True,
                             text=True, timeout=30)
        return out.stdout.strip()

    def restart(self) -> None:
        result = subprocess.run(["systemctl", "restart", "--no-block", self.unit], capture_output=True, text=True,
                                timeout=60)
        if result.returncode != 0:
            raise OperationsError(f"systemctl restart {self.unit} failed: {result.stderr.strip()}")

    def wait_healthy(self, timeout: float) -> str | None:
        deadline = time.monotonic() + timeout
        while self._show("ActiveState") != "active":  # Type=notify: active only after READY=1
            if time.monotonic() > deadline:
                return f"{self.unit} did not report ready within {timeout:.0f} s ({self._show('ActiveState')})"
            time.sleep(1)
        restarts = self._show("NRestarts")
        time.sleep(self.hold_seconds)
        if self._show("ActiveState") != "active" or self._show("NRestarts") != restarts:
            return f"{self.unit} restarted or stopped within {self.hold_seconds:.0f} s of coming up"
        return None


# --- layout ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Layout:
    root: Path

    @property
    def releases(self) -> Path:
        return self.root / "releases"

    def release(self, version: str) -> Path:
        return self.releases / version

    def staging(self, version: str) -> Path:
        return self.releases / f".{version}.tmp"

    @property
    def current(self) -> Path:
        return self.root / "current"

    def current_version(self) -> str | None:
        return current_version(self.root)

    def installed(self) -> list[str]:
        if not self.releases.is_dir():
            return []
        found = [p for p in self.releases.iterdir() if p.is_dir() and not p.name.startswith(".")]
        return [p.name for p in sorted(found, key=lambda p: p.stat().st_mtime)]

    def python(self, version: str) -> Path:
        return self.release(version) / "venv" / "bin" / "python"


@contextlib.contextmanager
def update_lock(layout: Layout) -> Iterator[None]:
    layout.root.mkdir(parents=True, exist_ok=True)
    with (layout.root / "update.lock").open("a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UpdateBlocked(f"another update or rollback is running on this kiosk ({layout.root / 'update.lock'})") from None
        yield


def run_release_command(layout: Layout, version: str, *args: str, env: dict[str, str] | None = None,
                        timeout: float = RELEASE_COMMAND_TIMEOUT) -> subprocess.CompletedProcess[str]:
    """``<release>/venv/bin/python -m kiosk.kioskctl ARGS`` — the contract every release keeps."""
    return subprocess.run([str(layout.python(version)), "-m", "kiosk.kioskctl", *args], capture_output=True, text=True,
                          timeout=timeout, env={**clean_environment(), **(env or {})}, cwd=str(layout.root))


def clean_environment() -> dict[str, str]:
    """This process's environment without what would make a release's python see another tree's packages."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}


def release_health(layout: Layout, version: str, env: dict[str, str] | None = None) -> str | None:
    """None when the release's own `health` passes (imports, config, self-test); else its words."""
    try:
        result = run_release_command(layout, version, "health", env=env)
    except subprocess.TimeoutExpired:
        return f"release {version}: `kioskctl health` did not finish within {RELEASE_COMMAND_TIMEOUT:.0f} s"
    except OSError as exc:
        return f"release {version}: cannot run its python ({exc.strerror})"
    if result.returncode == 0:
        return None
    tail = (result.stderr.strip() or result.stdout.strip()).splitlines()[-5:]
    return f"release {version}: health check failed (exit {result.returncode}): " + " | ".join(tail)


# --- the updater -----------------------------------------------------------------------------------

@dataclass
class Updater:
    layout: Layout
    public_key_path: Path
    gate: KioskGate = field(default_factory=NoKiosk)
    service: ServiceControl = field(default_factory=NoService)
    device: DeviceProfile = field(default_factory=DeviceProfile)
    on_step: Step = _no_step
    wait_timeout: float = 900.0
    wait_interval: float = 1.0
    health_timeout: float = 120.0
    release_env: dict[str, str] = field(default_factory=dict)

    # -- verify, stage, venv --

    def verify(self, bundle: Path) -> VerifiedBundle:
        device = DeviceProfile(self.device.compatible, self.device.machine, self.device.python,
                               self.gate.journal_schema())
        verified = verify_bundle(bundle, load_public_key(self.public_key_path), device)
        self.on_step("verified", verified.manifest.version)
        return verified

    def prepare(self, verified: VerifiedBundle) -> str:
        """Steps 2-4: releases/<version> complete and named, or an exception with nothing named."""
        version = verified.manifest.version
        final = self.layout.release(version)
        if final.is_dir():
            self.on_step("ready", f"{version} (already installed)")
            return version
        self.layout.releases.mkdir(parents=True, exist_ok=True)
        for stale in self.layout.releases.glob(".*.tmp"):
            shutil.rmtree(stale, ignore_errors=True)
        staging = self.layout.staging(version)
        staging.mkdir()
        extract_payload(verified, staging)
        self.on_step("staged", str(staging))
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(staging / "venv")], check=True,
                       capture_output=True, timeout=120)
        self.on_step("venv", "created")
        pip_wheels = sorted((staging / "wheels").glob("pip-*.whl"))
        pip = [str(staging / "venv" / "bin" / "python"), f"{pip_wheels[-1]}/pip"] if pip_wheels else \
              [sys.executable, "-m", "pip", "--python", str(staging / "venv" / "bin" / "python")]
        # Not this process's PYTHONPATH: from a checkout (install-pi's first install) pip would see the
        # checkout's own egg-info as "already installed" and leave the release without its code.
        result = subprocess.run([*pip, "install", "--no-index", "--find-links", str(staging / "wheels"),
                                 "--no-cache-dir", "--disable-pip-version-check", "--no-warn-script-location",
                                 "--quiet", verified.manifest.requirement],
                                capture_output=True, text=True, timeout=INSTALL_TIMEOUT, env=clean_environment())
        if result.returncode != 0:
            shutil.rmtree(staging, ignore_errors=True)
            raise OperationsError(f"installing release {version} from its wheels failed; nothing was switched:\n"
                                  f"{result.stderr.strip()[-1500:]}")
        self.on_step("installed", verified.manifest.requirement)
        _fsync_tree(staging)
        os.rename(staging, final)
        fsync_dir(self.layout.releases)
        self.on_step("ready", version)
        return version

    # -- hold, switch, health --

    def _wait_idle(self) -> None:
        deadline = time.monotonic() + self.wait_timeout
        announced = False
        while self.gate.busy():
            if not announced:
                self.on_step("waiting", "a transaction is in progress; the switch waits until it ends")
                announced = True
            if time.monotonic() > deadline:
                raise UpdateBlocked(f"a transaction was still in progress after {self.wait_timeout:.0f} s; the "
                                    "new release is installed but not switched to: run the update again later")
            time.sleep(self.wait_interval)
        self.on_step("idle", "no transaction in progress")

    def _switch(self, version: str) -> None:
        switch_current(self.layout.root, version)
        self.on_step("switched", version)

    def _check(self, version: str) -> str | None:
        self.service.restart()
        self.on_step("restarted", version)
        problem = self.service.wait_healthy(self.health_timeout)
        return problem or release_health(self.layout, version, self.release_env)

    def _install_guard(self) -> None:
        target = self.layout.root / "bin" / "madoguchi-bootguard"
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".new")
        shutil.copyfile(bootguard.__file__, tmp)
        os.chmod(tmp, 0o755)
        os.replace(tmp, target)

    def switch_to(self, version: str, *, reason: str) -> str:
        """Steps 5-11 for an installed release (update and rollback share them). Returns the old version."""
        old = self.layout.current_version()
        held = self.gate.hold()
        try:
            self.on_step("hold", "service switch off (update)")
            self._wait_idle()
            result = run_release_command(self.layout, version, "migrate", env=self.release_env)
            if result.returncode != 0:
                raise UpdateFailed(f"release {version} could not migrate the journal; nothing was switched: "
                                   f"{(result.stderr or result.stdout).strip()[-800:]}")
            self.on_step("migrated", version)
            state = load_state(self.layout.root)
            state.update(pending=version, previous=old, attempts=0)
            save_state(self.layout.root, state)
            self.on_step("pending", version)
            self._switch(version)
            problem = self._check(version)
            if problem is not None:
                self._roll_back(version, old, problem)
                raise UpdateFailed(f"{problem}; went back to release {old}" if old else problem)
            self.on_step("healthy", version)
            state = load_state(self.layout.root)
            state.update(committed=version, previous=old if old != version else state.get("previous"),
                         pending=None, attempts=0)
            state["bad"] = [b for b in state.get("bad") or [] if b != version]
            state.setdefault("log", [])
            state["log"] = (state["log"] + [{"at": _now(), "to": version, "from": old, "why": reason}])[-20:]
            save_state(self.layout.root, state)
            self.on_step("committed", version)
        finally:
            self.gate.release(held)
        self._install_guard()
        self._prune()
        return old or ""

    def _roll_back(self, bad: str, old: str | None, problem: str) -> None:
        log.error("release %s failed its health check: %s", bad, problem)
        self.on_step("rolling_back", problem)
        state = load_state(self.layout.root)
        if old is None:
            state.update(pending=None, bad=sorted(set(state.get("bad") or []) | {bad}))
            save_state(self.layout.root, state)
            return
        self._switch(old)
        state.update(committed=old, pending=None, attempts=0, bad=sorted(set(state.get("bad") or []) | {bad}))
        save_state(self.layout.root, state)
        self.service.restart()
        self.on_step("rolled_back", old)

    def _prune(self) -> None:
        state = load_state(self.layout.root)
        keep = {state.get("committed"), state.get("previous"), self.layout.current_version()}
        installed = self.layout.installed()
        for version in installed[:-KEEP_RELEASES]:
            if version not in keep:
                shutil.rmtree(self.layout.release(version), ignore_errors=True)

    # -- the commands --

    def update(self, bundle: Path) -> tuple[str, str]:
        """`kioskctl update BUNDLE`: returns (old version, new version)."""
        verified = self.verify(bundle)  # before the lock file or anything else is written
        with update_lock(self.layout):
            version = self.prepare(verified)
            if version == self.layout.current_version() and load_state(self.layout.root).get("pending") is None:
                self.on_step("committed", f"{version} is already the running release")
                return version, version
            old = self.switch_to(version, reason="update")
            return old, version

    def rollback(self, to: str | None = None) -> tuple[str, str]:
        """`kioskctl rollback [--to VERSION]`: back to the previous (or the named) installed release."""
        with update_lock(self.layout):
            state = load_state(self.layout.root)
            current = self.layout.current_version()
            target = to or state.get("previous")
            if not target or target == current:
                others = [v for v in self.layout.installed() if v != current and v not in (state.get("bad") or [])]
                target = others[-1] if others and not to else target
            if not target or target == current:
                raise OperationsError("there is no other installed release to go back to "
                                      f"(installed: {', '.join(self.layout.installed()) or 'none'})")
            if not self.layout.release(target).is_dir():
                raise OperationsError(f"release {target} is not installed (installed: "
                                      f"{', '.join(self.layout.installed())})")
            self.switch_to(target, reason="rollback")
            return current or "", target


def _fsync_tree(root: Path) -> None:
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            path = Path(dirpath) / name
            if path.is_symlink():
                continue
            with contextlib.suppress(OSError), path.open("rb") as fh:
                os.fsync(fh.fileno())
        fsync_dir(Path(dirpath))


def _now() -> str:
    from kiosk.journal import utc_now
    return utc_now()


__all__ = ["BundleRejected", "JournalGate", "KioskGate", "Layout", "NoKiosk", "NoService", "ServiceControl", "SystemdService",
           "Updater", "release_health", "run_release_command"]
