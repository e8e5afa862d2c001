"""Cashless QR payment over HTTP for a PayPay-style dynamic-QR API (``[qr] driver = "paypay"``).

codec.py is the wire format (request signing, bodies, response decoding), shared with the emulator in
drivers/sim/qr_provider; driver.py is the payment port over ``requests``.
"""
from drivers.payment.qr.driver import QrOptions, QrPayment, build_qr_payment

__all__ = ["QrOptions", "QrPayment", "build_qr_payment"]
