"""Receipt content, catalogs, rendering, and the driver's byte transcript (in-process fake transport)."""
from __future__ import annotations

import dataclasses
from datetime import datetime, timezone

import pytest

from drivers.printer import escpos_codec as codec
from drivers.printer.receipt import EscposReceiptPrinter, ReceiptOptions, venue_from
from drivers.printer.receipt_render import Layout, Venue, receipt_rows, render_receipt
from kiosk.errors import CoverOpen, PaperOut, PrinterOffline
from kiosk.i18n import Catalog, catalog, ensure_compiled, languages
from kiosk.ports import Receipt, ReceiptLine
from tests.fakes import voucher_issuer

VENUE = Venue("和光市", "和光市役所 1階ロビー", "wako-honcho-01", "048-424-9100", "和光市役所の窓口")
VOUCHER = voucher_issuer().issue("K001-20261129-0042", 300, datetime(2026, 11, 29, 15, 30, tzinfo=timezone.utc))
RECEIPT = Receipt(transaction_id="K001-20261129-0042", issued_at=datetime(2026, 11, 29, 15, 30, tzinfo=timezone.utc),
                  lines=(ReceiptLine("juminhyo", 2, 300), ReceiptLine("cert.hikazei", 1, 200)), total_yen=800,
                  paid_yen=1000, change_yen=200, method="cash", voucher_yen=300, voucher=VOUCHER,
                  language="ja")


def text_of(receipt: Receipt) -> str:
    return "\n".join(f"{r.text} {r.right}" for r in receipt_rows(receipt, VENUE))


def test_japanese_receipt_has_every_required_item_in_jst():
    text = text_of(RECEIPT)
    for expected in ("領収書", "和光市", "和光市役所 1階ロビー", "wako-honcho-01", "2026年11月30日 00:30", "K001-20261129-0042",
                     "住民票の写し", "2通 × 300円", "600円", "非課税証明書", "合計 800円", "お預かり 1,000円",
                     "お釣り 200円", "現金", "返金引換券", "300円", VOUCHER.text, "和光市役所の窓口", "2027年02月28日", "048-424-9100"):
        assert expected in text, expected
    # the 返金引換券's signed code, then the transaction number
    assert [r.text for r in receipt_rows(RECEIPT, VENUE) if r.kind == "qr"] == [VOUCHER.code, RECEIPT.transaction_id]


def test_english_receipt_and_no_voucher_section_without_a_voucher():
    receipt = dataclasses.replace(RECEIPT, language="en", voucher_yen=0, voucher=None, method="qr")
    text = text_of(receipt)
    assert "Receipt" in text and "Total ¥800" in text and "QR code payment" in text
    assert "voucher" not in text.lower()


@pytest.mark.parametrize("lang", ["ja", "en", "zh", "ko", "vi", "pt"])
def test_every_receipt_key_is_translated(lang):
    ensure_compiled()
    tr = Catalog("receipt", lang)
    receipt_rows(dataclasses.replace(RECEIPT, language=lang, refund_yen=100), VENUE, tr)
    receipt_rows(dataclasses.replace(RECEIPT, language=lang, method="qr"), VENUE, tr)
    for key in ("cert.juminhyo", "cert.kazei", "cert.hikazei", "receipt.test_title"):
        tr(key)
    assert tr.missing == set()
    assert tr.keys() == catalog("receipt", "ja").keys()


def test_receipt_languages_include_japanese_and_english():
    assert {"ja", "en"} <= set(languages("receipt"))


@pytest.mark.parametrize("dots", [576, 384])
def test_rendering_is_one_bit_at_the_dot_width_and_deterministic(dots):
    first = render_receipt(RECEIPT, VENUE, Layout(dot_width=dots))
    assert first.mode == "1" and first.width == dots and first.height > 300
    assert first.tobytes() == render_receipt(RECEIPT, VENUE, Layout(dot_width=dots)).tobytes()
    assert first.tobytes() != render_receipt(dataclasses.replace(RECEIPT, total_yen=801), VENUE,
                                             Layout(dot_width=dots)).tobytes()


def test_venue_comes_from_kiosk_config_when_options_leave_it_empty():
    kiosk = type("K", (), {"city_name": "和光市", "location": "ロビー", "device_id": "wako-honcho-09",
                           "inquiry_phone": "048", "voucher_counter": "市民課"})()
    context = type("C", (), {"config": type("Cfg", (), {"kiosk": kiosk})()})()
    venue = venue_from(ReceiptOptions(location="別館"), context)
    assert venue == Venue("和光市", "別館", "wako-honcho-09", "048", "市民課")


class FakeTransport:
    """Answers DLE EOT like a printer in a given state; records every byte written."""

    def __init__(self, status: codec.PrinterStatus, cover_opens_after_writes: int | None = None) -> None:
        self.status, self.written, self.replies = status, bytearray(), bytearray()
        self.writes, self.cover_opens_after_writes, self.closed = 0, cover_opens_after_writes, False

    def _raw(self, data: bytes) -> None:
        self.written += data
        self.writes += 1
        if self.cover_opens_after_writes is not None and self.writes >= self.cover_opens_after_writes:
            self.status = dataclasses.replace(self.status, cover_open=True, offline=True)
        if data[:2] == b"\x10\x04":
            self.replies += codec.encode_status(data[2], self.status)

    def _read(self) -> bytes:
        if not self.replies:
            raise TimeoutError("timed out")
        out = bytes(self.replies[:1])
        del self.replies[:1]
        return out

    def close(self) -> None:
        self.closed = True


def driver_with(transport: FakeTransport, **options: object) -> EscposReceiptPrinter:
    driver = EscposReceiptPrinter(ReceiptOptions(transport="network", band_height=200, **options))  # type: ignore[arg-type]
    driver._open = lambda: transport  # type: ignore[method-assign]
    driver.venue = VENUE
    return driver


def test_byte_transcript_of_a_receipt():
    transport = FakeTransport(codec.PrinterStatus())
    driver = driver_with(transport)
    driver.print_receipt(RECEIPT)
    image = render_receipt(RECEIPT, VENUE, Layout(dot_width=576))
    width_bytes, height, bits = codec.raster_from_image(image)
    expected = bytearray(codec.INIT + codec.AUTO_STATUS_BACK_OFF + codec.status_request(1)
                         + codec.status_request(2) + codec.status_request(4))
    for top in range(0, height, 200):
        rows = min(200, height - top)
        expected += codec.raster_image(width_bytes, rows, bits[top * width_bytes:(top + rows) * width_bytes])
        expected += codec.status_request(2)
    expected += codec.feed_lines(4) + codec.CUT_PARTIAL + codec.status_request(2)
    assert bytes(transport.written) == bytes(expected)
    assert transport.closed and driver.last_bytes_sent == len(expected)


def test_paper_end_sends_no_image():
    transport = FakeTransport(codec.PrinterStatus(offline=True, paper_end_stop=True, paper_end=True))
    with pytest.raises(PaperOut):
        driver_with(transport).print_receipt(RECEIPT)
    assert b"\x1d\x76\x30" not in transport.written and transport.closed


def test_cover_opening_mid_receipt_stops_sending():
    transport = FakeTransport(codec.PrinterStatus(), cover_opens_after_writes=6)
    with pytest.raises(CoverOpen):
        driver_with(transport).print_receipt(RECEIPT)
    assert transport.written.count(b"\x1d\x76\x30") == 1 and codec.CUT_PARTIAL not in transport.written


def test_no_status_answer_means_no_printing():
    transport = FakeTransport(codec.PrinterStatus())
    transport._raw = lambda data: transport.written.extend(data)  # type: ignore[method-assign]
    with pytest.raises(PrinterOffline):
        driver_with(transport).check_ready()


def test_test_page_is_a_one_page_pdf_and_the_test_receipt_renders():
    from drivers.printer.ipp_status import pdf_page_count
    from drivers.printer.testprint import a4_test_page, job_name_for_test_print, receipt_for_test_print

    when = datetime(2026, 11, 29, 1, 5, tzinfo=timezone.utc)
    assert job_name_for_test_print(when) == "TEST-20261129100500"
    pdf = a4_test_page("kiosk-001", when)
    assert pdf.startswith(b"%PDF-") and pdf_page_count(pdf) == 1
    assert render_receipt(receipt_for_test_print("en", when), VENUE).width == 576
