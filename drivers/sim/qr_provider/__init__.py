"""Emulator of a PayPay-style dynamic-QR payment provider over HTTP (`kiosk-sim qr`), with a control
API to act as the resident (approve, decline, let expire) and to inject faults (lost answer, delay,
5xx)."""
