"""The kiosk's Ed25519 device key: created once (mode 0600), loaded for signing, its public half printed
for the technician to register at city hall (`cityhall device add ID PUBLIC_KEY`).

The public key text is ``ed25519:`` + base64 of the 32 raw key bytes, short enough to read out or paste.
"""
from __future__ import annotations

import argparse
import base64
import binascii
import os
import sys
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from kiosk.errors import DeviceNotEnrolled

PUBLIC_KEY_PREFIX = "ed25519:"


def create_device_key(path: str | os.PathLike[str]) -> Ed25519PrivateKey:
    """Write a new key to ``path`` readable by its owner only; refuses to overwrite an existing key."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, pem)
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, target)  # fails if a key appeared meanwhile: never replace an enrolled key
    finally:
        os.unlink(tmp)
    return key


def load_device_key(path: str | os.PathLike[str]) -> Ed25519PrivateKey:
    target = Path(path)
    try:
        data = target.read_bytes()
    except FileNotFoundError:
        raise DeviceNotEnrolled(f"no device key at {target}; run `kioskctl enroll` and register the printed "
                                "public key at city hall") from None
    except OSError as exc:
        raise DeviceNotEnrolled(f"cannot read the device key {target}: {exc.strerror}") from None
    if target.stat().st_mode & 0o077:
        raise DeviceNotEnrolled(f"device key {target} is readable by others; run `chmod 600 {target}`")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except ValueError:
        raise DeviceNotEnrolled(f"device key {target} is not a PEM private key; re-enroll the kiosk") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise DeviceNotEnrolled(f"device key {target} is not an Ed25519 key; re-enroll the kiosk")
    return key


def load_or_create_device_key(path: str | os.PathLike[str]) -> tuple[Ed25519PrivateKey, bool]:
    """The key at ``path`` and whether it was created just now."""
    if Path(path).exists():
        return load_device_key(path), False
    try:
        return create_device_key(path), True
    except FileExistsError:  # another process created it between the check and the link
        return load_device_key(path), False


def public_key_text(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return PUBLIC_KEY_PREFIX + base64.b64encode(raw).decode("ascii")


def parse_public_key(text: str) -> Ed25519PublicKey:
    """Inverse of public_key_text; ValueError with a readable message otherwise."""
    value = text.strip()
    if not value.startswith(PUBLIC_KEY_PREFIX):
        raise ValueError(f"a device public key starts with '{PUBLIC_KEY_PREFIX}' (as printed by `kioskctl enroll`)")
    try:
        raw = base64.b64decode(value[len(PUBLIC_KEY_PREFIX):], validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("the device public key is not valid base64") from None
    if len(raw) != 32:
        raise ValueError(f"an Ed25519 public key is 32 bytes, this one is {len(raw)}")
    return Ed25519PublicKey.from_public_bytes(raw)


def enroll(path: str | os.PathLike[str]) -> str:
    """What `kioskctl enroll` runs: make sure the key exists and return the line to register at city hall."""
    key, _ = load_or_create_device_key(path)
    return public_key_text(key)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sync.device_key",
                                     description="Create (once) and show this kiosk's device key.")
    parser.add_argument("key_path", help="where the private key lives (created mode 0600 if missing)")
    args = parser.parse_args(argv)
    try:
        key, created = load_or_create_device_key(args.key_path)
    except DeviceNotEnrolled as exc:
        print(exc.detail, file=sys.stderr)
        return 1
    if created:
        print(f"created a new device key at {args.key_path}", file=sys.stderr)
    print(public_key_text(key))
    return 0


if __name__ == "__main__":
    sys.exit(main())
