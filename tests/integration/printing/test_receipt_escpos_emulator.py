"""The receipt driver (python-escpos Network transport) against `kiosk-sim escpos` over TCP."""
from __future__ import annotations

import dataclasses
import logging
import time
from datetime import datetime, timezone

import pytest
from PIL import Image, ImageChops

from drivers.printer.receipt import EscposReceiptPrinter, ReceiptOptions
from drivers.printer.receipt_render import Layout, Venue, render_receipt
from kiosk.errors import CoverOpen, PaperOut, PrinterOffline
from kiosk.ports import Receipt, ReceiptLine

pytestmark = pytest.mark.integration

VENUE = Venue(city_name="港北市", location="港北市役所 本庁舎1階ロビー", kiosk_id="kiosk-001",
              inquiry_phone="045-000-0000")
RECEIPT = Receipt(transaction_id="K001-20261129-0042", issued_at=datetime(2026, 11, 29, 1, 5, tzinfo=timezone.utc),
                  lines=(ReceiptLine("juminhyo", 2, 300), ReceiptLine("kazei", 1, 300)), total_yen=900,
                  paid_yen=1000, change_yen=100, method="cash")


def printer(port: int, **overrides: object) -> EscposReceiptPrinter:
    options = dict(transport="network", port=port, timeout=1.0, dot_width=576, city_name=VENUE.city_name,
                   location=VENUE.location, kiosk_id=VENUE.kiosk_id, inquiry_phone=VENUE.inquiry_phone)
    options.update(overrides)
    return EscposReceiptPrinter(ReceiptOptions(**options))  # type: ignore[arg-type]


def same_pixels(a: Image.Image, b: Image.Image) -> bool:
    return a.size == b.size and ImageChops.difference(a.convert("1"), b.convert("1")).getbbox() is None


@pytest.mark.parametrize("language,dots", [("ja", 576), ("en", 384)])
def test_receipt_png_matches_the_reference_rendering(escpos_emulator, language, dots):
    port, control, _ = escpos_emulator
    receipt = dataclasses.replace(RECEIPT, language=language)
    driver = printer(port, dot_width=dots)
    assert driver.check_ready() == []
    driver.print_receipt(receipt)
    receipts = control.receipts()
    assert len(receipts) == 1
    printed = Image.open(receipts[0])
    reference = render_receipt(receipt, VENUE, Layout(dot_width=dots))
    assert printed.width == dots
    assert same_pixels(printed, reference)
    other = render_receipt(dataclasses.replace(receipt, change_yen=200), VENUE, Layout(dot_width=dots))
    assert not same_pixels(printed, other)  # the comparison would notice one wrong amount
    counters = control.counters()
    assert counters["raster_bytes_printed"] == dots // 8 * reference.height and counters["cuts"] == 1


def test_receipt_qr_carries_the_transaction_number(escpos_emulator):
    from pyzbar import pyzbar  # libzbar0 + pyzbar, installed by scripts/bootstrap
    port, control, _ = escpos_emulator
    printer(port).print_receipt(RECEIPT)
    decoded = pyzbar.decode(Image.open(control.receipts()[0]).convert("L"))
    assert [d.data.decode() for d in decoded] == [RECEIPT.transaction_id]


def test_paper_end_before_printing_is_a_typed_error_and_nothing_prints(escpos_emulator):
    port, control, _ = escpos_emulator
    control.paper_end()
    driver = printer(port)
    with pytest.raises(PaperOut) as caught:
        driver.check_ready()
    assert caught.value.code == 401
    with pytest.raises(PaperOut):
        driver.print_receipt(RECEIPT)
    counters = control.counters()
    assert counters["receipts"] == [] and counters["partial_receipts"] == []
    assert counters["raster_bytes_printed"] == 0 and counters["raster_bytes_dropped"] == 0


def test_paper_near_end_is_a_warning_and_the_receipt_still_prints(escpos_emulator, caplog):
    port, control, _ = escpos_emulator
    control.paper_near_end()
    driver = printer(port)
    with caplog.at_level(logging.WARNING, logger="drivers.printer.receipt"):
        assert driver.check_ready() == ["paper_near_end"]
    assert any("near its end" in r.message for r in caplog.records)
    driver.print_receipt(RECEIPT)
    assert len(control.receipts()) == 1


def test_cover_opened_mid_receipt_is_a_typed_error(escpos_emulator):
    port, control, _ = escpos_emulator
    control.open_cover(after_bytes=5000)
    with pytest.raises(CoverOpen) as caught:
        printer(port).print_receipt(RECEIPT)
    assert caught.value.code == 404
    counters = control.counters()
    assert counters["receipts"] == [] and counters["cuts"] == 0
    assert 5000 <= counters["raster_bytes_printed"] < 20000  # it stopped within a band or two
    time.sleep(0.3)  # the emulator files what came out before the break when the connection closes
    assert len(control.partial_receipts()) == 1


def test_cover_open_before_printing_is_a_typed_error(escpos_emulator):
    port, control, _ = escpos_emulator
    control.open_cover()
    with pytest.raises(CoverOpen):
        printer(port).check_ready()


def test_stalled_printer_times_out_within_the_configured_bound(escpos_emulator):
    port, control, _ = escpos_emulator
    control.stall()
    started = time.monotonic()
    with pytest.raises(PrinterOffline) as caught:
        printer(port, timeout=0.5).print_receipt(RECEIPT)
    assert time.monotonic() - started < 0.5 * 3 + 1.0
    assert "did not answer" in caught.value.detail
    control.stall(False)


def test_printer_switched_off_is_offline(tmp_path):
    from tests.support.services import free_port

    with pytest.raises(PrinterOffline):
        printer(free_port(), timeout=0.5).check_ready()
