"""Certificate PDFs: A4, IPAexMincho (subset), copy-evident background, seal, signed QR code.

Output is byte-for-byte deterministic for the same request: reportlab runs with ``invariant=1`` (fixed
document id and dates), nothing reads the clock, and the font subset is named by order of use. An
idempotent re-issue therefore returns the very same bytes.

The canonical content (see ``model.DocumentModel``) is embedded in the PDF as the attached file
``certificate-content.json`` so a verifier recomputes the hash the QR code signs without reading the
layout back.
"""
from __future__ import annotations

import hashlib
import io
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import segno
from PIL import Image, ImageDraw, ImageFont
from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.lib.utils import ImageReader
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.pdfdoc import PDFArray, PDFDictionary, PDFName, PDFStream, PDFString
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas

from cityhall.documents.model import Block, CertificateRequest, DocumentModel, Row, build_model
from cityhall.documents.signing import DocumentSigner, append_file_signature, make_qr_payload

MINCHO_PATH = Path("/usr/share/fonts/opentype/ipaexfont-mincho/ipaexm.ttf")
FONT_NAME = "IPAexMincho"
CONTENT_ATTACHMENT = "certificate-content.json"

PAGE_WIDTH, PAGE_HEIGHT = A4
LEFT = 19 * mm
RIGHT = PAGE_WIDTH - 19 * mm
HEADING_COLUMN = 10 * mm
LABEL_COLUMN = 38 * mm
ROW_HEIGHT = 5.8 * mm
BLOCK_GAP = 3 * mm
BODY_SIZE = 10.5
TOP_FIRST_PAGE = PAGE_HEIGHT - 50 * mm     # below the title
TOP_NEXT_PAGE = PAGE_HEIGHT - 36 * mm
BOTTOM_LIMIT = 26 * mm                      # above the footer
CERTIFICATION_TOP = 76 * mm                 # the last page keeps this much for certification and QR
QR_SIZE = 30 * mm
INK = (0.0, 0.0, 0.0)
SEAL_RED = (0.80, 0.10, 0.12)
GROUND_TINT = (172, 190, 210)               # 地紋 colour (RGB 0-255): light blue-grey


@dataclass(frozen=True)
class RenderedDocument:
    pdf: bytes
    sha256: str                    # hex SHA-256 of pdf (the exact bytes handed to the printer)
    qr_payload: str
    content_sha256: str = ""       # hex SHA-256 of the canonical content the QR signature covers


# reportlab keeps per-document subset state inside the shared TTFont object: one render at a time.
_render_lock = threading.Lock()


@lru_cache(maxsize=1)
def _register_font() -> str:
    if not MINCHO_PATH.exists():
        raise FileNotFoundError(f"{MINCHO_PATH} is missing: install the Debian package fonts-ipaexfont")
    pdfmetrics.registerFont(TTFont(FONT_NAME, str(MINCHO_PATH)))
    return FONT_NAME


def render_certificate(req: CertificateRequest, signer: DocumentSigner) -> RenderedDocument:
    """Render, sign (QR and whole file) and return the certificate for ``req``."""
    model = build_model(req)
    content = model.canonical_bytes()
    content_sha256 = hashlib.sha256(content).hexdigest()
    payload = make_qr_payload(signer, model.issuance_number, model.cert_type, content_sha256)
    pdf = append_file_signature(compose_pdf(model, payload), signer)
    return RenderedDocument(pdf=pdf, sha256=hashlib.sha256(pdf).hexdigest(), qr_payload=payload,
                            content_sha256=content_sha256)


def compose_pdf(model: DocumentModel, qr_payload: str) -> bytes:
    """The unsigned PDF of ``model`` carrying ``qr_payload`` as its QR code (no file signature)."""
    font = _register_font()
    pages = _plan_pages(model)
    buffer = io.BytesIO()
    with _render_lock:
        canvas = Canvas(buffer, pagesize=A4, invariant=1, pageCompression=1, lang="ja-JP")
        canvas.setTitle(model.title)
        canvas.setAuthor(model.city_name)
        canvas.setCreator("Madoguchi")
        canvas.setProducer("Madoguchi")
        _attach_content(canvas, model.canonical_bytes())
        _define_ground_form(canvas)
        sheets = bool(model.persons_per_sheet)
        for number, page in enumerate(pages, start=1):
            _draw_background(canvas)
            _draw_page_header(canvas, model, font, first=number == 1 or sheets)
            y = TOP_FIRST_PAGE if number == 1 or sheets else TOP_NEXT_PAGE
            if model.header and (number == 1 or sheets):
                y = _draw_rows(canvas, font, model.header, y, heading=None)
            for block in page:
                y = _draw_rows(canvas, font, block.rows, y, heading=block.heading)
            if number == len(pages):
                if model.closing:
                    canvas.setFont(font, 10.5)
                    canvas.drawCentredString(PAGE_WIDTH / 2, y - 4 * mm, model.closing)
                    y -= ROW_HEIGHT
                _draw_notes(canvas, font, model.notes, y)
                _draw_certification(canvas, font, model, qr_payload)
            _draw_footer(canvas, font, model, number, len(pages))
            canvas.showPage()
        canvas.save()
    return buffer.getvalue()


# --- pagination --------------------------------------------------------------------------------------
def _block_height(block: Block) -> float:
    return len(block.rows) * ROW_HEIGHT + BLOCK_GAP


def _plan_pages(model: DocumentModel) -> list[list[Block]]:
    """Blocks per sheet. 世帯連記式: at most ``persons_per_sheet`` persons a sheet, the header (住所, 世帯主)
    on every sheet; otherwise fill each page by height."""
    pages: list[list[Block]] = [[]]
    header_height = len(model.header) * ROW_HEIGHT + BLOCK_GAP if model.header else 0
    y = TOP_FIRST_PAGE - header_height
    per_sheet = model.persons_per_sheet
    for block in model.blocks:
        full = per_sheet and len(pages[-1]) >= per_sheet
        if (full or y - _block_height(block) < BOTTOM_LIMIT) and pages[-1]:
            pages.append([])
            y = (TOP_FIRST_PAGE if per_sheet else TOP_NEXT_PAGE) - (header_height if per_sheet else 0)
        pages[-1].append(block)
        y -= _block_height(block)
    notes_height = len(model.notes) * 4.5 * mm + 2 * mm + (ROW_HEIGHT if model.closing else 0)
    if y - notes_height < CERTIFICATION_TOP:
        pages.append([])
    return pages


# --- drawing -----------------------------------------------------------------------------------------
def _fit_size(text: str, font: str, size: float, width: float, smallest: float = 6.5) -> float:
    while size > smallest and pdfmetrics.stringWidth(text, font, size) > width:
        size -= 0.5
    return size


def _draw_rows(canvas: Canvas, font: str, rows: tuple[Row, ...], top: float,
               heading: str | None) -> float:
    """A bordered label/value table; ``heading`` (if any) runs vertically down a narrow left column."""
    height = len(rows) * ROW_HEIGHT
    label_left = LEFT + (HEADING_COLUMN if heading is not None else 0)
    value_left = label_left + LABEL_COLUMN
    canvas.setLineWidth(0.6)
    canvas.setStrokeColorRGB(*INK)
    canvas.setFillColorRGB(0.93, 0.93, 0.93)
    canvas.rect(label_left, top - height, LABEL_COLUMN, height, stroke=0, fill=1)
    if heading is not None:
        canvas.rect(LEFT, top - height, HEADING_COLUMN, height, stroke=0, fill=1)
    canvas.setFillColorRGB(*INK)
    canvas.rect(LEFT, top - height, RIGHT - LEFT, height, stroke=1, fill=0)
    canvas.setLineWidth(0.3)
    if heading is not None:
        canvas.line(label_left, top, label_left, top - height)
        size = min(BODY_SIZE, (height - 2 * mm) / max(len(heading), 1))
        canvas.setFont(font, size)
        y = top - (height - size * len(heading)) / 2 - size * 0.85
        for char in heading:
            canvas.drawCentredString(LEFT + HEADING_COLUMN / 2, y, char)
            y -= size
    canvas.line(value_left, top, value_left, top - height)
    for index, row in enumerate(rows):
        row_top = top - index * ROW_HEIGHT
        if index:
            canvas.line(label_left, row_top, RIGHT, row_top)
        baseline = row_top - ROW_HEIGHT / 2 - BODY_SIZE * 0.35
        canvas.setFont(font, _fit_size(row.label, font, 9.5, LABEL_COLUMN - 3 * mm))
        canvas.drawString(label_left + 2 * mm, baseline, row.label)
        size = _fit_size(row.value, font, BODY_SIZE, RIGHT - value_left - 4 * mm)
        canvas.setFont(font, size)
        canvas.drawString(value_left + 2.5 * mm, baseline, row.value)
    return top - height - BLOCK_GAP


def _draw_page_header(canvas: Canvas, model: DocumentModel, font: str, first: bool) -> None:
    canvas.setFillColorRGB(*INK)
    canvas.setFont(font, 9)
    top = PAGE_HEIGHT - 20 * mm
    canvas.drawRightString(RIGHT, top, f"発行番号 {model.issuance_number}")
    canvas.drawRightString(RIGHT, top - 4.5 * mm, f"発行日 {model.issue_date}")
    if model.copy_label:
        canvas.drawRightString(RIGHT, top - 9 * mm, f"通数 {model.copy_label}")
    canvas.drawString(LEFT, top, model.city_name)
    if first:
        canvas.setFont(font, 20)
        canvas.drawCentredString(PAGE_WIDTH / 2, PAGE_HEIGHT - 38 * mm, model.title)
        canvas.setLineWidth(0.5)
        width = pdfmetrics.stringWidth(model.title, font, 20)
        canvas.line((PAGE_WIDTH - width) / 2 - 4 * mm, PAGE_HEIGHT - 40.5 * mm,
                    (PAGE_WIDTH + width) / 2 + 4 * mm, PAGE_HEIGHT - 40.5 * mm)
    else:
        canvas.setFont(font, 12)
        canvas.drawString(LEFT, PAGE_HEIGHT - 30 * mm, f"{model.title}（続き）")


def _draw_notes(canvas: Canvas, font: str, notes: tuple[str, ...], top: float) -> None:
    canvas.setFont(font, 8.5)
    y = top - 2 * mm
    for note in notes:
        canvas.drawString(LEFT + 1 * mm, y, note)
        y -= 4.5 * mm


def _draw_certification(canvas: Canvas, font: str, model: DocumentModel, qr_payload: str) -> None:
    canvas.setFillColorRGB(*INK)
    size = _fit_size(model.certification, font, 11.5, RIGHT - LEFT - 10 * mm)
    canvas.setFont(font, size)
    canvas.drawString(LEFT + 5 * mm, 70 * mm, model.certification)
    canvas.setFont(font, 11)
    canvas.drawString(LEFT + 10 * mm, 62 * mm, model.issue_date)
    canvas.setFont(font, 13)
    name_right = RIGHT - 14 * mm
    canvas.drawRightString(name_right, 46 * mm, model.mayor_name)
    _draw_seal(canvas, font, f"{model.city_name}長之印", name_right + 4 * mm, 48 * mm, 21 * mm)

    qr_image = _qr_image(qr_payload)
    canvas.drawImage(ImageReader(qr_image), LEFT, 19 * mm, QR_SIZE, QR_SIZE)
    canvas.setFont(font, 7.5)
    text_left = LEFT + QR_SIZE + 3 * mm
    canvas.drawString(text_left, 30 * mm, "この二次元コードには、発行番号と証明書の内容の要約値に対する")
    canvas.drawString(text_left, 26.5 * mm, f"{model.city_name}の電子署名が記録されています。真正性は市の検証")
    canvas.drawString(text_left, 23 * mm, "窓口または cityhall verify で確認できます。")


def _draw_seal(canvas: Canvas, font: str, text: str, centre_x: float, centre_y: float,
               size: float) -> None:
    """The 公印: a red square with the seal text in vertical columns read right to left."""
    chars = list(text)
    rows = 2 if len(chars) <= 6 else 3
    columns = -(-len(chars) // rows)
    cell = (size - 3 * mm) / max(rows, columns)
    canvas.saveState()
    canvas.setStrokeColorRGB(*SEAL_RED)
    canvas.setFillColorRGB(*SEAL_RED)
    canvas.setLineWidth(1.8)
    canvas.rect(centre_x - size / 2, centre_y - size / 2, size, size, stroke=1, fill=0)
    canvas.setLineWidth(0.5)
    canvas.rect(centre_x - size / 2 + 1 * mm, centre_y - size / 2 + 1 * mm, size - 2 * mm, size - 2 * mm,
                stroke=1, fill=0)
    canvas.setFont(font, cell * 0.95)
    grid_width, grid_height = columns * cell, rows * cell
    for index, char in enumerate(chars):
        column, row = divmod(index, rows)
        x = centre_x + grid_width / 2 - (column + 0.5) * cell
        y = centre_y + grid_height / 2 - (row + 1) * cell + cell * 0.14
        canvas.drawCentredString(x, y, char)
    canvas.restoreState()


def _draw_footer(canvas: Canvas, font: str, model: DocumentModel, number: int, total: int) -> None:
    canvas.setFillColorRGB(*INK)
    canvas.setFont(font, 8)
    if model.place_of_issue:
        canvas.drawString(LEFT, 14 * mm, f"発行場所 {model.place_of_issue}")
    canvas.drawRightString(RIGHT, 14 * mm, sheet_label(number, total))
    canvas.drawCentredString(PAGE_WIDTH / 2, 10 * mm,
                             "この証明書は偽造防止のため地紋を印刷しています。複写したものは証明書として使用できません。")


def sheet_label(number: int, total: int) -> str:
    return f"{total}枚中{number}枚目"


def _attach_content(canvas: Canvas, content: bytes) -> None:
    """Embed the canonical content as a standard PDF attachment (catalog /Names /EmbeddedFiles)."""
    document = canvas._doc  # reportlab has no public API for attachments; the object model is stable
    stream = PDFStream(PDFDictionary({"Type": PDFName("EmbeddedFile"),
                                      "Subtype": PDFName("application#2Fjson")}), content)
    filespec = PDFDictionary({"Type": PDFName("Filespec"), "F": PDFString(CONTENT_ATTACHMENT),
                              "UF": PDFString(CONTENT_ATTACHMENT),
                              "EF": PDFDictionary({"F": document.Reference(stream)})})
    names = PDFArray([PDFString(CONTENT_ATTACHMENT), document.Reference(filespec)])
    canvas.setCatalogEntry("Names", PDFDictionary({"EmbeddedFiles": PDFDictionary({"Names": names})}))


_GROUND_FORM = "MadoguchiGround"
_TILE_WIDTH, _TILE_HEIGHT = 48 * mm, 24 * mm


def _define_ground_form(canvas: Canvas) -> None:
    """The page background as one form XObject drawing one image XObject many times (cheap to write)."""
    canvas.beginForm(_GROUND_FORM + "Tile", 0, 0, _TILE_WIDTH, _TILE_HEIGHT)
    canvas.drawImage(ImageReader(_ground_tile()), 0, 0, _TILE_WIDTH, _TILE_HEIGHT)
    canvas.endForm()
    canvas.beginForm(_GROUND_FORM, 0, 0, PAGE_WIDTH, PAGE_HEIGHT)
    y = 0.0
    row = 0
    while y < PAGE_HEIGHT:
        x = -(_TILE_WIDTH / 2 if row % 2 else 0)
        while x < PAGE_WIDTH:
            canvas.saveState()
            canvas.translate(x, y)
            canvas.doForm(_GROUND_FORM + "Tile")
            canvas.restoreState()
            x += _TILE_WIDTH
        y += _TILE_HEIGHT
        row += 1
    canvas.endForm()


def _draw_background(canvas: Canvas) -> None:
    canvas.doForm(_GROUND_FORM)
    canvas.setStrokeColorRGB(*INK)
    canvas.setLineWidth(0.8)
    canvas.rect(12 * mm, 8 * mm, PAGE_WIDTH - 24 * mm, PAGE_HEIGHT - 16 * mm, stroke=1, fill=0)


@lru_cache(maxsize=1)
def _ground_tile() -> Image.Image:
    """A 地紋 tile at 300 dpi: the word 複写 in clustered dots on a ground of single fine dots.

    Both areas carry about the same ink, so the original looks evenly tinted; a copier drops the
    isolated fine dots and keeps the clusters, so 複写 stands out on a photocopy. How clearly depends
    on the printer and copier (see shared/docs/payment-printing.md §6): tune dot pitch per model.
    """
    width, height = 567, 283                      # 48 mm x 24 mm at 300 dpi
    mask = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(mask)
    font = ImageFont.truetype(str(MINCHO_PATH), 150)
    draw.text((width / 2, height / 2), "複写", font=font, fill=255, anchor="mm", stroke_width=5,
              stroke_fill=255)           # bold strokes: several clusters across each stroke
    word = mask.point(lambda value: 255 if value > 127 else 0)
    fine = Image.new("RGB", (width, height), (255, 255, 255))       # isolated dots every 3 px: 11% ink,
    coarse = fine.copy()                                             # lost on a copy; 2x2 clusters every
    fine_draw, coarse_draw = ImageDraw.Draw(fine), ImageDraw.Draw(coarse)   # 6 px: 11% ink, survive it
    for y in range(0, height, 3):
        fine_draw.point([(x, y) for x in range(0, width, 3)], fill=GROUND_TINT)
    for y in range(0, height, 6):
        for x in range(0, width, 6):
            coarse_draw.rectangle((x, y, x + 1, y + 1), fill=GROUND_TINT)
    return Image.composite(coarse, fine, word)


def _qr_image(payload: str) -> Image.Image:
    """One pixel per module (quiet zone included); the PDF scales it without interpolation."""
    # A fixed mask pattern is valid QR (ISO/IEC 18004 lets the encoder choose) and saves the ~10 ms
    # segno spends scoring all eight.
    qr = segno.make(payload, error="m", micro=False, mask=0)
    buffer = io.BytesIO()
    qr.save(buffer, kind="png", scale=1, border=4)
    buffer.seek(0)
    return Image.open(buffer).convert("L")
