"""What CUPS/IPP states and reasons mean for the kiosk."""
from __future__ import annotations

import pytest

from drivers.printer.ipp_status import (classify_reasons, completed_successfully, job_printed, outcome_of,
                                        pdf_page_count)
from kiosk.errors import CoverOpen, PaperJam, PaperOut, PrinterError, PrinterOffline, TonerEmpty
from kiosk.ports import PrintOutcome


@pytest.mark.parametrize("reasons,error", [
    (["media-empty-error"], PaperOut), ("media-needed", PaperOut), (["media-jam-warning"], PaperJam),
    (["media-jam-report"], PaperJam), (["toner-empty"], TonerEmpty), (["marker-supply-empty-error"], TonerEmpty),
    (["door-open-error"], CoverOpen), (["cover-open"], CoverOpen), (["offline-report"], PrinterOffline),
    (["none", "input-tray-missing-error"], PrinterError), (["com.vendor-overheat-error"], PrinterError),
])
def test_fault_reasons_become_typed_errors_on_their_prefix(reasons, error):
    fault = classify_reasons(reasons).fault
    assert type(fault) is error
    assert fault.code >= 400 and fault.code < 500


@pytest.mark.parametrize("reasons", [["none"], "none", None, ["cups-waiting-for-job-completed"],
                                     ["connecting-to-device"], ["media-low-report"], ["toner-low-warning"]])
def test_harmless_reasons_are_not_faults(reasons):
    assert classify_reasons(reasons).fault is None


def test_low_supplies_are_warnings():
    assert classify_reasons(["toner-low-report", "media-low-warning", "none"]).warnings == (
        "toner-low-report", "media-low-warning")


def test_media_low_is_not_mistaken_for_media_empty_and_vice_versa():
    assert classify_reasons(["media-low"]).fault is None
    assert type(classify_reasons(["media-low", "media-empty-error"]).fault) is PaperOut


@pytest.mark.parametrize("state,reasons,printed", [
    (9, "job-completed-successfully", True),
    (9, ["processing-to-stop-point"], True),  # CUPS 2.4.0-2.4.7 (OpenPrinting/cups#828)
    (9, ["job-completed-with-errors"], False),
    (9, ["job-completed-with-warnings"], False),
    (9, ["processing-to-stop-point", "job-completed-with-errors"], False),
    (7, "job-canceled-by-user", False), (8, "aborted-by-system", False), (5, "job-printing", False),
])
def test_only_a_clean_completion_is_printed(state, reasons, printed):
    assert completed_successfully(state, reasons) is printed


def test_completion_with_a_printer_fault_is_not_printed():
    assert job_printed(9, "processing-to-stop-point", ["none"]) is True
    assert job_printed(9, "processing-to-stop-point", ["media-jam-report"]) is False
    assert outcome_of(9, "processing-to-stop-point", ["media-jam-report"]) is PrintOutcome.FAILED


@pytest.mark.parametrize("state,outcome", [(3, PrintOutcome.IN_PROGRESS), (5, PrintOutcome.IN_PROGRESS),
                                           (6, PrintOutcome.IN_PROGRESS), (7, PrintOutcome.FAILED),
                                           (8, PrintOutcome.FAILED), (9, PrintOutcome.PRINTED)])
def test_outcomes(state, outcome):
    assert outcome_of(state, "job-completed-successfully" if state == 9 else "none") is outcome


def test_page_count_of_plain_pdfs_and_unknown_for_object_streams():
    pdf = b"%PDF-1.4\n1 0 obj<</Type /Pages /Kids[2 0 R 3 0 R]>>\n2 0 obj<</Type/Page>>\n3 0 obj<</Type /Page >>"
    assert pdf_page_count(pdf) == 2
    assert pdf_page_count(b"%PDF-1.5\n1 0 obj<</Type/ObjStm>>stream...") is None
