"""Tiny stand-in releases for the update tests: a wheel whose ``kiosk.kioskctl`` keeps the release
contract the updater relies on (``migrate``, ``health``) and can be told to fail it — the production
bundle path (pip wheel of the whole project) is far too slow to run dozens of times.

Variants: ``good``; ``import_error`` (health imports a module that needs a missing dependency, as a
release with a forgotten requirement does); ``selftest_fails`` (health's self-test reports a failure).
"""
from __future__ import annotations

import base64
import hashlib
import zipfile
from pathlib import Path

KIOSKCTL = '''import sys
VARIANT = {variant!r}
VERSION = {version!r}

def main(argv):
    command = argv[0] if argv else ""
    if command == "migrate":
        print("journal at schema 1")
        return 0
    if command == "health":
        if VARIANT == "import_error":
            import kiosk.app  # noqa: F401 - needs a dependency the release forgot
        if VARIANT == "selftest_fails":
            print("self-test cash: FAIL coin acceptor does not answer", file=sys.stderr)
            return 1
        print("healthy", VERSION)
        return 0
    print("unknown command", command, file=sys.stderr)
    return 2

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
'''


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def make_wheel(directory: Path, version: str, variant: str = "good") -> Path:
    """Write ``madoguchi-<version>-py3-none-any.whl`` into ``directory``; returns its path."""
    directory.mkdir(parents=True, exist_ok=True)
    dist = f"madoguchi-{version}.dist-info"
    files = {
        "kiosk/__init__.py": b"",
        "kiosk/kioskctl.py": KIOSKCTL.format(variant=variant, version=version).encode(),
        "kiosk/app.py": b"import madoguchi_forgotten_dependency  # noqa: F401\n",
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: madoguchi\nVersion: {version}\n".encode(),
        f"{dist}/WHEEL": b"Wheel-Version: 1.0\nGenerator: madoguchi-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    path = directory / f"madoguchi-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as wheel:
        record = []
        for name, data in files.items():
            wheel.writestr(name, data)
            record.append(f"{name},{_record_hash(data)},{len(data)}")
        record.append(f"{dist}/RECORD,,")
        wheel.writestr(f"{dist}/RECORD", "\n".join(record) + "\n")
    return path
