"""City hall's counter: what staff work with. A projection of the kiosks' journals kept by ingest
(projection.py), the fleet page in words (fleet.py), alarms and their webhook (alarms.py, webhook.py),
refund vouchers redeemed once (vouchers.py), the daily book 日計 and its sign-off (daybook.py), staff
roles and the append-only audit log (staff.py), and the dashboard pages for all of it (pages.py).

This package's __init__ imports nothing: cityhall.storage reads counter.schema at import time.
"""
