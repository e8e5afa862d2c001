"""Release bundles: one file a technician copies to the kiosk and installs with `kioskctl update`.

Layout of a bundle file (``madoguchi-<version>.bundle``)::

    MADOGUCHI-BUNDLE/1\n                     magic line (format version)
    <base64 Ed25519 signature>\n             over SIGNING_DOMAIN + SHA-512(payload)
    <payload: an uncompressed tar>           manifest.json + wheels/*.whl (wheels are zips already)

The signature covers every byte after the signature line and the magic line is compared exactly, so a
single flipped byte anywhere is refused. The release key is kept off the kiosks (`kioskctl release
keygen` on the build machine); kiosks hold only its public line (``ed25519:...``) in
/etc/madoguchi/release-key.pub. ``verify_bundle`` reads and checks everything — signature, the tar's
members (only manifest.json and wheels/*.whl, no links, no paths out of the tree), each wheel's
SHA-256 against the manifest, and the manifest's compatibility against this kiosk — without writing
a byte to disk.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
import os
import platform
import re
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO, Iterator

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from kiosk.errors import BundleRejected, OperationsError

MAGIC = b"MADOGUCHI-BUNDLE/1\n"
SIGNING_DOMAIN = b"madoguchi release bundle v1\0"
FORMAT = 1
PRODUCT = "madoguchi-kiosk"
PUBLIC_KEY_PREFIX = "ed25519:"
VERSION_PATTERN = r"[0-9A-Za-z][0-9A-Za-z.+_-]{0,63}"
WHEEL_NAME = re.compile(r"wheels/[A-Za-z0-9_.+-]+\.whl")
MAX_MANIFEST_BYTES = 1 << 20
CHUNK = 1 << 20


@dataclass(frozen=True)
class DeviceProfile:
    """What this kiosk can run: product, CPU, Python, and the journal schema it holds now."""

    compatible: str = PRODUCT
    machine: str = platform.machine()
    python: str = f"{sys.version_info.major}.{sys.version_info.minor}"
    journal_schema: int | None = None  # None: no journal yet (first install)


@dataclass(frozen=True)
class Manifest:
    version: str
    compatible: str
    machines: tuple[str, ...]  # ("any",) for pure-Python wheel sets
    python: str
    journal_schema_min: int
    journal_schema_max: int
    requirement: str
    wheels: dict[str, str]  # file name -> sha256 hex
    built_at: str
    raw: dict[str, Any]

    @classmethod
    def parse(cls, data: bytes) -> "Manifest":
        try:
            raw = json.loads(data)
            schema = raw["journal_schema"]
            manifest = cls(version=str(raw["version"]), compatible=str(raw["compatible"]),
                           machines=tuple(str(m) for m in raw["machines"]), python=str(raw["python"]),
                           journal_schema_min=int(schema["min"]), journal_schema_max=int(schema["max"]),
                           requirement=str(raw["requirement"]),
                           wheels={str(k): str(v) for k, v in raw["wheels"].items()},
                           built_at=str(raw.get("built_at", "")), raw=raw)
            if int(raw["format"]) != FORMAT:
                raise BundleRejected(f"bundle format {raw['format']} is not {FORMAT}; use a kioskctl that knows it")
        except BundleRejected:
            raise
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise BundleRejected(f"the bundle's manifest is malformed ({type(exc).__name__}: {exc})") from None
        if not re.fullmatch(VERSION_PATTERN, manifest.version):
            raise BundleRejected(f"the bundle's version {manifest.version!r} is not a valid release name")
        return manifest

    def incompatibility(self, device: DeviceProfile) -> str | None:
        """Why this release cannot run on ``device``, or None."""
        if self.compatible != device.compatible:
            return f"made for {self.compatible!r}, this kiosk is {device.compatible!r}"
        if "any" not in self.machines and device.machine not in self.machines:
            return f"built for CPU {', '.join(self.machines)}, this kiosk is {device.machine}"
        if self.python != device.python:
            return f"built for Python {self.python}, this kiosk runs Python {device.python}"
        if device.journal_schema is not None:
            if device.journal_schema > self.journal_schema_max:
                return (f"knows journal schema up to {self.journal_schema_max}, this kiosk's journal is at "
                        f"{device.journal_schema} (a newer release wrote it)")
            if device.journal_schema < self.journal_schema_min:
                return (f"needs journal schema {self.journal_schema_min} or later, this kiosk's journal is at "
                        f"{device.journal_schema}: install the releases in between first")
        return None


@dataclass(frozen=True)
class VerifiedBundle:
    path: Path
    manifest: Manifest
    manifest_bytes: bytes
    payload_offset: int


# --- keys -------------------------------------------------------------------------------------------

def generate_release_key(path: Path) -> str:
    """Create the release signing key (mode 0600, never overwritten); return its public line."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise OperationsError(f"{path} exists; a release key is never overwritten (kiosks trust its public half)") from None
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    public = public_key_line(key.public_key())
    Path(f"{path}.pub").write_text(public + "\n")
    return public


def load_private_key(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except (OSError, ValueError) as exc:
        raise OperationsError(f"cannot read the release signing key {path}: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise OperationsError(f"{path} is not an Ed25519 private key")
    return key


def public_key_line(key: Ed25519PublicKey) -> str:
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return PUBLIC_KEY_PREFIX + base64.b64encode(raw).decode("ascii")


def load_public_key(path: Path) -> Ed25519PublicKey:
    try:
        text = Path(path).read_text().strip()
    except OSError as exc:
        raise BundleRejected(f"no release public key at {path} ({exc.strerror}); install it from the release "
                             "team before updating") from None
    if not text.startswith(PUBLIC_KEY_PREFIX):
        raise BundleRejected(f"{path} does not hold an '{PUBLIC_KEY_PREFIX}...' release public key")
    try:
        raw = base64.b64decode(text[len(PUBLIC_KEY_PREFIX):], validate=True)
        return Ed25519PublicKey.from_public_bytes(raw)
    except (binascii.Error, ValueError):
        raise BundleRejected(f"{path} holds a damaged release public key") from None


# --- verifying --------------------------------------------------------------------------------------

def _signed_message(digest: bytes) -> bytes:
    return SIGNING_DOMAIN + digest


def _payload_digest(fh: BinaryIO) -> bytes:
    h = hashlib.sha512()
    for chunk in iter(lambda: fh.read(CHUNK), b""):
        h.update(chunk)
    return h.digest()


def _read_header(fh: BinaryIO, path: Path) -> bytes:
    magic = fh.read(len(MAGIC))
    if magic != MAGIC:
        raise BundleRejected(f"{path} is not a Madoguchi release bundle (or it is damaged at its start)")
    line = fh.readline(200)
    if not line.endswith(b"\n"):
        raise BundleRejected(f"{path}: the signature line is damaged")
    try:
        signature = base64.b64decode(line.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise BundleRejected(f"{path}: the signature line is damaged") from None
    if len(signature) != 64:
        raise BundleRejected(f"{path}: the signature line is damaged")
    return signature


class _Window(io.RawIOBase):
    """The payload part of the bundle file, as a file of its own (for tarfile)."""

    def __init__(self, fh: BinaryIO, offset: int) -> None:
        self.fh, self.offset = fh, offset
        fh.seek(offset)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        data = self.fh.read(len(b))
        b[: len(data)] = data
        return len(data)

    def seek(self, pos: int, whence: int = 0) -> int:
        if whence == 0:
            return self.fh.seek(self.offset + pos) - self.offset
        return self.fh.seek(pos, whence) - self.offset

    def tell(self) -> int:
        return self.fh.tell() - self.offset


def _members(tar: tarfile.TarFile, path: Path) -> Iterator[tarfile.TarInfo]:
    for member in tar:
        if not member.isfile():
            raise BundleRejected(f"{path}: member {member.name!r} is not a regular file")
        if member.name != "manifest.json" and not WHEEL_NAME.fullmatch(member.name):
            raise BundleRejected(f"{path}: unexpected member {member.name!r}")
        yield member


def verify_bundle(path: Path, public_key: Ed25519PublicKey, device: DeviceProfile) -> VerifiedBundle:
    """Everything checked, nothing written. BundleRejected says what is wrong, for a person."""
    path = Path(path)
    try:
        fh = path.open("rb")
    except OSError as exc:
        raise BundleRejected(f"cannot read {path}: {exc.strerror}") from None
    with fh:
        signature = _read_header(fh, path)
        offset = fh.tell()
        try:
            public_key.verify(signature, _signed_message(_payload_digest(fh)))
        except InvalidSignature:
            raise BundleRejected(f"{path}: the signature does not match (damaged in transfer, altered, or signed "
                                 "with another release key); nothing was changed") from None
        manifest_bytes: bytes | None = None
        hashes: dict[str, str] = {}
        try:
            with tarfile.open(fileobj=io.BufferedReader(_Window(fh, offset)), mode="r:") as tar:
                for member in _members(tar, path):
                    extracted = tar.extractfile(member)
                    assert extracted is not None
                    if member.name == "manifest.json":
                        if member.size > MAX_MANIFEST_BYTES or manifest_bytes is not None:
                            raise BundleRejected(f"{path}: the manifest is oversized or repeated")
                        manifest_bytes = extracted.read()
                        continue
                    h = hashlib.sha256()
                    for chunk in iter(lambda: extracted.read(CHUNK), b""):
                        h.update(chunk)
                    hashes[member.name.removeprefix("wheels/")] = h.hexdigest()
        except tarfile.TarError as exc:
            raise BundleRejected(f"{path}: the payload is not a readable tar ({exc})") from None
    if manifest_bytes is None:
        raise BundleRejected(f"{path}: the bundle has no manifest.json")
    manifest = Manifest.parse(manifest_bytes)
    if hashes != manifest.wheels:
        raise BundleRejected(f"{path}: the wheels do not match the manifest")
    why = manifest.incompatibility(device)
    if why is not None:
        raise BundleRejected(f"{path}: release {manifest.version} is not for this kiosk: {why}; nothing was changed")
    return VerifiedBundle(path, manifest, manifest_bytes, offset)


def extract_payload(bundle: VerifiedBundle, target: Path) -> None:
    """Write manifest.json and wheels/ into ``target`` (an empty staging directory), re-checking each wheel."""
    (target / "wheels").mkdir(parents=True, exist_ok=True)
    with bundle.path.open("rb") as fh, \
            tarfile.open(fileobj=io.BufferedReader(_Window(fh, bundle.payload_offset)), mode="r:") as tar:
        for member in _members(tar, bundle.path):
            source = tar.extractfile(member)
            assert source is not None
            out = target / member.name
            h = hashlib.sha256()
            with out.open("wb") as dest:
                for chunk in iter(lambda: source.read(CHUNK), b""):
                    h.update(chunk)
                    dest.write(chunk)
                dest.flush()
                os.fsync(dest.fileno())
            name = member.name.removeprefix("wheels/")
            if member.name != "manifest.json" and bundle.manifest.wheels.get(name) != h.hexdigest():
                raise BundleRejected(f"{bundle.path}: {name} changed while it was being unpacked")
    if (target / "manifest.json").read_bytes() != bundle.manifest_bytes:
        raise BundleRejected(f"{bundle.path}: the manifest changed while it was being unpacked")


# --- building ---------------------------------------------------------------------------------------

def bundled_pip_wheel() -> Path | None:
    """pip's own wheel, from ensurepip or Debian's python3-pip-whl, so kiosks install offline."""
    import ensurepip

    candidates = list((Path(ensurepip.__file__).parent / "_bundled").glob("pip-*.whl"))
    candidates += list(Path("/usr/share/python-wheels").glob("pip-*.whl"))
    return sorted(candidates)[-1] if candidates else None


def build_wheels(project: Path, out: Path, extras: str = "all") -> None:
    """The production path: the project and every dependency as wheels (network or a local index)."""
    spec = f"{project.resolve()}[{extras}]" if extras else str(project.resolve())
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--disable-pip-version-check", "--wheel-dir",
                             str(out), spec], capture_output=True, text=True, timeout=3600)
    if result.returncode != 0:
        raise OperationsError(f"building wheels failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")


def build_bundle(*, wheels_dir: Path, version: str, requirement: str, key: Ed25519PrivateKey, out: Path,
                 compatible: str = PRODUCT, machines: tuple[str, ...] | None = None, python: str | None = None,
                 journal_schema: tuple[int, int] = (1, 1), include_pip: bool = True) -> Path:
    """Write ``out`` (a bundle file) from the wheels in ``wheels_dir``; returns its path."""
    if not re.fullmatch(VERSION_PATTERN, version):
        raise OperationsError(f"version {version!r} must match {VERSION_PATTERN}")
    wheels = sorted(Path(wheels_dir).glob("*.whl"))
    pip_wheel = bundled_pip_wheel() if include_pip and not any(w.name.startswith("pip-") for w in wheels) else None
    if pip_wheel is not None:
        wheels.append(pip_wheel)
    if not wheels:
        raise OperationsError(f"no wheels in {wheels_dir}")
    if machines is None:
        pure = all(w.name.endswith("-none-any.whl") for w in wheels)
        machines = ("any",) if pure else (platform.machine(),)
    manifest = {
        "format": FORMAT, "version": version, "compatible": compatible, "machines": list(machines),
        "python": python or f"{sys.version_info.major}.{sys.version_info.minor}",
        "journal_schema": {"min": journal_schema[0], "max": journal_schema[1]}, "requirement": requirement,
        "wheels": {w.name: hashlib.sha256(w.read_bytes()).hexdigest() for w in wheels},
        "built_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    manifest_bytes = json.dumps(manifest, indent=2, sort_keys=True).encode() + b"\n"
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile(dir=out.parent) as payload:
        with tarfile.open(fileobj=payload, mode="w:", format=tarfile.PAX_FORMAT) as tar:
            info = tarfile.TarInfo("manifest.json")
            info.size, info.mtime, info.mode = len(manifest_bytes), 0, 0o644
            tar.addfile(info, io.BytesIO(manifest_bytes))
            for wheel in wheels:
                info = tarfile.TarInfo(f"wheels/{wheel.name}")
                info.size, info.mtime, info.mode = wheel.stat().st_size, 0, 0o644
                with wheel.open("rb") as fh:
                    tar.addfile(info, fh)
        payload.seek(0)
        signature = key.sign(_signed_message(_payload_digest(payload)))
        payload.seek(0)
        tmp = out.with_name(out.name + ".part")
        with tmp.open("wb") as fh:
            fh.write(MAGIC + base64.b64encode(signature) + b"\n")
            for chunk in iter(lambda: payload.read(CHUNK), b""):
                fh.write(chunk)
        os.replace(tmp, out)
    return out
