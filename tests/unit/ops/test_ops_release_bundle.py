"""Release bundles: what is signed is what is installed; one flipped byte or a foreign bundle is refused."""
from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kiosk.errors import BundleRejected
from kiosk.ops.release import (MAGIC, DeviceProfile, build_bundle, generate_release_key, load_private_key,
                               load_public_key, verify_bundle)
from tests.integration.ops.fake_release import make_wheel

DEVICE = DeviceProfile(compatible="madoguchi-kiosk", machine="aarch64", python="3.11", journal_schema=1)


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Ed25519PrivateKey, Path]:
    key_path = tmp_path / "release.pem"
    generate_release_key(key_path)
    return load_private_key(key_path), Path(f"{key_path}.pub")


def _bundle(tmp_path: Path, key: Ed25519PrivateKey, **overrides: object) -> Path:
    wheels = tmp_path / "wheels"
    make_wheel(wheels, "2.0")
    args = dict(wheels_dir=wheels, version="2.0", requirement="madoguchi", key=key, out=tmp_path / "b.bundle",
                python="3.11", include_pip=False)
    args.update(overrides)
    return build_bundle(**args)  # type: ignore[arg-type]


def test_a_signed_bundle_verifies_and_says_what_it_holds(tmp_path: Path, keys: tuple) -> None:
    key, public = keys
    bundle = _bundle(tmp_path, key)
    verified = verify_bundle(bundle, load_public_key(public), DEVICE)
    assert verified.manifest.version == "2.0" and verified.manifest.machines == ("any",)
    assert list(verified.manifest.wheels) == ["madoguchi-2.0-py3-none-any.whl"]


def test_every_single_flipped_byte_is_refused(tmp_path: Path, keys: tuple) -> None:
    key, public = keys
    bundle = _bundle(tmp_path, key)
    original = bundle.read_bytes()
    size = len(original)
    # the magic line, the signature, tar headers, the manifest, the wheel, tar padding at the very end
    positions = sorted({0, len(MAGIC) - 1, len(MAGIC) + 10, len(MAGIC) + 90, size // 3, size // 2, size - 700,
                        size - 1} | set(range(len(MAGIC) + 89, size, max(1, size // 40))))
    pk = load_public_key(public)
    for position in positions:
        damaged = bytearray(original)
        damaged[position] ^= 0x01
        bundle.write_bytes(bytes(damaged))
        with pytest.raises(BundleRejected):
            verify_bundle(bundle, pk, DEVICE)
    bundle.write_bytes(original)
    verify_bundle(bundle, pk, DEVICE)


def test_a_bundle_signed_with_another_key_is_refused(tmp_path: Path, keys: tuple) -> None:
    _, public = keys
    bundle = _bundle(tmp_path, Ed25519PrivateKey.generate())
    with pytest.raises(BundleRejected, match="signature does not match"):
        verify_bundle(bundle, load_public_key(public), DEVICE)


@pytest.mark.parametrize("override, device, message", [
    ({"compatible": "another-product"}, DEVICE, "made for 'another-product'"),
    ({"machines": ("x86_64",)}, DEVICE, "built for CPU x86_64"),
    ({"python": "3.12"}, DEVICE, "built for Python 3.12"),
    ({"journal_schema": (1, 1)}, DeviceProfile("madoguchi-kiosk", "aarch64", "3.11", 2), "knows journal schema up to 1"),
    ({"journal_schema": (3, 3)}, DEVICE, "needs journal schema 3"),
])
def test_a_bundle_not_made_for_this_kiosk_is_refused(tmp_path: Path, keys: tuple, override: dict, device: DeviceProfile,
                                                     message: str) -> None:
    key, public = keys
    bundle = _bundle(tmp_path, key, **override)
    with pytest.raises(BundleRejected, match=message):
        verify_bundle(bundle, load_public_key(public), device)


def test_a_correctly_signed_bundle_with_a_path_escape_is_still_refused(tmp_path: Path, keys: tuple) -> None:
    """Defence in depth: even the release key cannot make the installer write outside its directory."""
    import base64
    import hashlib

    from kiosk.ops.release import SIGNING_DOMAIN
    key, public = keys
    payload = io.BytesIO()
    with tarfile.open(fileobj=payload, mode="w:") as tar:
        manifest = json.dumps({"format": 1}).encode()
        for name, data in (("manifest.json", manifest), ("../../etc/evil", b"x")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    body = payload.getvalue()
    signature = key.sign(SIGNING_DOMAIN + hashlib.sha512(body).digest())
    bundle = tmp_path / "evil.bundle"
    bundle.write_bytes(MAGIC + base64.b64encode(signature) + b"\n" + body)
    with pytest.raises(BundleRejected, match="unexpected member"):
        verify_bundle(bundle, load_public_key(public), DEVICE)


def test_a_release_key_is_never_overwritten(tmp_path: Path, keys: tuple) -> None:
    from kiosk.errors import OperationsError
    with pytest.raises(OperationsError, match="never overwritten"):
        generate_release_key(tmp_path / "release.pem")
