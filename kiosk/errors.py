"""Typed errors with stable numeric codes.

Every error the kiosk can show a person has a numeric code (stable across releases: technicians and
the city hall help desk look them up) and a message key into the translation catalogs
(``error.<key>.title`` / ``error.<key>.action``) saying what happened and what to do. Codes are grouped
by family:

    1xx configuration     2xx card / PIN      3xx payment      4xx printing
    5xx city hall / network                   6xx journal / storage
    7xx engine / internal 8xx update / operations

Codes are never reused. ``tests/unit/test_errors.py`` asserts they are unique and that every key has a
translation.
"""
from __future__ import annotations

from typing import ClassVar


class KioskError(Exception):
    """Base of every error the kiosk raises on purpose.

    ``detail`` is for logs and technicians (never personal data, never a PIN); the on-screen text comes
    from the catalogs via ``message_key``.
    """

    code: ClassVar[int] = 799
    message_key: ClassVar[str] = "internal"
    #: True when the kiosk cannot serve anyone until a person fixes something.
    takes_out_of_service: ClassVar[bool] = False

    def __init__(self, detail: str = "", **context: object) -> None:
        self.detail = detail or self.__class__.__doc__.strip().splitlines()[0]
        self.context = context
        super().__init__(f"E{self.code} {self.detail}")

    def as_dict(self) -> dict[str, object]:
        return {"code": self.code, "key": self.message_key, "detail": self.detail,
                **{k: v for k, v in self.context.items() if isinstance(v, (int, str, bool))}}


# --- 1xx configuration -----------------------------------------------------------------------------
class ConfigError(KioskError):
    """The configuration file is invalid."""
    code = 101
    message_key = "config_invalid"
    takes_out_of_service = True


# --- 2xx card / PIN ----------------------------------------------------------------------------------
class CardError(KioskError):
    """The card could not be used."""
    code = 200
    message_key = "card_error"


class ReaderMissing(CardError):
    """No card reader matching the configured name is connected."""
    code = 201
    message_key = "reader_missing"
    takes_out_of_service = True


class CardRemoved(CardError):
    """The card was taken off the reader during a command."""
    code = 202
    message_key = "card_removed"


class NotMyNumberCard(CardError):
    """The card has no JPKI application; it is not a My Number card."""
    code = 203
    message_key = "not_my_number_card"


class CardUnresponsive(CardError):
    """The card did not answer in time."""
    code = 204
    message_key = "card_unresponsive"


class MalformedCardResponse(CardError):
    """The card answered with bytes that do not make sense."""
    code = 205
    message_key = "card_malformed"


class WrongPin(CardError):
    """The PIN did not match."""
    code = 206
    message_key = "wrong_pin"

    def __init__(self, tries_left: int, detail: str = "") -> None:
        self.tries_left = tries_left
        super().__init__(detail or f"wrong PIN, {tries_left} tries left", tries_left=tries_left)


class PinLocked(CardError):
    """The card's PIN is locked after too many wrong tries."""
    code = 207
    message_key = "pin_locked"


class InvalidPinFormat(CardError):
    """The PIN must be exactly 4 digits; nothing was sent to the card."""
    code = 208
    message_key = "pin_format"


class LastTryNotConfirmed(CardError):
    """Only one PIN try is left and the resident has not confirmed; nothing was sent to the card."""
    code = 209
    message_key = "last_try_unconfirmed"


class CardExpired(CardError):
    """The card's certificate has expired."""
    code = 210
    message_key = "card_expired"


class CardRefused(CardError):
    """City hall refused this card (revoked, unknown, or the resident cannot use the kiosk)."""
    code = 211
    message_key = "card_refused"

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        super().__init__(detail or f"refused by city hall: {reason}", reason=reason)


class CardStatusUnknown(CardRefused):
    """City hall could not establish the card certificate's status (OCSP and CRL gave no good answer):
    it refuses the card rather than guess (fail closed)."""
    code = 240
    message_key = "card_status_unknown"

    def __init__(self, detail: str = "") -> None:
        super().__init__("certificate_status_unknown", detail)


class CardRevoked(CardRefused):
    """The card's user-authentication certificate is revoked (OCSP or the CRL said so)."""
    code = 241
    message_key = "card_revoked"

    def __init__(self, detail: str = "") -> None:
        super().__init__("certificate_revoked", detail)


class CardCommandFailed(CardError):
    """The card refused a command with an unexpected status word."""
    code = 212
    message_key = "card_error"


# --- 3xx payment -------------------------------------------------------------------------------------
class PaymentError(KioskError):
    """The payment could not be completed."""
    code = 300
    message_key = "payment_error"


class PaymentDeclined(PaymentError):
    """The payment provider declined the payment."""
    code = 301
    message_key = "payment_declined"


class PaymentExpired(PaymentError):
    """The payment was not completed in time."""
    code = 302
    message_key = "payment_expired"


class CoinJam(PaymentError):
    """A coin is stuck in the coin acceptor."""
    code = 303
    message_key = "coin_jam"
    takes_out_of_service = True


class HopperEmpty(PaymentError):
    """The change hopper ran out of coins."""
    code = 304
    message_key = "hopper_empty"


class CashEventsLost(PaymentError):
    """The coin or note device reported events the kiosk could not read; money may be unaccounted."""
    code = 305
    message_key = "cash_events_lost"
    takes_out_of_service = True


class PaymentDeviceFault(PaymentError):
    """A payment device stopped answering or reported a fault."""
    code = 306
    message_key = "payment_device_fault"
    takes_out_of_service = True


class PaymentProviderUnreachable(PaymentError):
    """The cashless payment provider could not be reached."""
    code = 307
    message_key = "payment_provider_unreachable"


class FraudAttempt(PaymentError):
    """The cash device reported a fraud attempt."""
    code = 308
    message_key = "payment_fraud"
    takes_out_of_service = True


class RefundFailed(PaymentError):
    """The money could not be paid back; a refund voucher is due."""
    code = 309
    message_key = "refund_failed"


# --- 4xx printing ------------------------------------------------------------------------------------
class PrinterError(KioskError):
    """The printer could not print."""
    code = 400
    message_key = "printer_error"
    takes_out_of_service = True


class PaperOut(PrinterError):
    """The printer is out of paper."""
    code = 401
    message_key = "paper_out"


class PaperJam(PrinterError):
    """Paper is jammed in the printer."""
    code = 402
    message_key = "paper_jam"


class TonerEmpty(PrinterError):
    """The printer is out of toner or ink."""
    code = 403
    message_key = "toner_empty"


class CoverOpen(PrinterError):
    """A printer door or cover is open."""
    code = 404
    message_key = "cover_open"


class PrinterOffline(PrinterError):
    """The printer is offline or unreachable."""
    code = 405
    message_key = "printer_offline"


class PrintTimeout(PrinterError):
    """The print job did not finish in time."""
    code = 406
    message_key = "print_timeout"


class PrintJobFailed(PrinterError):
    """The printer aborted or cancelled the job."""
    code = 407
    message_key = "print_failed"


class ReceiptPrinterError(PrinterError):
    """The receipt printer could not print."""
    code = 410
    message_key = "receipt_printer_error"


# --- 5xx city hall / network -------------------------------------------------------------------------
class CityHallError(KioskError):
    """City hall could not complete the request."""
    code = 500
    message_key = "cityhall_error"


class CityHallUnreachable(CityHallError):
    """City hall cannot be reached; certificates cannot be issued now."""
    code = 501
    message_key = "cityhall_unreachable"
    takes_out_of_service = True


class CityHallRejected(CityHallError):
    """City hall rejected the kiosk's request."""
    code = 502
    message_key = "cityhall_rejected"


class SessionExpired(CityHallError):
    """The authenticated session at city hall expired."""
    code = 503
    message_key = "session_expired"


class DeviceNotEnrolled(CityHallError):
    """This kiosk is not enrolled (or was revoked) at city hall."""
    code = 504
    message_key = "device_not_enrolled"
    takes_out_of_service = True


# --- 6xx journal / storage ---------------------------------------------------------------------------
class JournalError(KioskError):
    """The journal cannot be written; the kiosk must stop serving."""
    code = 600
    message_key = "journal_error"
    takes_out_of_service = True


class JournalCorrupt(JournalError):
    """The journal failed its integrity check or its hash chain is broken."""
    code = 601
    message_key = "journal_corrupt"


class JournalPragmaMismatch(JournalError):
    """A journal connection did not accept the durability settings."""
    code = 602
    message_key = "journal_error"


# --- 7xx engine --------------------------------------------------------------------------------------
class EngineError(KioskError):
    """Something unexpected happened inside the kiosk."""
    code = 700
    message_key = "internal"


class InvalidIntent(EngineError):
    """The screen sent an action that does not fit the current step."""
    code = 701
    message_key = "internal"


class OutOfService(EngineError):
    """The kiosk is out of service."""
    code = 702
    message_key = "out_of_service"


# --- 8xx update / operations -------------------------------------------------------------------------
class OperationsError(KioskError):
    """A technician operation failed."""
    code = 800
    message_key = "operations_error"


class BundleRejected(OperationsError):
    """The update bundle was refused (bad signature, damaged, or not made for this kiosk); nothing was changed."""
    code = 801
    message_key = "operations_error"


class UpdateBlocked(OperationsError):
    """The update cannot proceed now (a transaction is in progress, or another update runs)."""
    code = 802
    message_key = "operations_error"


class UpdateFailed(OperationsError):
    """The new release failed its health check; the previous release was put back."""
    code = 803
    message_key = "operations_error"


def all_error_classes() -> list[type[KioskError]]:
    seen: list[type[KioskError]] = []
    stack: list[type[KioskError]] = [KioskError]
    while stack:
        cls = stack.pop()
        seen.append(cls)
        stack.extend(cls.__subclasses__())
    return seen
