"""Fixtures of the booted-system tests.

Session: the cached base root (scripts/build-root --base), release bundles of THIS working tree (the
dependency wheels cached outside the clone, keyed by setup.py; only the project's own wheel is built per
run), and the root with scripts/install-pi run in it (scripts/build-root DIR BUNDLE ...).

Module: a private overlay of that root, the emulated devices of the demo (drivers/sim/demo.py: virtual
card behind pcscd, ccTalk on a pty, ESC/POS on TCP, CUPS + IPP printer, QR provider, city hall) on the
host, attached to the container the way a Pi's devices are, by its config: the pcscd socket bound at
/run/pcscd, the ccTalk pty at /dev/madoguchi-cctalk, CUPS's socket under /run/madoguchi-sim, TCP ports
on the shared loopback. Then one boot; tests that cut the power boot it again.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from tests.support.services import free_port
from tests.system.machine import REPO, Machine, mount_overlay, unmount, why_nspawn_cannot_run

CACHE = Path(os.environ.get("MADOGUCHI_CACHE", "/var/cache/madoguchi"))
REQUIREMENT = "madoguchi[devices,ui]"  # what a kiosk runs (city hall's extras stay off the kiosk)
DEVICE_ID = "system-kiosk-01"
SIM_DIR = "/run/madoguchi-sim"
TECH_KEY_NAME = "technician_ed25519"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    reason = None
    for item in items:
        if "tests/system/" in str(item.fspath):
            reason = reason or why_nspawn_cannot_run() or ""
            if reason:
                item.add_marker(pytest.mark.skip(reason=reason))


# --- releases -----------------------------------------------------------------------------------

def _pip(*args: str, timeout: float = 1800) -> None:
    done = subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=REPO)
    if done.returncode != 0:
        raise AssertionError(f"pip {' '.join(args[:3])} failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")


def dependency_wheels() -> Path:
    """Every dependency of REQUIREMENT as wheels, built once per setup.py (pip's own cache and index)."""
    key = hashlib.sha256((REPO / "setup.py").read_bytes() + REQUIREMENT.encode()).hexdigest()[:16]
    target = CACHE / f"wheels-{key}"
    if (target / ".complete").exists():
        return target
    scratch = Path(tempfile.mkdtemp(prefix=".wheels-", dir=CACHE))
    _pip("wheel", "--quiet", "--wheel-dir", str(scratch), f".[{REQUIREMENT.split('[')[1]}")
    for own in scratch.glob("madoguchi-*.whl"):
        own.unlink()
    (scratch / ".complete").write_text(key)
    shutil.rmtree(target, ignore_errors=True)
    scratch.rename(target)
    return target


def project_wheel(out: Path) -> Path:
    _pip("wheel", "--quiet", "--no-deps", "--no-build-isolation", "--wheel-dir", str(out), ".", timeout=300)
    for leftover in (REPO / "build", *REPO.glob("*.egg-info")):
        if leftover.name == "build":
            shutil.rmtree(leftover, ignore_errors=True)
    return next(out.glob("madoguchi-*.whl"))


def broken_copy(wheel: Path, out_dir: Path, module: str, text: str) -> Path:
    """The same wheel with one module replaced (a release with a bug only the booted kiosk shows)."""
    import base64
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / wheel.name
    with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        record_name = next(n for n in src.namelist() if n.endswith(".dist-info/RECORD"))
        records = []
        for name in src.namelist():
            if name == record_name:
                continue
            data = text.encode() if name == module else src.read(name)
            dst.writestr(name, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            records.append(f"{name},sha256={digest},{len(data)}")
        dst.writestr(record_name, "\n".join(records + [f"{record_name},,"]) + "\n")
    return out


@dataclass
class Releases:
    directory: Path
    key: Path
    public_key: Path
    deps: Path
    wheel: Path

    def bundle(self, version: str, *, wheel: Path | None = None) -> Path:
        from kiosk.ops.release import build_bundle, load_private_key
        out = self.directory / f"madoguchi-{version}.bundle"
        if out.exists():
            return out
        wheels = self.directory / f"wheels-{version}"
        wheels.mkdir()
        for dep in self.deps.glob("*.whl"):
            os.link(dep, wheels / dep.name) if dep.stat().st_dev == wheels.stat().st_dev else shutil.copy(dep, wheels)
        shutil.copy(wheel or self.wheel, wheels)
        build_bundle(wheels_dir=wheels, version=version, requirement=REQUIREMENT, key=load_private_key(self.key),
                     out=out)
        shutil.rmtree(wheels)
        return out


@pytest.fixture(scope="session")
def releases() -> Iterator[Releases]:
    from kiosk.ops.release import generate_release_key
    CACHE.mkdir(parents=True, exist_ok=True)
    directory = Path(tempfile.mkdtemp(prefix="sys-releases-", dir=CACHE))
    generate_release_key(directory / "release.pem")
    wheel = project_wheel(directory / "own")
    yield Releases(directory, directory / "release.pem", directory / "release.pem.pub", dependency_wheels(), wheel)
    shutil.rmtree(directory, ignore_errors=True)


# --- the installed root ---------------------------------------------------------------------------

@dataclass
class InstalledRoot:
    base: Path
    upper: Path  # what install-pi added, used as the middle layer of each module's overlay
    technician_key: Path  # private key of the test technician (its .pub is installed)
    install_log: str


@pytest.fixture(scope="session")
def installed_root(releases: Releases) -> Iterator[InstalledRoot]:
    done = subprocess.run([str(REPO / "scripts" / "build-root"), "--base"], capture_output=True, text=True,
                          timeout=1800, cwd=REPO)
    assert done.returncode == 0, f"scripts/build-root --base failed:\n{done.stderr[-3000:]}"
    base = Path(done.stdout.strip().splitlines()[-1])
    work = Path(tempfile.mkdtemp(prefix="sys-root-"))
    key = work / TECH_KEY_NAME
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "test-technician", "-f", str(key)], check=True)
    merged = work / "merged"
    mount_overlay([base], work / "upper", merged)
    try:
        config = work / "kiosk.toml"
        # This kiosk's id from the start: install-pi's health check already opens the journal, which belongs
        # to one device for ever.
        config.write_text(_sub((REPO / "config" / "kiosk.toml").read_text(encoding="utf-8"),
                               r'^device_id = "[^"]*"', f'device_id = "{DEVICE_ID}"'), encoding="utf-8")
        done = subprocess.run([str(REPO / "scripts" / "build-root"), str(merged), str(releases.bundle("1.0")),
                               "--release-key", str(releases.public_key), "--config", str(config),
                               "--technician-keys", f"{key}.pub"],
                              capture_output=True, text=True, timeout=1800, cwd=REPO)
        assert done.returncode == 0, f"scripts/build-root failed:\n{done.stdout[-4000:]}\n{done.stderr[-3000:]}"
    finally:
        unmount(merged)
    yield InstalledRoot(base, work / "upper", key, done.stdout)
    shutil.rmtree(work, ignore_errors=True)


# --- the emulated devices, and a booted kiosk -----------------------------------------------------

def _sub(text: str, pattern: str, replacement: str) -> str:
    new, count = re.subn(pattern, replacement, text, flags=re.M)
    assert count, f"config: expected {pattern!r}"
    return new


@dataclass
class Kiosk:
    machine: Machine
    world: object  # drivers.sim.demo.EmulatedWorld
    ssh_port: int
    technician_key: Path
    releases: Releases
    host_data: Path

    def ssh(self, command: str, *, user: str = "technician", check: bool = True, tty: bool = False,
            extra: tuple[str, ...] = (), timeout: float = 120) -> subprocess.CompletedProcess[str]:
        argv = ["ssh", "-p", str(self.ssh_port), "-i", str(self.technician_key), "-o", "BatchMode=yes",
                "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
                "-o", "IdentitiesOnly=yes", *(["-tt"] if tty else []), *extra, f"{user}@127.0.0.1", command]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        if check and done.returncode != 0:
            raise AssertionError(f"ssh {command!r} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-2000:]}")
        return done

    def copy_in(self, source: Path, inside: str) -> str:
        target = self.machine.path(inside)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        return inside


def _prepare_world(host_root: Path) -> tuple[object, Path, Path]:
    """The demo's emulated world for a kiosk whose config is written into the container."""
    from tests.e2e.conftest import write_demo_configs
    configs = write_demo_configs()
    text = configs.kiosk.read_text(encoding="utf-8")
    text = _sub(text, r'^device_id = "demo-kiosk-01"', f'device_id = "{DEVICE_ID}"')
    host_data = configs.root / "var" / "demo"
    text = _sub(text, r'^data_dir = "var/demo"', f'data_dir = "{host_data}"')
    configs.kiosk.write_text(text, encoding="utf-8")
    from kiosk.compose import load
    from kiosk.compose.demo import plan_world
    from drivers.sim.demo import EmulatedWorld
    config = load(str(configs.kiosk))
    world = EmulatedWorld(plan_world(config, str(configs.cityhall)))
    return world, configs.kiosk, host_data


@pytest.fixture(scope="module")
def kiosk(installed_root: InstalledRoot, releases: Releases) -> Iterator[Kiosk]:
    work = Path(tempfile.mkdtemp(prefix="sys-kiosk-"))
    root = work / "root"
    mount_overlay([installed_root.upper, installed_root.base], work / "upper", root)
    world, host_config, host_data = _prepare_world(root)
    machine: Machine | None = None
    try:
        world.__enter__()  # type: ignore[attr-defined]
        ssh_port = free_port()
        machine = attach_devices(root, world, host_config, host_data, ssh_port)
        machine.boot()
        yield Kiosk(machine, world, ssh_port, installed_root.technician_key, releases, host_data)
    finally:
        if machine is not None and machine.process is not None:
            machine.shutdown()
        world.__exit__(None, None, None)  # type: ignore[attr-defined]
        unmount(root)
        shutil.rmtree(work, ignore_errors=True)


def attach_devices(root: Path, world: object, host_config: Path, host_data: Path, ssh_port: int) -> Machine:
    """Write the container side of the devices (config, binds, drop-ins) and return the Machine."""
    plan = world.plan  # type: ignore[attr-defined]
    text = host_config.read_text(encoding="utf-8")
    text = _sub(text, rf'^data_dir = "{re.escape(str(host_data))}"', 'data_dir = "/var/lib/madoguchi"')
    text = text.replace(str(plan.run_dir), SIM_DIR)
    text = _sub(text, rf'^port = "{SIM_DIR}/cctalk"', 'port = "/dev/madoguchi-cctalk"')
    etc = root / "etc"
    (etc / "madoguchi" / "kiosk.toml").write_text(text, encoding="utf-8")
    data = root / "var" / "lib" / "madoguchi"
    owner = data.stat()
    shutil.copyfile(host_data / "device-key.pem", data / "device-key.pem")
    os.chown(data / "device-key.pem", owner.st_uid, owner.st_gid)
    os.chmod(data / "device-key.pem", 0o600)
    # The session has no screen or tty here: wlroots' headless backend, software rendering.
    dropin = etc / "systemd" / "system" / "kiosk.service.d"
    dropin.mkdir(parents=True, exist_ok=True)
    (dropin / "90-headless.conf").write_text(
        "[Service]\nEnvironment=WLR_BACKENDS=headless WLR_LIBINPUT_NO_DEVICES=1 WLR_RENDERER=pixman\n"
        "TTYPath=\nTTYReset=no\nTTYVHangup=no\nStandardInput=null\nUtmpIdentifier=\n")
    # The card reader is the host's pcscd (its socket bound below), not one of the container's own.
    (etc / "systemd" / "system" / "pcscd.socket").unlink(missing_ok=True)
    os.symlink("/dev/null", etc / "systemd" / "system" / "pcscd.socket")
    # The container shares the host's network: its cupsd keeps to its socket, sshd to a free port.
    cupsd = etc / "cups" / "cupsd.conf"
    cupsd.write_text(re.sub(r"^(Listen|Port) .*$", "", cupsd.read_text(), flags=re.M) + "Listen /run/cups/cups.sock\n")
    (etc / "ssh" / "sshd_config.d" / "90-test-port.conf").write_text(f"Port {ssh_port}\nListenAddress 127.0.0.1\n")
    cctalk = os.path.realpath(plan.cctalk_link)
    binds = [f"--bind={world.pcsc.socket_path.parent}:/run/pcscd",  # type: ignore[attr-defined]
             f"--bind={plan.run_dir}:{SIM_DIR}", f"--bind={cctalk}:/dev/madoguchi-cctalk"]
    return Machine(root, binds)
