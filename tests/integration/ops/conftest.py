"""Fixtures for the operations tests: a release key, small bundles of a stand-in release (see
fake_release.py), a kiosk journal, and an install root with release 1.0 already running."""
from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from kiosk.journal import Journal
from kiosk.ops.release import build_bundle, generate_release_key, load_private_key
from kiosk.ops.update import JournalGate, Layout, Updater
from tests.integration.ops.fake_release import make_wheel

DEVICE_ID = "ops-test-kiosk-01"


@dataclass
class ReleaseShop:
    directory: Path
    public_key: Path

    def bundle(self, version: str, variant: str = "good", **overrides: object) -> Path:
        out = self.directory / f"{version}-{variant}-{len(overrides)}.bundle"
        if out.exists() and not overrides:
            return out
        wheels = self.directory / f"wheels-{version}-{variant}"
        make_wheel(wheels, version, variant)
        args = dict(wheels_dir=wheels, version=version, requirement="madoguchi",
                    key=load_private_key(self.directory / "release.pem"), out=out)
        args.update(overrides)
        return build_bundle(**args)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def shop() -> Iterator[ReleaseShop]:
    directory = Path(tempfile.mkdtemp(prefix="ops-rel-"))
    generate_release_key(directory / "release.pem")
    yield ReleaseShop(directory, directory / "release.pem.pub")
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def base_install(shop: ReleaseShop) -> Iterator[Path]:
    """An install root with release 1.0 committed; tests copy it (copying is much faster than installing)."""
    base = Path(tempfile.mkdtemp(prefix="ops-base-"))
    Updater(Layout(base / "root"), shop.public_key).update(shop.bundle("1.0"))
    yield base / "root"
    shutil.rmtree(base, ignore_errors=True)


@dataclass
class Kiosk:
    root: Path
    data_dir: Path
    journal: Journal

    @property
    def layout(self) -> Layout:
        return Layout(self.root)

    def gate(self) -> JournalGate:
        return JournalGate(self.journal.path, DEVICE_ID)


@pytest.fixture
def kiosk(base_install: Path, tmp_path: Path) -> Iterator[Kiosk]:
    root = tmp_path / "root"
    shutil.copytree(base_install, root, symlinks=True)
    journal = Journal(tmp_path / "data" / "journal.sqlite3", DEVICE_ID)
    yield Kiosk(root, tmp_path / "data", journal)
    journal.close()
