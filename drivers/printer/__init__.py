"""Printers: A4 certificates through CUPS (``document``), receipts on ESC/POS (``receipt``).

Importing this package registers both drivers with kiosk.registry.
"""
from drivers.printer import document, receipt, receipt_a4  # noqa: F401  (registration on import)
