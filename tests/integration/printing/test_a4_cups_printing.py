"""The A4 driver through the real stack: driver → private cupsd → ipp backend → ippeveprinter."""
from __future__ import annotations

import time
from pathlib import Path

import pytest
from pypdf import PdfReader

from drivers.printer.document import CupsDocumentPrinter, CupsOptions
from kiosk.errors import PaperJam, PrinterOffline, PrintTimeout
from kiosk.ports import PrintOutcome
from tests.support.cups import CupsStack

pytestmark = pytest.mark.integration


def driver(stack: CupsStack, tmp_path: Path, **overrides: object) -> CupsDocumentPrinter:
    options = dict(queue=stack.queue, server=stack.server, spool_dir=str(tmp_path / "spool"), request_timeout=2.0,
                   pending_timeout=10.0, processing_timeout=20.0, fault_grace=1.5, poll_interval=0.1,
                   probe_interval=0.5)
    options.update(overrides)
    return CupsDocumentPrinter(CupsOptions(**options))  # type: ignore[arg-type]


def texts(path: Path) -> list[str]:
    return [page.extract_text().strip() for page in PdfReader(path).pages]


def queue_enabled(stack: CupsStack) -> bool:
    return "disabled" not in stack.admin("lpstat", "-p", stack.queue)


def test_passthrough_pdf_arrives_byte_identical_and_completion_is_detected(cups_printing, tmp_path, pdf_factory):
    pdf = pdf_factory("TXN-PASS-1 page 1", "TXN-PASS-1 page 2")
    printer = driver(cups_printing, tmp_path, passthrough_pdf=True)
    printer.check_ready()
    printer.print_document(pdf, "TXN-PASS-1-doc1")
    kept = [p for p in cups_printing.kept_documents() if "txn-pass-1-doc1" in p.name]
    assert len(kept) == 1
    assert kept[0].read_bytes() == pdf
    assert printer.job_outcome("TXN-PASS-1-doc1") is PrintOutcome.PRINTED


def test_filtered_pdf_keeps_its_pages_and_text(cups_printing, tmp_path, pdf_factory):
    pdf = pdf_factory("TXN-FILT-1 first page", "TXN-FILT-1 second page", "TXN-FILT-1 third page")
    printer = driver(cups_printing, tmp_path)
    printer.print_document(pdf, "TXN-FILT-1-doc1")
    kept = [p for p in cups_printing.kept_documents() if "txn-filt-1-doc1" in p.name]
    assert len(kept) == 1
    assert texts(kept[0]) == ["TXN-FILT-1 first page", "TXN-FILT-1 second page", "TXN-FILT-1 third page"]
    assert printer.job_outcome("TXN-FILT-1-doc1") is PrintOutcome.PRINTED


def test_back_to_back_transactions_never_share_a_spool_file(cups_printing, tmp_path, pdf_factory):
    printer = driver(cups_printing, tmp_path, passthrough_pdf=True)
    first, second = pdf_factory("resident A TXN-AAA"), pdf_factory("resident B TXN-BBB")
    printer.print_document(first, "TXN-AAA-doc1")
    printer.print_document(second, "TXN-BBB-doc1")
    kept_a = [p for p in cups_printing.kept_documents() if "txn-aaa-doc1" in p.name]
    kept_b = [p for p in cups_printing.kept_documents() if "txn-bbb-doc1" in p.name]
    assert len(kept_a) == len(kept_b) == 1 and kept_a[0] != kept_b[0]
    assert kept_a[0].read_bytes() == first and kept_b[0].read_bytes() == second
    assert texts(kept_a[0]) == ["resident A TXN-AAA"] and texts(kept_b[0]) == ["resident B TXN-BBB"]
    # the driver's own per-job folders are gone, and cupsd kept no copy of either document
    assert list((tmp_path / "spool").iterdir()) == []
    assert cups_printing.request_files() == []


def test_printer_fault_is_a_typed_error_and_the_queue_is_reenabled_once_fixed(cups_printing, tmp_path, pdf_factory):
    printer = driver(cups_printing, tmp_path)
    cups_printing.faults.set("media-jam")
    with pytest.raises(PaperJam) as caught:
        printer.print_document(pdf_factory("TXN-JAM-1"), "TXN-JAM-1-doc1")
    assert caught.value.code == 402 and caught.value.context["job"] == "TXN-JAM-1-doc1"
    assert printer.job_outcome("TXN-JAM-1-doc1") is PrintOutcome.FAILED
    assert not queue_enabled(cups_printing)  # nothing more goes to a jammed printer
    with pytest.raises(PaperJam):  # the jam is still there: reported before anyone pays
        printer.check_ready()
    assert not queue_enabled(cups_printing)
    cups_printing.faults.set("ok")
    cups_printing.stop_printer()  # the technician clears the jam and switches the printer off and on
    cups_printing.start_printer()
    printer.check_ready()
    assert queue_enabled(cups_printing)
    printer.print_document(pdf_factory("TXN-JAM-2"), "TXN-JAM-2-doc1")
    assert printer.job_outcome("TXN-JAM-2-doc1") is PrintOutcome.PRINTED


def test_switched_off_printer_is_offline_not_printed_and_queue_comes_back(cups_printing, tmp_path, pdf_factory):
    printer = driver(cups_printing, tmp_path)
    cups_printing.stop_printer()
    with pytest.raises(PrinterOffline):
        printer.check_ready()
    started = time.monotonic()
    with pytest.raises(PrinterOffline):
        printer.print_document(pdf_factory("TXN-OFF-1"), "TXN-OFF-1-doc1")
    assert time.monotonic() - started < 10
    assert printer.job_outcome("TXN-OFF-1-doc1") is not PrintOutcome.PRINTED
    assert not queue_enabled(cups_printing)
    cups_printing.start_printer()
    printer.check_ready()
    assert queue_enabled(cups_printing)
    printer.print_document(pdf_factory("TXN-OFF-2"), "TXN-OFF-2-doc1")
    assert not [p for p in cups_printing.kept_documents() if "txn-off-1" in p.name]  # the cancelled job never printed


def test_stalled_printer_ends_in_a_timeout_within_the_bound(cups_printing, tmp_path, pdf_factory):
    printer = driver(cups_printing, tmp_path, pending_timeout=4.0, processing_timeout=4.0, request_timeout=1.0)
    cups_printing.freeze_printer()
    started = time.monotonic()
    with pytest.raises(PrintTimeout) as caught:
        printer.print_document(pdf_factory("TXN-STALL-1"), "TXN-STALL-1-doc1")
    elapsed = time.monotonic() - started
    # bound: both stage limits, plus one request that may be in flight when the limit passes
    assert 4.0 <= elapsed < 4.0 + 4.0 + 1.0 + 2.0, elapsed
    assert caught.value.code == 406
    assert printer.job_outcome("TXN-STALL-1-doc1") is PrintOutcome.FAILED
    cups_printing.thaw_printer()


def test_printer_that_takes_the_job_but_never_finishes_times_out(cups_printing, tmp_path, pdf_factory):
    printer = driver(cups_printing, tmp_path, processing_timeout=3.0)
    cups_printing.faults.set("stall")
    started = time.monotonic()
    with pytest.raises(PrintTimeout):
        printer.print_document(pdf_factory("TXN-STALL-2"), "TXN-STALL-2-doc1")
    assert time.monotonic() - started < 3.0 + 10.0 + 2.0 + 1.0
    cups_printing.faults.set("ok")


def test_paused_queue_is_detected_and_reenabled_only_when_the_printer_is_healthy(cups_printing, tmp_path):
    printer = driver(cups_printing, tmp_path)
    cups_printing.admin("cupsdisable", cups_printing.queue)
    cups_printing.stop_printer()
    with pytest.raises(PrinterOffline) as caught:
        printer.check_ready()
    assert "stays paused" in caught.value.detail
    assert not queue_enabled(cups_printing)
    cups_printing.start_printer()
    printer.check_ready()
    assert queue_enabled(cups_printing)


def test_job_outcome_of_an_unknown_job_is_not_found(cups_printing, tmp_path):
    assert driver(cups_printing, tmp_path).job_outcome("TXN-NEVER-doc1") is PrintOutcome.NOT_FOUND


def test_without_a_thermal_printer_the_receipt_is_its_own_a4_page(cups_printing, tmp_path):
    from datetime import datetime, timezone

    from drivers.printer.receipt_a4 import ReceiptOnA4, ReceiptOnA4Options
    from kiosk.ports import Receipt, ReceiptLine

    options = ReceiptOnA4Options(queue=cups_printing.queue, server=cups_printing.server,
                                 spool_dir=str(tmp_path / "spool"), request_timeout=2.0, fault_grace=1.5,
                                 poll_interval=0.1, city_name="港北市", location="ロビー", kiosk_id="kiosk-001",
                                 inquiry_phone="045-000-0000")
    receipt = Receipt("TXN-RCPT-1", datetime(2026, 11, 29, 1, 5, tzinfo=timezone.utc),
                      (ReceiptLine("juminhyo", 1, 300),), 300, 300, 0, "qr")
    printer = ReceiptOnA4(options)
    assert printer.check_ready() == []
    printer.print_receipt(receipt)
    kept = [p for p in cups_printing.kept_documents() if "txn-rcpt-1-receipt" in p.name]
    assert len(kept) == 1 and len(PdfReader(kept[0]).pages) == 1
    assert printer.document_printer.job_outcome("TXN-RCPT-1-receipt") is PrintOutcome.PRINTED
