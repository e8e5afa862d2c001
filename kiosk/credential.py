"""The technician-mode credential: an scrypt hash in config (kiosk.technician_credential_hash).

Format: ``scrypt$<log2 n>$<r>$<p>$<salt hex>$<hash hex>``. ``hash_credential`` makes one (for
`kioskctl technician-password`); ``check_credential`` compares in constant time. An empty stored
hash disables technician mode.
"""
from __future__ import annotations

import hashlib
import hmac
import os

DEFAULT_LOG2_N, DEFAULT_R, DEFAULT_P = 14, 8, 1
MAX_LOG2_N = 20  # a hash asking for more memory than this is refused rather than tried


def hash_credential(secret: str, *, log2_n: int = DEFAULT_LOG2_N, r: int = DEFAULT_R, p: int = DEFAULT_P,
                    salt: bytes | None = None) -> str:
    if not secret:
        raise ValueError("the technician credential must not be empty")
    salt = salt or os.urandom(16)
    digest = hashlib.scrypt(secret.encode(), salt=salt, n=2 ** log2_n, r=r, p=p, dklen=32,
                            maxmem=256 * 1024 * 1024)
    return f"scrypt${log2_n}${r}${p}${salt.hex()}${digest.hex()}"


def check_credential(secret: str, stored: str) -> bool:
    """True only for the right secret and a well-formed stored hash. Blocks ~50 ms: call off the UI thread."""
    try:
        scheme, log2_n, r, p, salt_hex, hash_hex = stored.split("$")
        n_exp, r_i, p_i = int(log2_n), int(r), int(p)
        salt, expected = bytes.fromhex(salt_hex), bytes.fromhex(hash_hex)
    except ValueError:
        return False
    if scheme != "scrypt" or not secret or not 1 <= n_exp <= MAX_LOG2_N or not expected:
        return False
    digest = hashlib.scrypt(secret.encode(), salt=salt, n=2 ** n_exp, r=r_i, p=p_i, dklen=len(expected),
                            maxmem=256 * 1024 * 1024)
    return hmac.compare_digest(digest, expected)
