"""`kioskctl update` / `rollback` in a temporary install root, with small stand-in releases.

- a damaged or foreign bundle is refused before anything on disk changes;
- SIGKILL after every step leaves `current` on a complete, healthy release (old or new), and the next
  start (boot guard) plus a re-run of the update end on the new release, committed, in service;
- a release failing its health check (import error, failing self-test) is rolled back automatically;
- an update requested while a transaction is open waits for it to end.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from kiosk.errors import BundleRejected, UpdateBlocked, UpdateFailed
from kiosk.ops import bootguard
from kiosk.ops.lifecycle import read_switch
from kiosk.ops.update import Updater, release_health
from tests.integration.ops.conftest import DEVICE_ID, Kiosk, ReleaseShop

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
STEPS = ("verified", "staged", "venv", "installed", "ready", "hold", "idle", "migrated", "pending", "switched",
         "restarted", "healthy", "committed")


def snapshot(*directories: Path) -> dict[str, str]:
    found = {}
    for directory in directories:
        for dirpath, dirnames, files in os.walk(directory):
            for name in dirnames + files:
                if name.endswith("-shm"):  # SQLite's shared-memory index: readers update it, it holds no data
                    continue
                path = Path(dirpath) / name
                if path.is_symlink():
                    found[str(path)] = "-> " + os.readlink(path)
                elif path.is_file():
                    found[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
                else:
                    found[str(path)] = "dir"
    return found


def updater(kiosk: Kiosk, shop: ReleaseShop, **kw: object) -> Updater:
    return Updater(kiosk.layout, shop.public_key, gate=kiosk.gate(), wait_interval=0.05, **kw)  # type: ignore[arg-type]


def runnable(kiosk: Kiosk) -> str:
    """The release `current` names, after checking it is complete and passes its own health check."""
    version = kiosk.layout.current_version()
    assert version is not None and kiosk.layout.release(version).is_dir()
    assert release_health(kiosk.layout, version) is None
    return version


def test_a_good_update_switches_commits_and_keeps_the_kiosk_in_service(kiosk: Kiosk, shop: ReleaseShop) -> None:
    steps: list[str] = []
    old, new = updater(kiosk, shop, on_step=lambda s, d: steps.append(s)).update(shop.bundle("2.0"))
    assert (old, new) == ("1.0", "2.0") and runnable(kiosk) == "2.0"
    assert steps == list(STEPS)
    state = bootguard.load_state(kiosk.root)
    assert (state["committed"], state["previous"], state["pending"]) == ("2.0", "1.0", None)
    assert read_switch(kiosk.journal).in_service  # held off during the switch, back on after
    assert (kiosk.root / "bin" / "madoguchi-bootguard").exists()
    assert updater(kiosk, shop).rollback() == ("2.0", "1.0") and runnable(kiosk) == "1.0"


@pytest.mark.parametrize("damage", ["flipped byte", "wrong compatible", "other key"])
def test_a_bad_bundle_changes_nothing(kiosk: Kiosk, shop: ReleaseShop, damage: str, tmp_path: Path) -> None:
    if damage == "flipped byte":
        bundle = tmp_path / "damaged.bundle"
        data = bytearray(shop.bundle("2.0").read_bytes())
        data[len(data) // 2] ^= 0x40
        bundle.write_bytes(bytes(data))
    elif damage == "wrong compatible":
        bundle = shop.bundle("2.0", compatible="madoguchi-cityhall")
    else:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
        bundle = shop.bundle("2.0", key=Ed25519PrivateKey.generate())
    before = snapshot(kiosk.root, kiosk.data_dir)
    switch_before = read_switch(kiosk.journal)
    with pytest.raises(BundleRejected):
        updater(kiosk, shop).update(bundle)
    assert snapshot(kiosk.root, kiosk.data_dir) == before
    assert read_switch(kiosk.journal) == switch_before


@pytest.mark.parametrize("step", STEPS[:-1])
def test_sigkill_at_every_step_leaves_a_runnable_release(kiosk: Kiosk, shop: ReleaseShop, step: str) -> None:
    bundle = shop.bundle("2.0")
    child = subprocess.run([sys.executable, "-m", "tests.integration.ops.update_child", str(kiosk.root),
                            str(shop.public_key), str(kiosk.journal.path), DEVICE_ID, str(bundle), step],
                           capture_output=True, text=True, timeout=120, cwd=str(REPO))
    assert child.returncode == -9, child.stderr
    assert child.stdout.split()[-1] == step
    version = runnable(kiosk)
    assert version == ("1.0" if STEPS.index(step) < STEPS.index("switched") else "2.0")
    # the next start: the boot guard counts a trial of an uncommitted release and never breaks the old one
    bootguard.guard(kiosk.root, log=lambda _: None)
    assert runnable(kiosk) == version
    # the technician runs the update again: it finishes, and the kiosk is back in service
    updater(kiosk, shop).update(bundle)
    assert runnable(kiosk) == "2.0"
    state = bootguard.load_state(kiosk.root)
    assert (state["committed"], state["pending"]) == ("2.0", None)
    assert read_switch(kiosk.journal).in_service
    assert not list(kiosk.layout.releases.glob(".*.tmp")) and not (kiosk.root / "current.new").exists()


@pytest.mark.parametrize("variant", ["import_error", "selftest_fails"])
def test_a_release_failing_its_health_check_is_rolled_back(kiosk: Kiosk, shop: ReleaseShop, variant: str) -> None:
    steps: list[str] = []
    with pytest.raises(UpdateFailed, match="went back to release 1.0") as failure:
        updater(kiosk, shop, on_step=lambda s, d: steps.append(s)).update(shop.bundle("2.1", variant))
    assert ("ModuleNotFoundError" if variant == "import_error" else "self-test cash") in str(failure.value)
    assert steps[-5:] == ["switched", "restarted", "rolling_back", "switched", "rolled_back"]
    assert runnable(kiosk) == "1.0"
    state = bootguard.load_state(kiosk.root)
    assert state["bad"] == ["2.1"] and state["committed"] == "1.0" and state["pending"] is None
    assert read_switch(kiosk.journal).in_service


def test_an_update_requested_mid_transaction_waits_for_it_to_end(kiosk: Kiosk, shop: ReleaseShop) -> None:
    txn = kiosk.journal.begin_transaction("ja", "PAYING")
    steps: list[str] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            updater(kiosk, shop, on_step=lambda s, d: steps.append(s)).update(shop.bundle("2.0"))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    deadline = time.monotonic() + 60
    while "waiting" not in steps and time.monotonic() < deadline and worker.is_alive():
        time.sleep(0.05)
    time.sleep(1.0)
    assert "waiting" in steps and "switched" not in steps, (steps, errors)
    assert kiosk.layout.current_version() == "1.0"
    switch = read_switch(kiosk.journal)
    assert not switch.in_service and switch.reason == "update"  # no new resident while it waits
    kiosk.journal.close_transaction(txn, "completed", "DONE")
    worker.join(60)
    assert not errors and steps[-1] == "committed"
    assert runnable(kiosk) == "2.0" and read_switch(kiosk.journal).in_service


def test_a_transaction_that_never_ends_gives_up_without_switching(kiosk: Kiosk, shop: ReleaseShop) -> None:
    kiosk.journal.begin_transaction("ja", "PRINTING")
    with pytest.raises(UpdateBlocked, match="still in progress"):
        updater(kiosk, shop, wait_timeout=0.5).update(shop.bundle("2.0"))
    assert kiosk.layout.current_version() == "1.0" and kiosk.layout.release("2.0").is_dir()
    assert read_switch(kiosk.journal).in_service
