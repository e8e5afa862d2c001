"""Fixtures for printing integration tests: one private CUPS stack per session, one ESC/POS emulator per test."""
from __future__ import annotations

import io
import subprocess
from typing import Callable, Iterator

import pytest

from tests.support.cups import CupsStack, cups_stack


def make_pdf(*page_texts: str) -> bytes:
    from reportlab.pdfgen import canvas

    out = io.BytesIO()
    pdf = canvas.Canvas(out, pagesize=(595.27, 841.89), invariant=1)
    for text in page_texts:
        pdf.setFont("Helvetica", 14)
        pdf.drawString(72, 760, text)
        pdf.showPage()
    pdf.save()
    return out.getvalue()


@pytest.fixture(scope="session")
def cups_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CupsStack]:
    with cups_stack(tmp_path_factory.mktemp("cups-logs")) as stack:
        yield stack


@pytest.fixture
def cups_printing(cups_session: CupsStack) -> Iterator[CupsStack]:
    """The session's stack, put back to a healthy printer and an enabled, empty queue after each test."""
    yield cups_session
    stack = cups_session
    stack.thaw_printer()
    if not stack.printer.alive():
        stack.start_printer()
    stack.faults.set("ok")
    subprocess.run(["cancel", "-a", "-x", stack.queue], env=stack.env(), capture_output=True, timeout=30)
    stack.admin("cupsenable", stack.queue)
    stack.admin("cupsaccept", stack.queue)


@pytest.fixture
def pdf_factory() -> Callable[..., bytes]:
    return make_pdf


@pytest.fixture
def escpos_emulator(tmp_path):  # type: ignore[no-untyped-def]
    """`kiosk-sim escpos` as its own process on free loopback ports; yields (port, control client, out dir)."""
    import sys

    from drivers.sim.escpos_printer.client import EscposControl
    from tests.support.services import ManagedProcess, free_port, port_open

    port, control_port, out = free_port(), free_port(), tmp_path / "receipts"
    proc = ManagedProcess([sys.executable, "-m", "drivers.sim.cli", "escpos", "--port", str(port),
                           "--control-port", str(control_port), "--out", str(out)],
                          name="escpos-emulator", log_dir=tmp_path)
    proc.start(ready=lambda: port_open("127.0.0.1", control_port) and port_open("127.0.0.1", port), timeout=20)
    try:
        yield port, EscposControl("127.0.0.1", control_port), out
    finally:
        proc.stop()
