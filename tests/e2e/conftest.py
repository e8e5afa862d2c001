"""End-to-end fixtures: the demo's own configs (config/demo.toml, config/cityhall.toml, the demo registry)
copied into a short temp dir with free ports and private paths, so a run never meets the machine's own
demo or another test run; and the demo's emulated world (drivers/sim/demo.py) started on them."""
from __future__ import annotations

import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from tests.support.services import free_port

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class DemoConfigs:
    root: Path  # <root>/config/{demo.toml,cityhall.toml,demo-registry.json}; data under <root>/var
    kiosk: Path
    cityhall: Path
    run_dir: Path
    output: Path

    @property
    def data_dir(self) -> Path:
        return self.root / "var" / "demo"


def _substitute(text: str, pattern: str, replacement: str, where: str) -> str:
    new, count = re.subn(pattern, replacement, text, flags=re.M)
    if count == 0:  # the demo config changed shape: this copy would silently share its ports
        raise AssertionError(f"{where}: expected {pattern!r} to rewrite it for a private run")
    return new


def write_demo_configs(*, card_slot: int = 0) -> DemoConfigs:
    """The demo's configs, unchanged but for ports and paths (and the reader slot)."""
    root = Path(tempfile.mkdtemp(prefix="e2e-"))  # short: cupsd's socket path must stay under 108 bytes
    root.chmod(0o755)  # CUPS runs its filters as lp: they must reach <root>/run/cups
    config_dir = root / "config"
    config_dir.mkdir()
    run_dir = root / "run"
    cityhall_port, escpos_port, qr_port = free_port(), free_port(), free_port()
    kiosk = (REPO / "config" / "demo.toml").read_text(encoding="utf-8")
    kiosk = _substitute(kiosk, r"http://127\.0\.0\.1:8470", f"http://127.0.0.1:{cityhall_port}", "demo.toml [cityhall]")
    kiosk = _substitute(kiosk, r"http://127\.0\.0\.1:8471", f"http://127.0.0.1:{qr_port}", "demo.toml [qr]")
    kiosk = _substitute(kiosk, r"^port = 9100$", f"port = {escpos_port}", "demo.toml [receipt_printer]")
    kiosk = _substitute(kiosk, r"/tmp/madoguchi-demo", str(run_dir), "demo.toml run paths")
    kiosk = _substitute(kiosk, r"Virtual PCD 00 00", f"Virtual PCD 00 {card_slot:02d}", "demo.toml [card]")
    cityhall = (REPO / "config" / "cityhall.toml").read_text(encoding="utf-8")
    cityhall = _substitute(cityhall, r"^port = 8470\b", f"port = {cityhall_port}", "cityhall.toml [service]")
    cityhall = _substitute(cityhall, r'^log_level = "info"', 'log_level = "warning"', "cityhall.toml [service]")
    (config_dir / "demo.toml").write_text(kiosk, encoding="utf-8")
    (config_dir / "cityhall.toml").write_text(cityhall, encoding="utf-8")
    shutil.copyfile(REPO / "config" / "demo-registry.json", config_dir / "demo-registry.json")
    return DemoConfigs(root, config_dir / "demo.toml", config_dir / "cityhall.toml", run_dir, root / "demo-output")


@pytest.fixture(scope="module")
def demo_configs() -> Iterator[DemoConfigs]:
    configs = write_demo_configs()
    yield configs
    shutil.rmtree(configs.root, ignore_errors=True)
