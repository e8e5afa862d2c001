"""日計 — the daily book of the kiosks' takings, per kiosk and for all kiosks, as a 会計 clerk keeps it
(docs/counter.md: a day's 収入 by 歳入 item — here 手数料 by certificate type — with the 現金出納 of the
day, balanced before it is signed).

For one JST day, from the projection (never the raw journal) plus the counter's own records:
fees by certificate type and count; cash in, change out, refunds (automatic cash and QR, and by voucher
at the counter); QR takings; vouchers issued; the cash box emptied (counted vs expected).

Balance per kiosk: money in (cash + QR) = fees + change + automatic refunds + vouchers issued + unmatched.
"Checked against the journal" re-reads the day's transactions from ``journal_events`` (the older
reconciliation) and compares the totals, so a projection that drifted from its journal shows.

A clerk signs a day off for one kiosk or for all: the figures are frozen in ``daybook_signoffs``; after
that the day is read-only — an adjustment is refused, and a correction is a new entry (who, when, how
much, why) shown under the signed figures, audited like every staff action.
"""
from __future__ import annotations

import csv
import io
import json
import secrets
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any

from cityhall.counter import staff as audit
from cityhall.counter.projection import JST
from cityhall.storage import Database, from_db_time, to_db_time

ALL = "all"
ENTRY_KINDS = ("adjustment", "correction")


class DayBookError(Exception):
    """A daily-book action was refused; ``reason`` is a catalog key suffix, ``status`` the HTTP status."""

    def __init__(self, reason: str, status: int, detail: str = "") -> None:
        super().__init__(detail or reason)
        self.reason, self.status, self.detail = reason, status, detail


@dataclass
class KioskBook:
    device_id: str
    location: str = ""
    certificates: dict[str, dict[str, int]] = field(default_factory=dict)
    transactions: int = 0
    cash_in: int = 0
    qr_in: int = 0
    change_out: int = 0
    refund_cash: int = 0
    refund_qr: int = 0
    vouchers_issued: int = 0
    vouchers_issued_yen: int = 0
    vouchers_redeemed: int = 0
    vouchers_redeemed_yen: int = 0
    unmatched_yen: int = 0
    emptyings: int = 0
    emptied_counted: int = 0
    emptied_expected: int = 0
    journal_fees: int | None = None  # the same day re-read from the journal

    @property
    def fees(self) -> int:
        return sum(c["yen"] for c in self.certificates.values())

    @property
    def certificate_count(self) -> int:
        return sum(c["count"] for c in self.certificates.values())

    @property
    def money_in(self) -> int:
        return self.cash_in + self.qr_in

    @property
    def difference(self) -> int:
        """Money in that no fee, change, refund or voucher accounts for (0 when the day balances)."""
        return self.money_in - self.fees - self.change_out - self.refund_cash - self.refund_qr - self.vouchers_issued_yen

    @property
    def net_cash(self) -> int:
        """現金: what stayed in the kiosk's cash box as takings (in, less change and cash refunds)."""
        return self.cash_in - self.change_out - self.refund_cash

    @property
    def net_qr(self) -> int:
        return self.qr_in - self.refund_qr

    @property
    def emptied_difference(self) -> int:
        return self.emptied_counted - self.emptied_expected

    @property
    def journal_agrees(self) -> bool | None:
        return None if self.journal_fees is None else self.journal_fees == self.fees

    def add(self, other: "KioskBook") -> None:
        for name, value in vars(other).items():
            if isinstance(value, int) and not isinstance(value, bool) and name != "journal_fees":
                setattr(self, name, getattr(self, name) + value)
        for cert, figures in other.certificates.items():
            mine = self.certificates.setdefault(cert, {"count": 0, "yen": 0})
            mine["count"] += figures["count"]
            mine["yen"] += figures["yen"]
        if other.journal_fees is not None:
            self.journal_fees = (self.journal_fees or 0) + other.journal_fees

    def figures(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(fees=self.fees, difference=self.difference, net_cash=self.net_cash, net_qr=self.net_qr,
                    emptied_difference=self.emptied_difference)
        return data


@dataclass
class Entry:
    entry_id: str
    kind: str
    amount_yen: int
    note: str
    entered_by: str
    entered_at: datetime


@dataclass
class SignOff:
    signed_by: str
    signed_at: datetime
    figures: dict[str, Any]


@dataclass
class DayBook:
    day: date
    scope: str  # ALL or a device id
    kiosks: list[KioskBook]
    total: KioskBook
    redemptions: list[dict[str, Any]]
    entries: list[Entry]
    signoff: SignOff | None

    @property
    def signed(self) -> bool:
        return self.signoff is not None

    @property
    def balanced(self) -> bool:
        return self.total.difference == 0 and all(k.journal_agrees is not False for k in self.kiosks)

    @property
    def corrections_yen(self) -> int:
        return sum(e.amount_yen for e in self.entries)

    @property
    def changed_since_signoff(self) -> bool:
        if self.signoff is None:
            return False
        signed = self.signoff.figures.get("total", {})
        return any(signed.get(k) != v for k, v in self.total.figures().items() if k != "journal_fees")


def _scope_ok(db: Database, scope: str) -> None:
    if scope == ALL:
        return
    with db.transaction() as tx:
        if tx.one("SELECT device_id FROM devices WHERE device_id = ?", (scope,)) is None:
            raise DayBookError("unknown_kiosk", 404, f"no kiosk {scope}")


def build(db: Database, day: date, scope: str = ALL, *, check_journal: bool = True) -> DayBook:
    _scope_ok(db, scope)
    iso = day.isoformat()
    where, params = ("", (iso,)) if scope == ALL else (" AND p.device_id = ?", (iso, scope))
    with db.transaction() as tx:
        rows = tx.execute("SELECT p.*, d.location FROM kiosk_day_projection p JOIN devices d ON d.device_id = "
                          f"p.device_id WHERE p.day = ?{where} ORDER BY p.device_id", params)
        redemptions = tx.execute("SELECT * FROM voucher_redemptions WHERE day = ?"
                                 + ("" if scope == ALL else " AND device_id = ?") + " ORDER BY redeemed_at",
                                 (iso,) if scope == ALL else (iso, scope))
        entry_rows = tx.execute("SELECT * FROM daybook_entries WHERE day = ? AND scope = ? ORDER BY entered_at",
                                (iso, scope))
        signed = tx.one("SELECT * FROM daybook_signoffs WHERE day = ? AND scope = ?", (iso, scope))
    kiosks: dict[str, KioskBook] = {}
    for r in rows:
        book = KioskBook(r["device_id"], r["location"], json.loads(r["certificates"]))
        for name in ("transactions", "cash_in", "qr_in", "change_out", "refund_cash", "refund_qr", "vouchers_issued",
                     "vouchers_issued_yen", "unmatched_yen", "emptyings", "emptied_counted", "emptied_expected"):
            setattr(book, name, int(r[name]))
        kiosks[book.device_id] = book
    for r in redemptions:
        book = kiosks.setdefault(r["device_id"], KioskBook(r["device_id"]))
        book.vouchers_redeemed += 1
        book.vouchers_redeemed_yen += int(r["amount_yen"])
    if check_journal:
        _check_against_journal(db, day, kiosks, scope)
    total = KioskBook(ALL)
    for book in kiosks.values():
        total.add(book)
    entries = [Entry(e["entry_id"], e["kind"], int(e["amount_yen"]), e["note"], e["entered_by"],
                     from_db_time(e["entered_at"])) for e in entry_rows]
    signoff = SignOff(signed["signed_by"], from_db_time(signed["signed_at"]), json.loads(signed["figures"])) \
        if signed else None
    return DayBook(day, scope, sorted(kiosks.values(), key=lambda k: k.device_id), total, redemptions, entries,
                   signoff)


def _check_against_journal(db: Database, day: date, kiosks: dict[str, KioskBook], scope: str) -> None:
    """Fees printed that day as the journal itself says (its events dated that JST day)."""
    start = datetime(day.year, day.month, day.day, tzinfo=JST)
    lo = start.astimezone(timezone.utc).isoformat(timespec="microseconds")
    hi = (start + timedelta(days=1)).astimezone(timezone.utc).isoformat(timespec="microseconds")
    with db.transaction() as tx:
        for device_id, book in kiosks.items():
            if scope not in (ALL, device_id):
                continue
            fees: dict[str, int] = {}
            total = 0
            for row in tx.execute("SELECT kind, body FROM journal_events WHERE device_id = ? AND at >= ? AND at < ? "
                                  "AND kind IN ('issue.outcome', 'print.outcome') ORDER BY seq", (device_id, lo, hi)):
                body = json.loads(row["body"])
                if row["kind"] == "issue.outcome":
                    for doc in body.get("documents", []):
                        fees[str(doc.get("document_id"))] = int(doc.get("fee", 0))
                elif body.get("printed"):
                    total += fees.get(str(body.get("document_id")), 0)
            # A document issued before midnight and printed after it is fetched on its own.
            book.journal_fees = total + _fees_issued_earlier(tx, device_id, lo, hi, fees)


def _fees_issued_earlier(tx: Any, device_id: str, lo: str, hi: str, known: dict[str, int]) -> int:
    printed = [json.loads(r["body"]) for r in tx.execute(
        "SELECT body FROM journal_events WHERE device_id = ? AND at >= ? AND at < ? AND kind = 'print.outcome'",
        (device_id, lo, hi))]
    missing = [str(b.get("document_id")) for b in printed if b.get("printed") and str(b.get("document_id")) not in known]
    if not missing:
        return 0
    extra = 0
    for row in tx.execute("SELECT body FROM journal_events WHERE device_id = ? AND at < ? AND kind = 'issue.outcome' "
                          "ORDER BY seq DESC LIMIT 200", (device_id, lo)):
        for doc in json.loads(row["body"]).get("documents", []):
            if str(doc.get("document_id")) in missing:
                extra += int(doc.get("fee", 0))
    return extra


def sign_off(db: Database, day: date, scope: str, username: str, now: datetime) -> DayBook:
    book = build(db, day, scope)
    if day > now.astimezone(JST).date():
        raise DayBookError("future_day", 422, "a day that has not begun cannot be signed off")
    figures = {"total": book.total.figures(), "kiosks": [k.figures() for k in book.kiosks],
               "redemptions": len(book.redemptions)}
    with db.transaction() as tx:
        tx.execute("INSERT INTO daybook_signoffs (scope, day, signed_by, signed_at, figures) VALUES (?, ?, ?, ?, ?) "
                   "ON CONFLICT (scope, day) DO NOTHING",
                   (scope, day.isoformat(), username, to_db_time(now), json.dumps(figures, sort_keys=True)))
        signed_now = tx.rowcount == 1
        if signed_now:
            audit.record(tx, now, username, "sign_off_day", f"{scope} {day}", fees=book.total.fees,
                         difference=book.total.difference)
    if not signed_now:  # recorded in its own transaction: a refusal is audited too
        audit.record_now(db, now, username, "sign_off_day.refused", f"{scope} {day}", reason="already_signed")
        raise DayBookError("already_signed", 409, f"{day} ({scope}) is already signed off")
    return build(db, day, scope)


def add_entry(db: Database, day: date, scope: str, kind: str, amount_yen: int, note: str, username: str,
              now: datetime) -> None:
    """An adjustment (only before sign-off) or a correction (after it: a new entry, never an edit)."""
    _scope_ok(db, scope)
    if kind not in ENTRY_KINDS:
        raise DayBookError("bad_kind", 422, f"an entry is one of {ENTRY_KINDS}")
    note = note.strip()
    if not note:
        raise DayBookError("note_required", 422, "say why: a note is required")
    refusal: DayBookError | None = None
    with db.transaction() as tx:
        signed = tx.one("SELECT signed_by FROM daybook_signoffs WHERE day = ? AND scope = ?"
                        + (" FOR UPDATE" if db.postgres else ""), (day.isoformat(), scope))
        if kind == "adjustment" and signed:
            refusal = DayBookError("signed_off", 409, f"{day} ({scope}) was signed off by {signed['signed_by']}: it "
                                                      "is read-only; enter a correction instead")
        elif kind == "correction" and not signed:
            refusal = DayBookError("not_signed", 409, "a correction is for a signed day; before sign-off, adjust")
        else:
            tx.execute("INSERT INTO daybook_entries (entry_id, scope, day, kind, amount_yen, note, entered_by, "
                       "entered_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                       (secrets.token_hex(8), scope, day.isoformat(), kind, amount_yen, note[:500], username,
                        to_db_time(now)))
            audit.record(tx, now, username, f"{kind}_day", f"{scope} {day}", amount_yen=amount_yen, note=note[:200])
    if refusal is not None:
        if refusal.reason == "signed_off":
            audit.record_now(db, now, username, "adjust_day.refused", f"{scope} {day}", reason="signed_off",
                             amount_yen=amount_yen)
        raise refusal


@dataclass
class MonthDay:
    day: date
    book: KioskBook
    signed_by: str | None


def month(db: Database, year: int, month_number: int) -> tuple[list[MonthDay], KioskBook]:
    first = date(year, month_number, 1)
    nxt = date(year + (month_number == 12), month_number % 12 + 1, 1)
    with db.transaction() as tx:
        rows = tx.execute("SELECT * FROM kiosk_day_projection WHERE day >= ? AND day < ? ORDER BY day",
                          (first.isoformat(), nxt.isoformat()))
        redeemed = tx.execute("SELECT day, COUNT(*) AS n, SUM(amount_yen) AS yen FROM voucher_redemptions "
                              "WHERE day >= ? AND day < ? GROUP BY day", (first.isoformat(), nxt.isoformat()))
        signed = {r["day"]: r["signed_by"] for r in tx.execute(
            "SELECT day, signed_by FROM daybook_signoffs WHERE scope = ? AND day >= ? AND day < ?",
            (ALL, first.isoformat(), nxt.isoformat()))}
    books: dict[str, KioskBook] = {}
    for r in rows:
        part = KioskBook(ALL, certificates=json.loads(r["certificates"]))
        for name in ("transactions", "cash_in", "qr_in", "change_out", "refund_cash", "refund_qr", "vouchers_issued",
                     "vouchers_issued_yen", "unmatched_yen", "emptyings", "emptied_counted", "emptied_expected"):
            setattr(part, name, int(r[name]))
        books.setdefault(r["day"], KioskBook(ALL)).add(part)
    for r in redeemed:
        book = books.setdefault(r["day"], KioskBook(ALL))
        book.vouchers_redeemed += int(r["n"])
        book.vouchers_redeemed_yen += int(r["yen"] or 0)
    days = [MonthDay(date.fromisoformat(d), books[d], signed.get(d)) for d in sorted(books)]
    total = KioskBook(ALL)
    for d in days:
        total.add(d.book)
    return days, total


# --- exports ---------------------------------------------------------------------------------------


def csv_bytes(book: DayBook, t: Any) -> bytes:
    """The daily book as CSV in UTF-8 with a BOM (Excel on Windows opens it as UTF-8 only with the BOM)."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow([t("daybook.csv.title"), book.day.isoformat(), t("daybook.scope.all") if book.scope == ALL else book.scope])
    w.writerow([t("daybook.kiosk"), t("daybook.item"), t("daybook.count"), t("daybook.yen")])
    for k in [*book.kiosks, book.total]:
        name = t("daybook.total") if k is book.total else k.device_id
        for cert, f in sorted(k.certificates.items()):
            w.writerow([name, t("daybook.fee_of", cert=t(f"cert.{cert}")), f["count"], f["yen"]])
        for label, count, yen in _money_lines(k, t):
            w.writerow([name, label, count, yen])
    for e in book.entries:
        w.writerow([t("daybook.entry." + e.kind), e.note, e.entered_by, e.amount_yen])
    if book.signoff:
        w.writerow([t("daybook.signed_by"), book.signoff.signed_by, book.signoff.signed_at.astimezone(JST).isoformat(), ""])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def _money_lines(k: KioskBook, t: Any) -> list[tuple[str, str | int, int]]:
    return [(t("daybook.fees"), k.certificate_count, k.fees), (t("daybook.cash_in"), "", k.cash_in),
            (t("daybook.change_out"), "", k.change_out), (t("daybook.refund_cash"), "", k.refund_cash),
            (t("daybook.qr_in"), "", k.qr_in), (t("daybook.refund_qr"), "", k.refund_qr),
            (t("daybook.vouchers_issued"), k.vouchers_issued, k.vouchers_issued_yen),
            (t("daybook.vouchers_redeemed"), k.vouchers_redeemed, k.vouchers_redeemed_yen),
            (t("daybook.net_cash"), "", k.net_cash), (t("daybook.net_qr"), "", k.net_qr),
            (t("daybook.emptied_counted"), k.emptyings, k.emptied_counted),
            (t("daybook.emptied_expected"), "", k.emptied_expected),
            (t("daybook.emptied_difference"), "", k.emptied_difference),
            (t("daybook.difference"), "", k.difference)]


GOTHIC = "/usr/share/fonts/opentype/ipaexfont-gothic/ipaexg.ttf"


def pdf_bytes(book: DayBook, t: Any, city: str) -> bytes:
    """A printable A4 page (portrait) of the daily book, in IPAex Gothic."""
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.units import mm
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont
    from reportlab.pdfgen.canvas import Canvas

    if "IPAexGothic" not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(TTFont("IPAexGothic", GOTHIC))
    buffer = io.BytesIO()
    c = Canvas(buffer, pagesize=A4, invariant=1)
    width, height = A4
    y = height - 20 * mm

    def line(text: str, x: float = 18 * mm, size: float = 9.5, right: str | None = None) -> None:
        nonlocal y
        if y < 20 * mm:
            c.showPage()
            y = height - 20 * mm
        c.setFont("IPAexGothic", size)
        c.drawString(x, y, text)
        if right is not None:
            c.drawRightString(width - 18 * mm, y, right)
        y -= size * 1.55

    c.setTitle(f"{t('daybook.title')} {book.day.isoformat()}")
    line(f"{city}  {t('daybook.title')}", size=15)
    line(f"{t('daybook.day')}: {book.day.isoformat()}   {t('daybook.scope')}: "
         f"{t('daybook.scope.all') if book.scope == ALL else book.scope}", size=10)
    y -= 4
    for k in [*book.kiosks, book.total]:
        line(t("daybook.total") if k is book.total else f"{k.device_id}  {k.location}", size=11)
        for cert, f in sorted(k.certificates.items()):
            line(f"{t('daybook.fee_of', cert=t(f'cert.{cert}'))}  {f['count']} {t('daybook.copies')}",
                 x=24 * mm, right=f"{f['yen']:,} {t('daybook.yen_unit')}")
        for label, count, yen in _money_lines(k, t):
            line(f"{label}{'  ' + str(count) if count != '' else ''}", x=24 * mm, right=f"{yen:,} {t('daybook.yen_unit')}")
        y -= 4
    for e in book.entries:
        line(f"{t('daybook.entry.' + e.kind)}: {e.note} ({e.entered_by})", right=f"{e.amount_yen:,} {t('daybook.yen_unit')}")
    y -= 6
    if book.signoff:
        line(f"{t('daybook.signed_by')}: {book.signoff.signed_by}  "
             f"{book.signoff.signed_at.astimezone(JST).strftime('%Y-%m-%d %H:%M')}", size=10)
    else:
        line(t("daybook.not_signed"), size=10)
    c.showPage()
    c.save()
    return buffer.getvalue()
