"""Receipt on the A4 printer, for sites without a thermal printer: the same rendered receipt, as its own
PDF page, through the same CUPS driver as the certificates (printed after them by the engine).

    [receipt_printer]
    driver = "cups-a4"
    queue = "kiosk-a4"         # every option of the "cups" document printer, plus the venue fields
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

from kiosk.config import setting
from kiosk.ports import Receipt
from kiosk.registry import register

from drivers.printer.document import CupsDocumentPrinter, CupsOptions
from drivers.printer.receipt_render import IPAEX_GOTHIC, Layout, render_receipt
from drivers.printer.receipt import venue_from

RECEIPT_DPI = 203  # drawn for an 80 mm thermal head; on A4 it prints at its real size, top left


@dataclass(frozen=True)
class ReceiptOnA4Options(CupsOptions):
    font_path: str = setting(IPAEX_GOTHIC, doc="Font for every receipt line.")
    city_name: str = setting("", doc="City name on the receipt; empty uses [kiosk] city_name.")
    location: str = setting("", doc="Kiosk location on the receipt; empty uses [kiosk] location.")
    kiosk_id: str = setting("", doc="Kiosk id on the receipt; empty uses [kiosk] device_id.")
    inquiry_phone: str = setting("", doc="Inquiry phone on the receipt; empty uses [kiosk] inquiry_phone.")


def receipt_pdf(image: Any) -> bytes:
    from PIL import Image

    page = Image.new("1", (round(210 / 25.4 * RECEIPT_DPI), round(297 / 25.4 * RECEIPT_DPI)), 1)
    margin = round(15 / 25.4 * RECEIPT_DPI)
    page.paste(image, (margin, margin))
    out = io.BytesIO()
    page.save(out, "PDF", resolution=RECEIPT_DPI)
    return out.getvalue()


class ReceiptOnA4:
    """kiosk.ports.ReceiptPrinter that prints on the A4 printer."""

    def __init__(self, options: ReceiptOnA4Options, context: Any = None) -> None:
        self.document_printer = CupsDocumentPrinter(options, context)
        self.venue = venue_from(options, context)  # type: ignore[arg-type]
        self.layout = Layout(dot_width=576, font_path=options.font_path)

    def check_ready(self) -> list[str]:
        self.document_printer.check_ready()
        return []

    def print_receipt(self, receipt: Receipt) -> None:
        pdf = receipt_pdf(render_receipt(receipt, self.venue, self.layout))
        self.document_printer.print_document(pdf, f"{receipt.transaction_id}-receipt")


@register("receipt_printer", "cups-a4", ReceiptOnA4Options)
def build_receipt_on_a4(options: ReceiptOnA4Options, context: Any) -> ReceiptOnA4:
    return ReceiptOnA4(options, context)
