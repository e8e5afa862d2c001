from __future__ import annotations

import tempfile

import pytest

from drivers.sim.jpki_card.simulator import CardSimulator

CARD_ID = "UNITCARD000000000001"


@pytest.fixture(scope="session")
def pki_dir() -> str:
    return tempfile.mkdtemp(prefix="unit-pki-")


@pytest.fixture(scope="session")
def card_files(pki_dir: str):
    """Certificates and keys of one virtual card (RSA keys are slow to make: once per session)."""
    return CardSimulator(pki_dir=pki_dir)._files(CARD_ID)


@pytest.fixture(scope="session")
def p384_card_files(pki_dir: str):
    """A next-generation (ECDSA P-384) card's files."""
    return CardSimulator(pki_dir=pki_dir)._files("UNITCARDP38400000001", "p384")
