"""What `kioskctl test-print a4|receipt` prints: a test page and a test receipt, no resident data."""
from __future__ import annotations

from datetime import datetime, timezone

from kiosk.i18n import catalog
from kiosk.ports import Receipt

from drivers.printer.receipt_a4 import receipt_pdf
from drivers.printer.receipt_render import JST, Layout, Row, render_rows


def job_name_for_test_print(now: datetime | None = None) -> str:
    return "TEST-" + (now or datetime.now(timezone.utc)).astimezone(JST).strftime("%Y%m%d%H%M%S")


def a4_test_page(kiosk_id: str, now: datetime | None = None, lang: str = "ja") -> bytes:
    """One A4 page saying what it is, where and when it was printed."""
    tr = catalog("receipt", lang)
    now = now or datetime.now(timezone.utc)
    rows = [Row("center", tr("receipt.test_title"), scale=2.0), Row("rule"),
            Row("left", tr("receipt.kiosk", kiosk_id=kiosk_id)),
            Row("left", tr("receipt.issued_at", when=now.astimezone(JST).strftime(tr("receipt.datetime_format")))),
            Row("left", job_name_for_test_print(now)), Row("qr", job_name_for_test_print(now))]
    return receipt_pdf(render_rows(rows, Layout(dot_width=576)))


def receipt_for_test_print(lang: str = "ja", now: datetime | None = None) -> Receipt:
    """A receipt with no lines and no money, numbered like a test job."""
    now = now or datetime.now(timezone.utc)
    return Receipt(transaction_id=job_name_for_test_print(now), issued_at=now, lines=(), total_yen=0, paid_yen=0,
                   change_yen=0, method="cash", language=lang)
