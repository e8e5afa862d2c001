"""sync.device_key: the kiosk's key file (mode 0600, never overwritten) and its public-key text."""
from __future__ import annotations

import os
import stat

import pytest

from kiosk.errors import DeviceNotEnrolled
from sync.device_key import (
    create_device_key,
    enroll,
    load_device_key,
    load_or_create_device_key,
    main,
    parse_public_key,
    public_key_text,
)


def test_create_is_private_and_never_overwrites(tmp_path):
    path = tmp_path / "keys" / "device-key.pem"
    key = create_device_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with pytest.raises(FileExistsError):
        create_device_key(path)
    assert public_key_text(load_device_key(path)) == public_key_text(key)
    assert [p.name for p in path.parent.iterdir()] == ["device-key.pem"]  # no temp file left


def test_enroll_creates_once_then_prints_the_same_key(tmp_path, capsys):
    path = tmp_path / "k.pem"
    first = enroll(path)
    assert first == enroll(path) and first.startswith("ed25519:")
    assert main([str(path)]) == 0
    assert capsys.readouterr().out.strip() == first
    key, created = load_or_create_device_key(path)
    assert not created and public_key_text(key) == first


def test_public_key_text_round_trip_and_errors():
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    text = public_key_text(key)
    assert public_key_text(parse_public_key(text)) == text
    for bad, message in (("ssh-ed25519 AAAA", "starts with"), ("ed25519:***", "base64"),
                         ("ed25519:QUJD", "32 bytes")):
        with pytest.raises(ValueError, match=message):
            parse_public_key(bad)


def test_load_refuses_missing_shared_or_wrong_keys(tmp_path):
    with pytest.raises(DeviceNotEnrolled, match="kioskctl enroll"):
        load_device_key(tmp_path / "absent.pem")
    path = tmp_path / "k.pem"
    create_device_key(path)
    os.chmod(path, 0o644)
    with pytest.raises(DeviceNotEnrolled, match="chmod 600"):
        load_device_key(path)
    junk = tmp_path / "junk.pem"
    junk.write_text("not a key")
    os.chmod(junk, 0o600)
    with pytest.raises(DeviceNotEnrolled, match="not a PEM"):
        load_device_key(junk)
