"""The receipt (領収書) as text rows, then as a 1-bit image at the printer's dot width: pure, no I/O.

python-escpos has no Kanji mode, so every line is drawn with Pillow in IPAexGothic and sent as a raster
image; the output is then the same on any ESC/POS printer and in the emulator. All words come from the
gettext domain "receipt" (kiosk/locale/<lang>/LC_MESSAGES/receipt.po) by stable key.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache
from typing import Callable, Literal
from zoneinfo import ZoneInfo

from kiosk.i18n import catalog
from kiosk.ports import Receipt

JST = ZoneInfo("Asia/Tokyo")
IPAEX_GOTHIC = "/usr/share/fonts/opentype/ipaexfont-gothic/ipaexg.ttf"

Align = Literal["left", "center", "split", "rule", "qr"]


@dataclass(frozen=True)
class Row:
    """One printed row: ``split`` rows have text left and ``right`` right-aligned."""

    kind: Align
    text: str = ""
    right: str = ""
    scale: float = 1.0


@dataclass(frozen=True)
class Layout:
    dot_width: int = 576  # 80 mm paper at 203 dpi; 384 for 58 mm
    font_path: str = IPAEX_GOTHIC
    margin: int = 8

    @property
    def font_size(self) -> int:
        return 26 if self.dot_width >= 576 else 20


@dataclass(frozen=True)
class Venue:
    """Who issued the receipt (from the driver options or the kiosk config)."""

    city_name: str
    location: str
    kiosk_id: str
    inquiry_phone: str
    voucher_counter: str = "市役所の窓口"  # where a 返金引換券 is redeemed ([kiosk] voucher_counter)


def yen(amount: int) -> str:
    return f"{amount:,}"


def cert_key(label_key: str) -> str:
    return label_key if "." in label_key else f"cert.{label_key}"


def receipt_rows(receipt: Receipt, venue: Venue, tr: Callable[..., str] | None = None) -> list[Row]:
    """The receipt's content, in order, in the receipt's language."""
    tr = tr or catalog("receipt", receipt.language)
    issued = receipt.issued_at if receipt.issued_at.tzinfo else receipt.issued_at.replace(tzinfo=timezone.utc)
    when = issued.astimezone(JST).strftime(tr("receipt.datetime_format"))
    money = lambda amount: tr("receipt.amount", amount=yen(amount))  # noqa: E731
    rows = [Row("center", tr("receipt.title"), scale=1.6), Row("center", venue.city_name, scale=1.2),
            Row("left", venue.location), Row("left", tr("receipt.kiosk", kiosk_id=venue.kiosk_id)),
            Row("left", tr("receipt.issued_at", when=when)),
            Row("left", tr("receipt.transaction", number=receipt.transaction_id)), Row("rule")]
    for line in receipt.lines:
        rows.append(Row("left", tr(cert_key(line.label_key))))
        rows.append(Row("split", "  " + tr("receipt.line", copies=line.copies, unit=money(line.unit_fee_yen)),
                        money(line.copies * line.unit_fee_yen)))
    rows += [Row("rule"), Row("split", tr("receipt.total"), money(receipt.total_yen), scale=1.3),
             Row("split", tr("receipt.paid"), money(receipt.paid_yen)),
             Row("split", tr("receipt.change"), money(receipt.change_yen)),
             Row("split", tr("receipt.method"), tr(f"receipt.method.{receipt.method}"))]
    if receipt.refund_yen:
        rows.append(Row("split", tr("receipt.refund"), money(receipt.refund_yen)))
    if receipt.voucher_yen:
        rows += voucher_rows(receipt, venue, tr)
    rows += [Row("rule"), Row("left", tr("receipt.received_statement")),
             Row("left", tr("receipt.inquiry", phone=venue.inquiry_phone)),
             Row("center", tr("receipt.qr_caption")), Row("qr", receipt.transaction_id),
             Row("center", tr("receipt.thanks"))]
    return rows


def voucher_rows(receipt: Receipt, venue: Venue, tr: Callable[..., str]) -> list[Row]:
    """The 返金引換券 part: amount, where and until when, and its signed code as QR and as text."""
    rows = [Row("rule"), Row("center", tr("receipt.voucher"), scale=1.6),
            Row("split", tr("receipt.transaction", number=receipt.transaction_id), tr("receipt.amount",
                                                                                       amount=yen(receipt.voucher_yen)),
                scale=1.1)]
    voucher = receipt.voucher
    if voucher is None:  # the signature could not be made: the journal still holds the amount owed
        return rows + [Row("left", tr("receipt.voucher_note", counter=venue.voucher_counter, until="—"))]
    until = voucher.expires_at.astimezone(JST).strftime(tr("receipt.voucher_date_format"))
    return rows + [Row("left", tr("receipt.voucher_note", counter=venue.voucher_counter, until=until)),
                   Row("qr", voucher.code), Row("left", tr("receipt.voucher_code", code=voucher.text), scale=0.8)]


@lru_cache(maxsize=16)
def _font(path: str, size: int):  # type: ignore[no-untyped-def]
    from PIL import ImageFont

    return ImageFont.truetype(path, size)


def _wrap(text: str, font, width: int) -> list[str]:  # type: ignore[no-untyped-def]
    """Break a line where it no longer fits (by character: Japanese has no spaces to break at)."""
    lines, current = [], ""
    for ch in text:
        if current and font.getlength(current + ch) > width:
            lines.append(current)
            current = ch.lstrip() if ch == " " else ch
        else:
            current += ch
    return lines + [current] if current or not lines else lines


def _qr_image(content: str, dot_width: int):  # type: ignore[no-untyped-def]
    import segno
    from PIL import Image

    code = segno.make(content, error="m", micro=False)
    border = 2
    modules = code.symbol_size(scale=1, border=border)[0]
    scale = max(2, min(8, (dot_width // 2) // modules))
    size = modules * scale
    img = Image.new("1", (size, size), 1)
    pixels = img.load()
    for y, row in enumerate(code.matrix):
        for x, dark in enumerate(row):
            if dark:
                for dy in range(scale):
                    for dx in range(scale):
                        pixels[(x + border) * scale + dx, (y + border) * scale + dy] = 0
    return img


def render_rows(rows: list[Row], layout: Layout = Layout()):  # type: ignore[no-untyped-def]
    """Draw the rows to a 1-bit Pillow image exactly ``layout.dot_width`` dots wide (black = 0)."""
    from PIL import Image, ImageDraw

    width, margin = layout.dot_width, layout.margin
    usable = width - 2 * margin
    pieces: list = []  # (image, x) per printed block, stacked top to bottom
    for row in rows:
        if row.kind == "rule":
            block = Image.new("L", (width, 12), 255)
            ImageDraw.Draw(block).line((margin, 6, width - margin, 6), fill=0, width=2)
            pieces.append(block)
            continue
        if row.kind == "qr":
            qr = _qr_image(row.text, width)
            block = Image.new("L", (width, qr.height), 255)
            block.paste(qr.convert("L"), ((width - qr.width) // 2, 0))
            pieces.append(block)
            continue
        font = _font(layout.font_path, round(layout.font_size * row.scale))
        ascent, descent = font.getmetrics()
        line_height = ascent + descent + 4
        right_width = int(font.getlength(row.right)) + 8 if row.kind == "split" else 0
        for i, text in enumerate(_wrap(row.text, font, usable - right_width)):
            block = Image.new("L", (width, line_height), 255)
            draw = ImageDraw.Draw(block)
            if row.kind == "center":
                x = margin + max(0, (usable - int(font.getlength(text))) // 2)
            else:
                x = margin
            draw.text((x, 2), text, font=font, fill=0)
            if row.kind == "split" and i == 0:
                draw.text((width - margin - int(font.getlength(row.right)), 2), row.right, font=font, fill=0)
            pieces.append(block)
    height = sum(p.height for p in pieces)
    sheet = Image.new("L", (width, height), 255)
    y = 0
    for piece in pieces:
        sheet.paste(piece, (0, y))
        y += piece.height
    # a hard threshold, not dithering: thermal heads print crisp glyph edges, and tests compare bit for bit
    return sheet.point(lambda v: 255 if v >= 160 else 0, "1")


def render_receipt(receipt: Receipt, venue: Venue, layout: Layout = Layout()):  # type: ignore[no-untyped-def]
    return render_rows(receipt_rows(receipt, venue), layout)


def now_utc() -> datetime:
    return datetime.now(timezone.utc)
