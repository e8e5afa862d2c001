"""What IPP/CUPS state means for a kiosk: pure functions, no I/O (tested on attribute dictionaries).

printer-state-reasons keywords may carry a severity suffix (-report, -warning, -error) and printers
differ in which one they use for the same condition (ippeveprinter reports a jam as
``media-jam-warning`` while printing and ``media-jam-report`` afterwards), so reasons are matched on
their prefix and every severity of a fault keyword counts as the fault being present.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from kiosk.errors import CoverOpen, PaperJam, PaperOut, PrinterError, PrinterOffline, TonerEmpty
from kiosk.ports import PrintOutcome

# job-state (RFC 8011 §5.3.7)
JOB_PENDING, JOB_HELD, JOB_PROCESSING, JOB_STOPPED, JOB_CANCELED, JOB_ABORTED, JOB_COMPLETED = 3, 4, 5, 6, 7, 8, 9
JOB_TERMINAL = (JOB_CANCELED, JOB_ABORTED, JOB_COMPLETED)
# printer-state
PRINTER_IDLE, PRINTER_PROCESSING, PRINTER_STOPPED = 3, 4, 5

_SEVERITY = re.compile(r"-(report|warning|error)$")

#: keyword prefix → the error a resident's transaction fails with (checked in this order)
FAULTS: tuple[tuple[str, type[PrinterError]], ...] = (
    ("media-empty", PaperOut),
    ("media-needed", PaperOut),
    ("media-jam", PaperJam),
    ("toner-empty", TonerEmpty),
    ("marker-supply-empty", TonerEmpty),
    ("door-open", CoverOpen),
    ("cover-open", CoverOpen),
    ("interlock-open", CoverOpen),
    ("offline", PrinterOffline),
    ("shutdown", PrinterOffline),
    ("input-tray-missing", PrinterError),
    ("output-area-full", PrinterError),
    ("output-tray-missing", PrinterError),
    ("marker-waste-full", PrinterError),
    ("fuser-over-temp", PrinterError),
    ("fuser-under-temp", PrinterError),
)
#: worth a log line and a technician's visit, but the printer still prints
WARNINGS = ("media-low", "toner-low", "marker-supply-low", "marker-waste-almost-full", "developer-low")
#: informational or transient; never a fault by themselves
IGNORED_PREFIXES = ("none", "cups-", "com.apple.", "connecting-to-device", "moving-to-paused", "paused",
                    "other", "spool-area-full-report")


def base_keyword(reason: str) -> str:
    return _SEVERITY.sub("", reason.strip())


def as_list(value: object) -> list[str]:
    """pycups gives a one-valued keyword attribute as a str and a multi-valued one as a list."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]  # type: ignore[union-attr]


@dataclass(frozen=True)
class ReasonVerdict:
    fault: PrinterError | None
    warnings: tuple[str, ...]


def classify_reasons(reasons: object, where: str = "printer") -> ReasonVerdict:
    """Turn printer-state-reasons into the first fault (as a typed error) and any warnings."""
    keywords = as_list(reasons)
    for prefix, error in FAULTS:
        for reason in keywords:
            if base_keyword(reason) == prefix or base_keyword(reason).startswith(prefix + "-"):
                return ReasonVerdict(error(f"{where} reports {reason}; fix the printer (see its panel), "
                                           "then run `kioskctl test-print a4`", reason=reason),
                                     _warnings(keywords))
    unknown_errors = [r for r in keywords if r.endswith("-error") and not r.startswith(IGNORED_PREFIXES)]
    if unknown_errors:
        return ReasonVerdict(PrinterError(f"{where} reports {unknown_errors[0]}; check the printer",
                                          reason=unknown_errors[0]), _warnings(keywords))
    return ReasonVerdict(None, _warnings(keywords))


def _warnings(keywords: list[str]) -> tuple[str, ...]:
    return tuple(r for r in keywords if base_keyword(r).startswith(WARNINGS))


def completed_successfully(state: int, job_state_reasons: object) -> bool:
    """True only for job-state completed with a clean reason.

    CUPS 2.4.0–2.4.7 (Debian 12, Raspberry Pi OS bookworm) leaves every successfully completed job with
    ``processing-to-stop-point`` instead of ``job-completed-successfully`` (OpenPrinting/cups#828, fixed
    by #832 in 2.4.8); with the ipp backend waiting for the printer's own job, a local "completed" still
    means the printer said completed, so that lone reason is accepted too. Anything "with-warnings",
    "with-errors" or naming a problem is not a success.
    """
    if state != JOB_COMPLETED:
        return False
    reasons = as_list(job_state_reasons)
    if "job-completed-successfully" in reasons:
        return True
    return reasons == ["processing-to-stop-point"]


def job_printed(state: int, job_state_reasons: object, job_printer_state_reasons: object = None) -> bool:
    """Completed cleanly, and the printer did not report a fault with it.

    CUPS 2.4's ipp backend can exit cleanly, and the local job complete, after the printer aborted its own
    job (seen with ippeveprinter): a completion that comes with a printer fault is not a printed page.
    """
    return (completed_successfully(state, job_state_reasons)
            and classify_reasons(job_printer_state_reasons).fault is None)


def outcome_of(state: int, job_state_reasons: object, job_printer_state_reasons: object = None) -> PrintOutcome:
    if state in JOB_TERMINAL:
        return (PrintOutcome.PRINTED if job_printed(state, job_state_reasons, job_printer_state_reasons)
                else PrintOutcome.FAILED)
    return PrintOutcome.IN_PROGRESS


_PAGE_OBJECT = re.compile(rb"/Type\s*/Page(?![sA-Za-z])")


def pdf_page_count(pdf: bytes) -> int | None:
    """Pages of a PDF whose page objects are plain (most generators); None when they are hidden in
    compressed object streams and cannot be counted without a PDF library."""
    count = len(_PAGE_OBJECT.findall(pdf))
    return count or None
