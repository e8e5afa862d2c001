"""The issuance service: challenges, card authentication, idempotent issuance, lookup and verification.

Independent of HTTP (cityhall.app maps it to routes); every operation gets the authenticated device id
from the caller. Errors are ApiError with the HTTP status and a stable ``error`` code.

Binding a document to its resident: a session row holds the resident id found from the certificate
that signed that session's challenge; ``issue`` renders only from the session's own resident id, and a
session is usable only by the device that opened it.

Idempotency: (device, transaction id) is the key, stored permanently with a hash of the request. The
first request claims the key and allocates the issuance numbers and the issue time in one
transaction; rendering is deterministic, so any retry — sequential or concurrent — re-renders the same
bytes from those stored facts and checks them against the recorded SHA-256. PDFs (which carry
resident data) are never stored.
"""
from __future__ import annotations

import base64
import hashlib
import json
import logging
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Mapping

from cityhall.cardauth import CardRefusal, CardVerifier, RevocationUnavailable
from cityhall.config import CityHallConfig
from cityhall.devices import Device
from cityhall.offers import CheckedLine, OrderInvalid, check_order, offers_for
from cityhall.registry import RegistryUnavailable, ResidentRegistry
from cityhall.storage import Database, Transaction, from_db_time, to_db_time

JST = timezone(timedelta(hours=9), "JST")
log = logging.getLogger("cityhall.service")


class ApiError(Exception):
    def __init__(self, status: int, error: str, detail: str, **extra: Any) -> None:
        self.status = status
        self.error = error
        self.detail = detail
        self.extra = extra
        super().__init__(f"{status} {error}: {detail}")

    def body(self) -> dict[str, Any]:
        return {"error": self.error, "detail": self.detail, **self.extra}


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat()


@dataclass(frozen=True)
class Rendered:
    row: dict[str, Any]
    pdf: bytes
    sha256: str


class IssuanceService:
    def __init__(self, config: CityHallConfig, db: Database, registry: ResidentRegistry, verifier: CardVerifier,
                 signer: Any, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.db = db
        self.registry = registry
        self.verifier = verifier
        self.signer = signer
        self.clock = clock

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), timezone.utc)

    # --- health --------------------------------------------------------------------------------------

    def readiness_problem(self) -> str | None:
        """Why city hall cannot issue right now, or None."""
        try:
            self.verifier.check_revocation_source(self.now())
        except RevocationUnavailable as exc:
            return str(exc)
        return None

    # --- challenge -----------------------------------------------------------------------------------

    def new_challenge(self, device: Device) -> dict[str, Any]:
        now = self.now()
        challenge_id = secrets.token_urlsafe(18)
        nonce = secrets.token_bytes(32)
        expires = now + timedelta(seconds=self.config.service.challenge_ttl_seconds)
        with self.db.transaction() as tx:
            tx.execute("INSERT INTO challenges (challenge_id, device_id, nonce, created_at, expires_at) "
                       "VALUES (?, ?, ?, ?, ?)", (challenge_id, device.device_id, nonce.hex(), to_db_time(now),
                                                  to_db_time(expires)))
            if challenge_id[0] == "A":  # now and then, forget challenges that can no longer be answered
                tx.execute("DELETE FROM challenges WHERE expires_at < ?", (to_db_time(now - timedelta(hours=1)),))
        return {"challenge_id": challenge_id, "nonce": base64.b64encode(nonce).decode("ascii"),
                "expires_at": _iso(expires)}

    def _consume_challenge(self, device: Device, challenge_id: str, now: datetime) -> bytes:
        with self.db.transaction() as tx:
            row = tx.one("SELECT * FROM challenges WHERE challenge_id = ? AND device_id = ?",
                         (challenge_id, device.device_id))
            if row is None:
                raise ApiError(409, "challenge_invalid", "no such challenge for this device; ask for a new one",
                               reason="unknown")
            if row["used_at"] is not None:
                raise ApiError(409, "challenge_invalid", "this challenge was already answered; ask for a new one",
                               reason="used")
            if from_db_time(row["expires_at"]) < now:
                raise ApiError(409, "challenge_invalid", "this challenge expired; ask for a new one",
                               reason="expired")
            tx.execute("UPDATE challenges SET used_at = ? WHERE challenge_id = ? AND used_at IS NULL",
                       (to_db_time(now), challenge_id))
            if tx.rowcount != 1:
                raise ApiError(409, "challenge_invalid", "this challenge was already answered", reason="used")
        return bytes.fromhex(row["nonce"])

    # --- authenticate --------------------------------------------------------------------------------

    def _resident_or_refuse(self, find: Callable[[str], Mapping[str, Any] | None], key: str) -> Mapping[str, Any]:
        try:
            resident = find(key)
        except RegistryUnavailable as exc:
            raise ApiError(503, "registry_unavailable", str(exc)) from None
        if resident is None:
            raise ApiError(403, "card_refused", "no resident is registered for this card", reason="unknown_card")
        if resident["status"] != "active":
            raise ApiError(403, "card_refused", "the resident's record does not allow kiosk issuance",
                           reason=resident["status"])
        return resident

    def authenticate(self, device: Device, challenge_id: str, certificate_der: bytes,
                     signature: bytes) -> dict[str, Any]:
        now = self.now()
        nonce = self._consume_challenge(device, challenge_id, now)
        try:
            card = self.verifier.verify(certificate_der, nonce, signature, now)
        except CardRefusal as exc:
            # the city hall log keeps why (e.g. OCSP down, CRL stale); the kiosk journals the reason it is sent
            log.warning("card refused for device %s: %s — %s", device.device_id, exc.reason, exc.detail)
            raise ApiError(403, "card_refused", exc.detail, reason=exc.reason) from None
        except RevocationUnavailable as exc:
            raise ApiError(503, "revocation_unavailable", str(exc)) from None
        resident = self._resident_or_refuse(self.registry.find_by_card, card.card_id)
        offers = offers_for(resident, self.config.fees, self.config.documents.max_copies)
        session_id = secrets.token_urlsafe(32)
        expires = min(now + timedelta(seconds=self.config.service.session_ttl_seconds), card.not_after)
        with self.db.transaction() as tx:
            tx.execute("INSERT INTO sessions (session_hash, device_id, card_serial, resident_id, created_at, expires_at) "
                       "VALUES (?, ?, ?, ?, ?, ?)", (_sha256(session_id), device.device_id, str(card.serial),
                                                     resident["resident_id"], to_db_time(now), to_db_time(expires)))
        return {"session_id": session_id, "expires_at": _iso(expires), "offers": [o.as_json() for o in offers]}

    # --- issue ---------------------------------------------------------------------------------------

    def issue(self, device: Device, session_id: str, transaction_id: str, payment_ref: str,
              lines: list[Mapping[str, Any]]) -> dict[str, Any]:
        now = self.now()
        session_hash = _sha256(session_id)
        request_hash = _sha256(json.dumps({"session": session_hash, "payment_ref": payment_ref, "lines": [
            {"cert_type": ln["cert_type"], "copies": ln["copies"], "unit_fee_yen": ln["unit_fee_yen"],
             "tax_year": ln.get("tax_year"), "options": sorted(set(ln.get("options") or ()))} for ln in lines]},
            sort_keys=True, ensure_ascii=False))
        with self.db.transaction() as tx:
            existing = tx.one("SELECT * FROM issuance_requests WHERE device_id = ? AND transaction_id = ?",
                              (device.device_id, transaction_id))
            session = None if existing else tx.one("SELECT * FROM sessions WHERE session_hash = ?", (session_hash,))
        if existing:
            return self._replay(existing, request_hash)
        if session is None or session["device_id"] != device.device_id:
            raise ApiError(404, "session_unknown", "no such session for this device; authenticate the card again")
        if from_db_time(session["expires_at"]) < now:
            raise ApiError(410, "session_expired", "the card session expired; authenticate the card again")
        resident = self._resident_or_refuse(self.registry.find_by_resident_id, session["resident_id"])
        try:
            checked = check_order(lines, offers_for(resident, self.config.fees, self.config.documents.max_copies))
        except OrderInvalid as exc:
            raise ApiError(422, "invalid_request", exc.detail, field=exc.field) from None
        with self.db.transaction() as tx:
            tx.execute("INSERT INTO issuance_requests (device_id, transaction_id, request_hash, session_hash, "
                       "resident_id, payment_ref, created_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                       (device.device_id, transaction_id, request_hash, session_hash, session["resident_id"],
                        payment_ref, to_db_time(now)))
            claimed = tx.rowcount == 1
            if claimed:
                self._allocate(tx, device.device_id, transaction_id, checked, now, device.location)
            else:
                existing = tx.one("SELECT * FROM issuance_requests WHERE device_id = ? AND transaction_id = ?",
                                  (device.device_id, transaction_id))
        if not claimed:  # a concurrent twin claimed it first
            assert existing is not None
            return self._replay(existing, request_hash)
        return self._render_all(device.device_id, transaction_id, resident, replayed=False)

    def _allocate(self, tx: Transaction, device_id: str, transaction_id: str, lines: tuple[CheckedLine, ...],
                  now: datetime, place_of_issue: str) -> None:
        total = sum(line.copies for line in lines)
        scope = f"{self.config.city.issuance_prefix}-{now.astimezone(JST).year}"
        tx.execute("INSERT INTO issuance_counters (scope, last_value) VALUES (?, 0) ON CONFLICT DO NOTHING", (scope,))
        row = tx.one("UPDATE issuance_counters SET last_value = last_value + ? WHERE scope = ? RETURNING last_value",
                     (total, scope))
        assert row is not None
        number = int(row["last_value"]) - total
        position = 0
        for line in lines:
            for copy_number in range(1, line.copies + 1):
                number += 1
                tx.execute("INSERT INTO issuances (issuance_number, device_id, transaction_id, position, cert_type, "
                           "tax_year, options, copy_number, copies, fee_yen, place_of_issue, status, issued_at) "
                           "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'issued', ?)",
                           (f"{scope}-{number:08d}", device_id, transaction_id, position, line.cert_type,
                            line.tax_year, ",".join(line.options), copy_number, line.copies, line.unit_fee_yen,
                            place_of_issue, to_db_time(now)))
                position += 1

    def _replay(self, existing: Mapping[str, Any], request_hash: str) -> dict[str, Any]:
        if existing["request_hash"] != request_hash:
            raise ApiError(409, "transaction_conflict", "this transaction id was already used for a different "
                                                        "order; a new order needs a new transaction id")
        try:
            resident = self.registry.find_by_resident_id(existing["resident_id"])
        except RegistryUnavailable as exc:
            raise ApiError(503, "registry_unavailable", str(exc)) from None
        if resident is None:
            raise ApiError(409, "reissue_impossible", "the resident of this transaction is no longer in the registry")
        return self._render_all(existing["device_id"], existing["transaction_id"], resident, replayed=True)

    def _render_all(self, device_id: str, transaction_id: str, resident: Mapping[str, Any],
                    replayed: bool) -> dict[str, Any]:
        from cityhall.documents import CertificateRequest, render_certificate
        from cityhall.documents.model import CertificateRequestInvalid

        with self.db.transaction() as tx:
            rows = tx.execute("SELECT * FROM issuances WHERE device_id = ? AND transaction_id = ? ORDER BY position",
                              (device_id, transaction_id))
        documents = []
        for row in rows:
            request = CertificateRequest(
                cert_type=row["cert_type"], issuance_number=row["issuance_number"],
                issued_at=from_db_time(row["issued_at"]), city_name=self.config.city.name,
                mayor_name=self.config.city.mayor_name, resident=resident,
                tax_year=row["tax_year"], options=tuple(o for o in row["options"].split(",") if o),
                copy_number=row["copy_number"], copies=row["copies"], place_of_issue=row["place_of_issue"])
            try:
                rendered = render_certificate(request, self.signer)
            except CertificateRequestInvalid as exc:
                raise ApiError(422, "invalid_request", str(exc), field="order") from None
            content_sha256 = _qr_content_sha256(rendered.qr_payload)
            if row["sha256"] is None:
                with self.db.transaction() as tx:
                    tx.execute("UPDATE issuances SET sha256 = ?, content_sha256 = ? "
                               "WHERE issuance_number = ? AND sha256 IS NULL",
                               (rendered.sha256, content_sha256, row["issuance_number"]))
                    stored = tx.one("SELECT sha256 FROM issuances WHERE issuance_number = ?",
                                    (row["issuance_number"],))
                row["sha256"] = stored["sha256"] if stored else None
            if row["sha256"] != rendered.sha256:
                raise ApiError(409, "reissue_mismatch",
                               f"document {row['issuance_number']} would differ from the one recorded (the "
                               "resident's record changed since); contact city hall")
            documents.append({
                "document_id": f"{transaction_id}/{row['position']}", "issuance_number": row["issuance_number"],
                "cert_type": row["cert_type"], "tax_year": row["tax_year"], "copy_number": row["copy_number"],
                "fee_yen": row["fee_yen"], "sha256": rendered.sha256,
                "pdf_base64": base64.b64encode(rendered.pdf).decode("ascii")})
        return {"transaction_id": transaction_id, "replayed": replayed, "documents": documents}

    # --- lookup and verification ---------------------------------------------------------------------

    def lookup(self, issuance_number: str) -> dict[str, Any] | None:
        with self.db.transaction() as tx:
            row = tx.one("SELECT issuance_number, cert_type, tax_year, sha256, content_sha256, status, issued_at, "
                         "device_id FROM issuances WHERE issuance_number = ?", (issuance_number,))
        if row is None:
            return None
        row["issued_at"] = _iso(from_db_time(row["issued_at"]))
        if row["sha256"] is None:  # claimed but never delivered (crash while rendering)
            row["status"] = "incomplete"
        return row

    def public_keys(self) -> dict[str, Any]:
        return self.signer.public_keys()

    def _against_record(self, result: Any, pdf_sha256: str | None) -> dict[str, Any]:
        """Compare a verified document or QR claim with the stored issuance."""
        verdict: dict[str, Any] = {"genuine": False, "issuance_number": result.issuance_number,
                                   "cert_type": result.cert_type}
        if not result.ok:
            return {**verdict, "reason": result.code or "not_genuine", "detail": result.reason}
        record = self.lookup(result.issuance_number or "")
        if record is None:
            return {**verdict, "reason": "unknown_issuance",
                    "detail": "city hall has no issuance with this number: the document was not issued by us"}
        if record["status"] != "issued":
            return {**verdict, "reason": f"issuance_{record['status']}",
                    "detail": f"the issuance is recorded as {record['status']}"}
        if record["cert_type"] != result.cert_type or record["content_sha256"] != result.content_sha256:
            return {**verdict, "reason": "record_mismatch",
                    "detail": "the document's content does not match what city hall issued under this number"}
        if pdf_sha256 is not None and record["sha256"] != pdf_sha256:
            return {**verdict, "reason": "altered", "detail": "the file differs from the one city hall issued"}
        return {**verdict, "genuine": True, "reason": "genuine", "issued_at": record["issued_at"],
                "detail": "city hall's signatures are valid and match the stored issuance"}

    def verify_pdf(self, pdf: bytes) -> dict[str, Any]:
        from cityhall.documents import verify_document

        return self._against_record(verify_document(pdf, self.public_keys()), hashlib.sha256(pdf).hexdigest())

    def verify_qr(self, payload: str) -> dict[str, Any]:
        """A QR read from paper: its signature, then the stored issuance it names."""
        from cityhall.documents import verify_qr_payload

        return self._against_record(verify_qr_payload(payload, self.public_keys()), None)


def _qr_content_sha256(payload: str) -> str:
    from cityhall.documents.signing import parse_qr_payload

    claim = parse_qr_payload(payload)
    if claim is None:
        raise ApiError(500, "render_failed", "the rendered document's QR payload does not parse")
    return claim.content_sha256
