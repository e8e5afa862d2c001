"""Printing figures: submit-to-completed time of one certificate through driver → cupsd → ipp → printer
(ippeveprinter), receipt render time, and receipt bytes on the wire. Prints; asserts nothing.

    .venv/bin/python bench/printing.py
"""
from __future__ import annotations

import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from drivers.printer.receipt_render import Layout, Venue, render_receipt  # noqa: E402
from kiosk.ports import Receipt, ReceiptLine  # noqa: E402

VENUE = Venue("港北市", "港北市役所 本庁舎1階ロビー", "kiosk-001", "045-000-0000")
RECEIPT = Receipt("K001-20261129-0042", datetime(2026, 11, 29, 1, 5, tzinfo=timezone.utc),
                  (ReceiptLine("juminhyo", 2, 300), ReceiptLine("kazei", 1, 300)), 900, 1000, 100, "cash")


def certificate_pdf() -> bytes:
    import io

    from reportlab.pdfgen import canvas

    out = io.BytesIO()
    pdf = canvas.Canvas(out)
    pdf.drawString(72, 760, "Benchmark certificate TXN-BENCH")
    pdf.showPage()
    pdf.save()
    return out.getvalue()


def bench_receipt() -> None:
    from drivers.printer.receipt import EscposReceiptPrinter, ReceiptOptions
    from drivers.sim.escpos_printer.server import EscposEmulator

    emulator = EscposEmulator(tempfile.mkdtemp(prefix="bench-receipts-"), port=0).start()
    try:
        for dots in (576, 384):
            layout = Layout(dot_width=dots)
            render_receipt(RECEIPT, VENUE, layout)  # warm the font cache
            times = []
            for _ in range(10):
                started = time.perf_counter()
                image = render_receipt(RECEIPT, VENUE, layout)
                times.append(time.perf_counter() - started)
            driver = EscposReceiptPrinter(ReceiptOptions(transport="network", port=emulator.port, dot_width=dots,
                                                         city_name=VENUE.city_name, location=VENUE.location,
                                                         kiosk_id=VENUE.kiosk_id, inquiry_phone=VENUE.inquiry_phone))
            started = time.perf_counter()
            driver.print_receipt(RECEIPT)
            printed = time.perf_counter() - started
            print(f"receipt ({dots} dots, {image.width}x{image.height}): render median "
                  f"{statistics.median(times) * 1000:.1f} ms; {driver.last_bytes_sent} bytes sent; "
                  f"render+send to the emulator over TCP {printed * 1000:.0f} ms")
    finally:
        emulator.stop()


def bench_certificate() -> None:
    try:
        from drivers.printer.document import CupsDocumentPrinter, CupsOptions
        from tests.support.cups import cups_stack
    except ImportError as exc:
        print(f"certificate: skipped ({exc})")
        return
    pdf = certificate_pdf()
    with cups_stack(tempfile.mkdtemp(prefix="bench-cups-")) as stack:
        for passthrough in (True, False):
            printer = CupsDocumentPrinter(CupsOptions(queue=stack.queue, server=stack.server,
                                                      passthrough_pdf=passthrough, poll_interval=0.05,
                                                      spool_dir=tempfile.mkdtemp(prefix="bench-spool-")))
            times = []
            for i in range(3):
                started = time.perf_counter()
                printer.print_document(pdf, f"TXN-BENCH-{int(passthrough)}-{i}-doc1")
                times.append(time.perf_counter() - started)
            mode = "passthrough" if passthrough else "filtered (pdftopdf)"
            print(f"certificate submit-to-completed, {mode}: median {statistics.median(times):.2f} s "
                  f"(min {min(times):.2f}, max {max(times):.2f}, {len(pdf)} bytes PDF, 1 page, ippeveprinter)")


if __name__ == "__main__":
    bench_receipt()
    bench_certificate()
